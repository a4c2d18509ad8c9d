"""PostgreSQL restarted under load: the worker reconnects and nothing is lost.

The test starts a PostgreSQL server of its own (from the pgserver wheel),
so it can restart it without disturbing anything else.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest

from tests.workers import ROOT, WorkerProcess, wait_until, worker_env

TASKS = 400


@pytest.fixture
def own_server():
    import pgserver

    # Not under pytest's temp folder: as root, pgserver runs the server as a
    # user of its own, which must be able to enter the folders above its data
    # directory, and any pytest run starting on the machine makes
    # /tmp/pytest-of-root private to root again.
    parent = Path(tempfile.mkdtemp(prefix="django_tasks_restart_pg_"))
    data_dir = parent / "data"
    try:
        server = pgserver.get_server(data_dir, cleanup_mode="delete")
    except subprocess.SubprocessError:
        # pg_ctl gives the server 10 s to start; a loaded machine may need a second go.
        server = pgserver.get_server(data_dir, cleanup_mode="delete")
    socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
    database = {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres",
                "USER": "postgres", "PASSWORD": "", "HOST": socket_dir, "PORT": "",
                "OPTIONS": {}}
    yield server, data_dir, database
    server.cleanup()
    shutil.rmtree(parent)


def _manage(database, *args):
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                          env=worker_env(database=database), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _count(database, sql):
    with psycopg.connect(host=database["HOST"], user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


def test_worker_rides_out_a_postgresql_restart(postgres_only, own_server):
    import pgserver

    server, data_dir, database = own_server
    _manage(database, "migrate", "-v0")
    _manage(database, "enqueue_records", str(TASKS), "--seconds", "0.01")
    worker = WorkerProcess("-c", "2", database=database).wait_ready()
    try:
        wait_until(lambda: _count(database, "select count(*) from tests_execution") >= 50,
                   timeout=120, message="some tasks to run before the restart")
        pgserver.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data_dir,
                        user=server.system_user)
        try:
            wait_until(lambda: _count(database,
                                      "select count(*) from django_tasks_queuedmessage") == 0,
                       timeout=180, interval=0.5, message="the queue to drain after the restart")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker output:\n{worker.output[-6000:]}") from None
        worker.wait_for("Database unavailable")
        assert _count(database, "select count(*) from django_tasks_taskresult "
                                "where state = 'SUCCESS'") == TASKS
        assert _count(database, "select count(distinct key) from tests_execution") == TASKS
    finally:
        worker.stop()
    assert worker.proc.returncode == 0
