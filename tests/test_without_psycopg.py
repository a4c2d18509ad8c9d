"""SQLite without psycopg: the package needs no psycopg build on SQLite.

psycopg is made unimportable in the processes started here (a
``sitecustomize`` that puts ``None`` in ``sys.modules``, so that
``import psycopg`` raises ImportError from the interpreter's start), and the
quick start runs on a SQLite file of its own: migrate, ``.delay()`` from
one process, a real ``runworker`` runs it, ``get()`` reads the result.
"""

import json
import os
import subprocess
import sys

from tests.workers import ROOT, WorkerProcess

WITHOUT_PSYCOPG = 'import sys\nsys.modules["psycopg"] = None\n'

# Each step also proves that psycopg stays unimportable in its process.
NO_PSYCOPG = """
try:
    import psycopg
except ImportError:
    pass
else:
    raise SystemExit("psycopg was importable")
"""
MIGRATE = NO_PSYCOPG + """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
"""
SEND_AND_GET = NO_PSYCOPG + """
import django
django.setup()
from testproject.tasks import add
print(add.delay(2, 9).get(timeout=60))
"""


def _sqlite(path):
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "USER": "",
            "PASSWORD": "", "HOST": "", "PORT": "",
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;",
                        "transaction_mode": "IMMEDIATE", "timeout": 30}}


def _env(shim_dir, database):
    python_path = os.pathsep.join(
        [str(shim_dir), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"PYTHONPATH": python_path, "DJANGO_SETTINGS_MODULE": "tests.settings",
            "TESTS_DATABASE_JSON": json.dumps(database), "PYTHONUNBUFFERED": "1"}


def _run(script, env):
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_sqlite_quick_start_runs_without_psycopg(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(WITHOUT_PSYCOPG)
    database = _sqlite(tmp_path / "db.sqlite3")
    env = _env(shim, database)

    _run(MIGRATE, env)
    worker = WorkerProcess(env=env, database=database)
    try:
        worker.wait_ready()
        assert _run(SEND_AND_GET, env).strip() == "11"
        worker.wait_for("testproject.tasks.add[")
        assert worker.proc.poll() is None  # and carries on
    finally:
        assert worker.stop() == 0, worker.output
