"""Two runs of the suite on one machine keep out of each other's way: each
has its own test database and embedded server directory; and what the
browser tests turn off (Django's check for ORM calls from an event loop)
stays off only while they run, never in a worker."""

import json
import os
import subprocess
import sys

from tests.workers import ROOT, worker_env

SETTINGS_OF_A_RUN = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
from django.conf import settings
from tests.forged import MARK_FILE
database = settings.DATABASES["default"]
print(json.dumps({"test_name": database["TEST"]["NAME"], "mark_file": str(MARK_FILE),
                  "run_id": os.environ["TESTS_RUN_ID"], "pid": os.getpid()}))
"""


def new_run_environment(**env):
    """The environment of a new run started from this one's, given ``env``:
    none of the variables that choose a run's database or names."""
    base = {key: value for key, value in os.environ.items()
            if key not in ("TESTS_RUN_ID", "TESTS_DATABASE_JSON", "TEST_DATABASE",
                           "DATABASE_URL", "TESTS_PGDATA", "PYTEST_XDIST_WORKER")}
    return {**base, **env}


def settings_of_a_run(**env):
    """The settings a new run (a process of its own, given ``env``) would use."""
    done = subprocess.run([sys.executable, "-c", SETTINGS_OF_A_RUN], cwd=ROOT,
                          env=new_run_environment(**env), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_two_runs_on_one_postgresql_server_use_test_databases_of_their_own():
    url = "postgres://postgres@127.0.0.1:5432/shared_name"
    first, second = settings_of_a_run(DATABASE_URL=url), settings_of_a_run(DATABASE_URL=url)
    assert first["test_name"] == f"test_shared_name_{first['pid']}"
    assert second["test_name"] == f"test_shared_name_{second['pid']}"
    assert first["mark_file"] != second["mark_file"]


def test_two_sqlite_runs_use_test_files_of_their_own():
    first = settings_of_a_run(TEST_DATABASE="sqlite")
    second = settings_of_a_run(TEST_DATABASE="sqlite")
    assert first["test_name"] != second["test_name"]
    assert first["test_name"].endswith(f"_{first['pid']}.sqlite3")


def test_a_given_run_id_names_them():
    run = settings_of_a_run(DATABASE_URL="postgres://postgres@127.0.0.1:5432/x",
                            TESTS_RUN_ID="ci-7")
    assert run["test_name"] == "test_x_ci-7"
    assert run["mark_file"].endswith("_ci-7.mark")


def test_the_xdist_processes_of_one_run_have_names_of_their_own():
    # pytest -n: each process inherits the controller's TESTS_RUN_ID.
    url = "postgres://postgres@127.0.0.1:5432/x"
    gw0, gw1 = (settings_of_a_run(DATABASE_URL=url, TESTS_RUN_ID="ci-7", PYTEST_XDIST_WORKER=name)
                for name in ("gw0", "gw1"))
    assert (gw0["run_id"], gw1["run_id"]) == ("ci-7_gw0", "ci-7_gw1")
    assert gw0["test_name"] != gw1["test_name"]
    assert gw0["mark_file"] != gw1["mark_file"]


def test_a_worker_of_an_xdist_process_keeps_its_names():
    # It inherits the process's own TESTS_RUN_ID: named once, not twice.
    run = settings_of_a_run(DATABASE_URL="postgres://postgres@127.0.0.1:5432/x",
                            TESTS_RUN_ID="ci-7_gw1", PYTEST_XDIST_WORKER="gw1")
    assert run["test_name"] == "test_x_ci-7_gw1"


def test_the_embedded_server_of_each_run_has_its_own_directory(tmp_path):
    # Started for real by each of two processes at once; each prints where.
    script = ("import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings';"
              "from django.conf import settings;"
              "print(settings.DATABASES['default']['HOST'], flush=True)")
    runs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=new_run_environment(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    directories = [out.strip() for out, _ in outputs]
    assert directories[0] != directories[1]
    for directory in directories:
        assert not os.path.exists(directory), "left behind after the run"


def test_a_worker_never_inherits_django_allow_async_unsafe(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in worker_env(database={"ENGINE": "x"})


def test_the_browser_tests_leave_the_environment_alone_once_imported():
    # Collecting them (importing the module) used to set it for the rest of
    # the run, and so for every worker started afterwards.
    script = ("import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings';"
              "import django; django.setup(); import tests.test_admin_browser;"
              "print(os.environ.get('DJANGO_ALLOW_ASYNC_UNSAFE'))")
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
