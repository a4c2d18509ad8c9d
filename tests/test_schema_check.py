"""runworker and runbeat refuse to start on a database that lacks one of
django_tasks' migrations (a deploy that ships the code before migrating):
otherwise a missing table surfaces inside the worker's loop, where a prefork
child dies at every claim and its messages go round forever."""

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from django_tasks import schema
from tests.workers import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def last_migration_unrecorded():
    """The database as if its last django_tasks migration were not applied."""
    recorder = MigrationRecorder(connection)
    last = max(name for app, name in recorder.applied_migrations() if app == "django_tasks")
    recorder.record_unapplied("django_tasks", last)
    try:
        yield last
    finally:
        recorder.record_applied("django_tasks", last)


def test_a_migrated_database_is_accepted():
    assert schema.unapplied_migrations("default") == []
    assert schema.refusal("default") is None


@pytest.mark.parametrize("command, args", [("runworker", ("-P", "prefork", "-c", "1")),
                                           ("runworker", ("-P", "threads", "--beat")),
                                           ("runbeat", ())])
def test_a_worker_on_an_unmigrated_database_refuses_to_start(last_migration_unrecorded,
                                                              command, args):
    process = WorkerProcess(*args, command=command)
    try:
        assert process.wait_exit(60) == 1
    finally:
        process.stop()
    assert f"{command}: the database 'default' lacks 1 of django_tasks' migrations " \
           f"({last_migration_unrecorded}): run 'python manage.py migrate' first" \
           in process.output
    assert " ready." not in process.output
