import pytest
from django.db import connection

from tests.pgbouncer import PgBouncer, executable
from tests.workers import WorkerProcess

CALL_REPORT = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


@pytest.fixture
def start_worker(transactional_db, request):
    """Start real ``runworker`` processes on the test database (or Django's
    settings ``database``); stopped after the test.

    When the test fails, the end of each worker's log is printed with it.
    """
    started = []

    def start(*args, env=None, ready=True, database=None):
        worker = WorkerProcess(*args, env=env, database=database)
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in started:
        worker.stop()
    report = request.node.stash.get(CALL_REPORT, None)
    if report is not None and report.failed:
        for worker in started:
            problems = [line for line in worker.lines if "ERROR" in line or "WARNING" in line]
            print(f"--- worker pid {worker.pid} (exit code {worker.proc.returncode}): "
                  f"last lines ---", *worker.lines[-80:],
                  "--- its warnings and errors ---", *problems[-80:], sep="\n")


@pytest.fixture
def admin_client(client):
    """Django's test client, logged in as a new superuser ``admin``."""
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


@pytest.fixture
def vendor():
    return connection.vendor


@pytest.fixture
def postgres_only(vendor):
    if vendor != "postgresql":
        pytest.skip("PostgreSQL-only behaviour (LISTEN/NOTIFY, SKIP LOCKED, restarts, "
                    "synchronous_commit)")


@pytest.fixture(scope="module")
def pgbouncer(django_db_setup):
    """A real PgBouncer in transaction pooling mode in front of the test
    database, with a single server connection (so that whatever one client
    leaves in a session, the next one finds); stopped after the module.

    Fails (never skips) where pgbouncer is not installed."""
    if connection.vendor != "postgresql":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    try:
        executable()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    bouncer = PgBouncer(connection.settings_dict, pool_size=1)
    try:
        yield bouncer.start()
    finally:
        bouncer.stop()


@pytest.fixture(autouse=True)
def _close_result_listener():
    """Close the LISTEN connection get() opened, so the test database can be dropped."""
    yield
    from django_tasks.queue import get_backend

    get_backend().close_listener()


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix():
    """Under pytest-xdist the settings already name each process's test
    database (tests/run_id.py): pytest-django adds no second suffix."""
