"""A claim on a connection task code shares commits without waiting for the WAL
flush (SYNCHRONOUS_ACKS off, the default), and never relaxes a caller's transaction."""


import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from django_tasks.models import QueuedMessage
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import live_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

RELAX = "set_config('synchronous_commit', 'off', true)"
QUEUE = "claims"


def synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def claim_sql(queues=(QUEUE,), **settings):
    sent = add.apply_async((1, 2), queue=QUEUE)
    with override_settings(DJANGO_TASKS=settings), CaptureQueriesContext(connection) as queries:
        claimed = get_backend().claim(live_worker(), list(queues), 5, start=5, pid=4242)
    assert [m.task_id for m in claimed] == [sent.id]
    assert QueuedMessage.objects.get(task_id=sent.id).claimed_pid == 4242
    return " ".join(q["sql"] for q in queries.captured_queries)


@pytest.mark.parametrize("queues", [(QUEUE,), (QUEUE, "other")])
def test_a_claim_in_autocommit_skips_the_wal_flush_and_the_session_keeps_its_setting(queues):
    before = synchronous_commit()
    assert RELAX in claim_sql(queues)
    assert synchronous_commit() == before  # local to the claim's own commit


def test_synchronous_acks_make_claims_wait_for_the_flush():
    assert RELAX not in claim_sql(SYNCHRONOUS_ACKS=True)


def test_a_claim_inside_the_callers_transaction_leaves_its_commit_alone():
    with transaction.atomic():
        before = synchronous_commit()
        assert RELAX not in claim_sql()
        assert synchronous_commit() == before
