"""SYNCHRONOUS_ENQUEUE off: a lone .delay() commits without waiting for the WAL
flush, and never relaxes a transaction of the caller's."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from django_tasks.models import QueuedMessage
from tests.tasks import add

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

RELAX = "set_config('synchronous_commit', 'off', true)"


def synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def enqueue_sql(**settings):
    with override_settings(DJANGO_TASKS=settings), CaptureQueriesContext(connection) as queries:
        result = add.delay(1, 2)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    return " ".join(q["sql"] for q in queries.captured_queries)


def test_by_default_every_enqueue_waits_for_the_wal_flush():
    assert RELAX not in enqueue_sql()


def test_off_a_lone_delay_commits_without_the_wal_flush_and_the_session_keeps_its_setting():
    before = synchronous_commit()
    assert RELAX in enqueue_sql(SYNCHRONOUS_ENQUEUE=False)
    assert synchronous_commit() == before  # local to the enqueue's own commit


def test_off_an_enqueue_inside_the_callers_transaction_leaves_its_commit_alone():
    with transaction.atomic():
        before = synchronous_commit()
        assert RELAX not in enqueue_sql(SYNCHRONOUS_ENQUEUE=False)
        assert synchronous_commit() == before
