"""Transactional enqueue: a task exists for workers only if its transaction commits."""

import pytest
from django.db import transaction

from django_tasks import states
from django_tasks.models import QueuedMessage
from tests.models import Note
from tests.tasks import add, write_note

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def test_rolled_back_enqueue_never_runs(start_worker):
    start_worker()
    with pytest.raises(Rollback), transaction.atomic():
        doomed = write_note.delay("rolled back")
        raise Rollback
    committed = write_note.delay("after")  # the worker is alive and draining
    assert committed.get(timeout=10) == "after"
    assert not QueuedMessage.objects.filter(task_id=doomed.id).exists()
    assert doomed.state == states.PENDING
    assert list(Note.objects.values_list("text", flat=True)) == ["after"]


def test_committed_enqueue_runs(start_worker):
    start_worker()
    with transaction.atomic():
        result = write_note.delay("committed")
    assert result.get(timeout=10) == "committed"
    assert Note.objects.filter(text="committed").count() == 1


def test_get_inside_the_enqueueing_transaction_is_refused():
    with transaction.atomic():
        result = add.delay(1, 2)
        with pytest.raises(RuntimeError, match="still-open transaction"):
            result.get(timeout=1)


def test_get_inside_a_task_is_refused():
    from django_tasks.context import Request, running_task

    token = running_task.set(Request(id="outer"))
    try:
        with pytest.raises(RuntimeError, match="within a task"):
            add.delay(1, 1).get(timeout=1)
    finally:
        running_task.reset(token)
