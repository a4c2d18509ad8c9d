"""``atomic=True``: a task killed halfway leaves nothing behind and runs again."""

import signal
import uuid

import pytest

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult
from tests.canvas_tasks import atomic_note_then_hang
from tests.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


def test_atomic_task_killed_mid_task_leaves_no_rows_and_succeeds_on_redelivery(start_worker):
    # Solo pool: the task runs in the process that is killed.
    victim = start_worker("-P", "solo", "--hostname", "victim@test")
    text = f"atomic {uuid.uuid4()}"
    result = atomic_note_then_hang.delay(text)
    victim.wait_for(f"halfway through {text}")  # its Note row is written, not committed
    victim.send(signal.SIGKILL)
    victim.wait_exit()
    assert not Note.objects.filter(text=text).exists()
    assert not TaskResult.objects.filter(task_id=result.id).exists()
    assert QueuedMessage.objects.get(task_id=result.id).deliveries == 1
    # Another worker finds the victim's heartbeat stale and delivers the task again.
    start_worker("-P", "solo", "--hostname", "rescuer@test")
    assert result.get(timeout=60) == text
    assert result.state == states.SUCCESS
    assert Note.objects.filter(text=text).count() == 1
    assert not QueuedMessage.objects.filter(task_id=result.id).exists()
