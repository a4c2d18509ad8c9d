"""The worker's acknowledgements (results stored, messages deleted) commit
without waiting for the WAL flush (SYNCHRONOUS_ACKS off, the default) by a
setting of their own transaction, never of the session: behind PgBouncer in
transaction mode a session setting would reach other clients."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.outcomes import RESULT_COLUMNS, Outcome
from django_tasks.queue import get_backend
from django_tasks.queue.postgresql import STORE_AND_ACK_ASYNC_COMMIT_SQL
from tests.tasks import add
from tests.workers import live_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

RELAX = "set_config('synchronous_commit', 'off', true)"
RELAX_TRANSACTION = "SET LOCAL synchronous_commit TO off"
WORKER = uuid.uuid4()


def synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def outcomes(count, retry=False):
    sent = [add.delay(i, i) for i in range(count)]
    claimed = get_backend().claim(live_worker(WORKER), ["default"], count, start=count, pid=1)
    assert sorted(m.task_id for m in claimed) == sorted(r.id for r in sent)
    now = timezone.now()
    return [Outcome(message=m, state=states.RETRY if retry else states.SUCCESS,
                    result_text="2", done_at=now, retry_at=now + timedelta(hours=1) if retry
                    else None) for m in claimed]


def finish_sql(finished, **settings):
    with override_settings(DJANGO_TASKS=settings), CaptureQueriesContext(connection) as queries:
        get_backend().finish(finished, WORKER)
    return " ".join(q["sql"] for q in queries.captured_queries)


@pytest.mark.parametrize("count", [1, 3], ids=["one outcome (libpq)", "a batch"])
def test_an_acknowledgement_skips_the_wal_flush_and_the_session_keeps_its_setting(count):
    finished = outcomes(count)
    before = synchronous_commit()
    assert RELAX in finish_sql(finished)
    assert synchronous_commit() == before  # local to the statement's own commit
    assert TaskResult.objects.filter(state=states.SUCCESS).count() == count
    assert not QueuedMessage.objects.exists()


def test_a_retry_is_stored_in_a_transaction_that_alone_skips_the_wal_flush():
    finished = outcomes(2, retry=True)
    before = synchronous_commit()
    assert RELAX_TRANSACTION in finish_sql(finished)
    assert synchronous_commit() == before
    assert QueuedMessage.objects.filter(claimed_by__isnull=True).count() == 2


@pytest.mark.parametrize("count", [1, 3])
def test_synchronous_acks_wait_for_the_flush(count):
    sql = finish_sql(outcomes(count), SYNCHRONOUS_ACKS=True)
    assert RELAX not in sql and RELAX_TRANSACTION not in sql


def test_an_acknowledgement_inside_the_callers_transaction_leaves_its_commit_alone():
    finished = outcomes(2, retry=True)
    with transaction.atomic():
        before = synchronous_commit()
        sql = finish_sql(finished)
        assert RELAX not in sql and RELAX_TRANSACTION not in sql
        assert synchronous_commit() == before


@pytest.mark.parametrize("plans", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("payloads", [[], ["a wake-up"]], ids=["nothing", "a wake-up"])
def test_the_relaxed_statement_always_sets_its_transaction(payloads, plans):
    # Run inside a transaction here only to look at the setting it leaves:
    # whatever the statement is given and however it is planned, its
    # set_config is evaluated.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('plan_cache_mode', %s, true)", [plans])
        assert synchronous_commit() == "on"
        get_backend().connector.execute_bound(STORE_AND_ACK_ASYNC_COMMIT_SQL,
                                              [*([] for _ in RESULT_COLUMNS), [], payloads])
        assert synchronous_commit() == "off"
