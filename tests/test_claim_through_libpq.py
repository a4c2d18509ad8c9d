"""A claim of one queue outside a transaction on PostgreSQL goes through libpq
directly (a prepared ``django_tasks_claim_…``): the same messages as psycopg's
cursor reads (the claim inside a transaction), a prepared statement the
session lost is prepared again, and a row Python cannot read still comes
back, corrupt, with its batch-mates."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_tasks.models import QueuedMessage
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import live_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

QUEUE = "direct"


def claim_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall() if row[0].startswith("django_tasks_claim_")]


def send(count, **options):
    eta = timezone.now() - timedelta(seconds=5)
    return [add.apply_async((i,), {"y": ["é ☃", {"z": None}]}, queue=QUEUE, eta=eta,
                            headers={"parent_id": str(uuid.uuid4()), "retries": 2}, **options)
            for i in range(count)]


def test_a_claim_reads_what_the_cursor_reads():
    (sent,) = send(1, priority=3, expires=timezone.now() + timedelta(hours=1))
    backend, worker = get_backend(), live_worker()
    connection.close()  # a new session: nothing prepared yet
    with transaction.atomic():  # inside a transaction: psycopg's cursor, rolled back
        (through_cursor,) = backend.claim(worker, [QUEUE], 1, start=1, pid=7)
        transaction.set_rollback(True)
    assert claim_names() == []
    (direct,) = backend.claim(worker, [QUEUE], 1, start=1, pid=7)
    assert len(claim_names()) == 1
    assert vars(direct) == vars(through_cursor)
    assert direct.task_id == sent.id
    assert direct.available_at.utcoffset() == timedelta(0)
    assert (direct.priority, direct.deliveries, direct.started) == (3, 1, True)
    assert direct.headers["retries"] == 2
    row = QueuedMessage.objects.get(task_id=direct.task_id)
    assert (str(row.claimed_by), row.claimed_pid) == (str(worker), 7)


def test_a_claim_the_session_lost_is_prepared_again():
    send(3)
    backend, worker = get_backend(), live_worker()
    assert len(backend.claim(worker, [QUEUE], 1, start=1, pid=7)) == 1
    assert len(claim_names()) == 1
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert claim_names() == []
    assert len(backend.claim(worker, [QUEUE], 1, start=1, pid=7)) == 1
    assert len(claim_names()) == 1


def test_a_row_python_cannot_read_comes_back_corrupt_with_its_batch_mates():
    readable, unreadable = send(2)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE django_tasks_queuedmessage SET created_at = 'infinity' "
                       "WHERE task_id = %s", [unreadable.id])
    claimed = get_backend().claim(live_worker(), [QUEUE], 2, start=2, pid=7)
    assert len(claim_names()) == 1
    by_id = {m.task_id: m for m in claimed}
    assert set(by_id) == {readable.id, unreadable.id}
    assert not by_id[readable.id].corrupt
    assert by_id[unreadable.id].corrupt
