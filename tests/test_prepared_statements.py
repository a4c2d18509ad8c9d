"""The statements every task runs (enqueue, claim, store) are prepared once per
connection on PostgreSQL, unless PREPARED_STATEMENTS is off; nothing else is."""


import pytest
from django.db import connection
from django.test.utils import override_settings

from django_tasks import states
from django_tasks.execution import execute
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import live_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

QUEUE = "prepared"
MARKS = {"enqueue": "INSERT INTO django_tasks_queuedmessage",
         "claim": "FOR UPDATE SKIP LOCKED",
         # Batches of outcomes bind arrays; a lone outcome, scalars.
         "store a batch": "INSERT INTO django_tasks_taskresult (task_id, task_name, state, "
                          "content_type, result, traceback, args, kwargs, queue, worker, retries, "
                          "deliveries, parent_id, root_id, group_id, date_created, date_started, "
                          "date_done)\n    SELECT * FROM unnest(",
         "store one": "INSERT INTO django_tasks_taskresult (task_id, task_name, state, "
                      "content_type, result, traceback, args, kwargs, queue, worker, retries, "
                      "deliveries, parent_id, root_id, group_id, date_created, date_started, "
                      "date_done)\n    VALUES ("}


def prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def enqueue_claim_run_and_store(count):
    sent = [add.apply_async((i, i), queue=QUEUE) for i in range(count)]
    backend, worker_id = get_backend(), live_worker()
    claimed = []
    while len(claimed) < count:  # a claim at a time: the statements run again
        batch = backend.claim(worker_id, [QUEUE], 2, start=2, pid=4242)
        assert batch, "a message was not claimed"
        backend.finish([execute(m) for m in batch], worker_id)
        claimed += batch
    assert sorted(m.task_id for m in claimed) == sorted(r.id for r in sent)
    assert TaskResult.objects.filter(state=states.SUCCESS).count() == count


def test_the_statements_every_task_runs_are_prepared_once_per_connection():
    connection.close()  # a new session: nothing prepared yet
    enqueue_claim_run_and_store(5)
    statements = prepared_statements()
    for name, mark in MARKS.items():
        assert sum(mark in s for s in statements) == 1, (name, statements)
    # Django's own queries stay unprepared, however often they run.
    for _ in range(10):
        QueuedMessage.objects.filter(queue=QUEUE).count()
    assert len(prepared_statements()) == len(statements)


def test_with_prepared_statements_off_nothing_is_prepared():
    connection.close()
    with override_settings(DJANGO_TASKS={"PREPARED_STATEMENTS": False}):
        enqueue_claim_run_and_store(5)
        assert prepared_statements() == []
        # Django's setting for the connection (no preparing) is left as it was.
        assert connection.connection.prepare_threshold is None
