"""A lone outcome stored outside a transaction on PostgreSQL goes through
libpq directly (``django_tasks_store_one``): the same result row as the
array statement writes, the message acknowledged, the waiters woken, and
Django's errors."""

import uuid
from datetime import datetime, timedelta

import pytest
from django.db import DataError, connection, transaction
from django.utils import timezone

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.outcomes import Outcome
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import live_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

STORE_ONE = "django_tasks_store_one_relaxed"  # SYNCHRONOUS_ACKS off, the default
WORKER = uuid.uuid4()


def prepared_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return sorted(row[0] for row in cursor.fetchall())


def claimed(count, **options):
    results = [add.apply_async((1,), {"y": "é ☃"}, **options) for _ in range(count)]
    messages = get_backend().claim(live_worker(WORKER), ["default"], count, start=count, pid=1)
    assert sorted(m.task_id for m in messages) == sorted(r.id for r in results)
    return messages


# Not UTC, to the microsecond: the text form must keep the instant.
DONE = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.get_fixed_timezone(330))


def outcome(message, **fields):
    now = DONE
    values = dict(state=states.FAILURE, hostname="w1@example", result_text='{"x": "☃"}',
                  traceback="Traceback …\nValueError: ☃", args_text="[1]",
                  kwargs_text='{"y": "é ☃"}', started_at=now - timedelta(seconds=2),
                  done_at=now)
    return Outcome(message=message, **{**values, **fields})


def result_fields(task_id):
    row = TaskResult.objects.get(task_id=task_id)
    return {f.attname: getattr(row, f.attname) for f in TaskResult._meta.concrete_fields
            if f.attname not in ("task_id", "date_created")}


def test_a_lone_outcome_is_stored_as_the_array_statement_stores_it():
    parent, group = uuid.uuid4(), uuid.uuid4()
    direct, through_arrays = claimed(2, headers={"parent_id": str(parent), "root_id": str(parent),
                                                 "group_id": str(group), "retries": 3})
    backend = get_backend()
    connection.close()  # a new session: nothing prepared yet
    backend.prepare_wait_for_results()

    backend.finish([outcome(direct)], WORKER)
    assert STORE_ONE in prepared_names()
    with transaction.atomic():  # inside a transaction: the array statement
        backend.store_and_acknowledge([outcome(through_arrays)], [through_arrays.id])

    assert result_fields(direct.task_id) == result_fields(through_arrays.task_id)
    stored = TaskResult.objects.get(task_id=direct.task_id)
    assert (stored.parent_id, stored.group_id, stored.retries) == (str(parent), str(group), 3)
    assert stored.date_created == direct.created_at
    assert (stored.date_started, stored.date_done) == (DONE - timedelta(seconds=2), DONE)
    assert not QueuedMessage.objects.exists()
    assert direct.task_id in backend.wait_for_results(10)


def test_storing_again_updates_the_row():
    (message,) = claimed(1)
    backend = get_backend()
    backend.finish([outcome(message, state=states.RETRY)], WORKER)
    backend.finish([outcome(message, state=states.SUCCESS, traceback=None)], WORKER)
    stored = TaskResult.objects.get(task_id=message.task_id)
    assert (stored.state, stored.traceback) == (states.SUCCESS, None)


def test_errors_are_djangos():
    nul, overflow = claimed(2)
    backend = get_backend()
    with pytest.raises(DataError, match="NUL"):
        backend.finish([outcome(nul, traceback="a\0b")], WORKER)
    overflow.headers["retries"] = 2**40
    with pytest.raises(DataError, match="out of range"):
        backend.finish([outcome(overflow)], WORKER)
    assert STORE_ONE in prepared_names()
    # Nothing stored, nothing acknowledged, and the session still works.
    assert not TaskResult.objects.exists()
    assert QueuedMessage.objects.count() == 2
    backend.finish([outcome(nul)], WORKER)
    assert TaskResult.objects.get(task_id=nul.task_id).state == states.FAILURE
