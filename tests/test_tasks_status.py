"""tasks_status shows queues, live workers with what they run, and throughput."""

from io import StringIO

import pytest
from django.core.management import call_command

from django_tasks.models import QueuedMessage
from tests.tasks import add, spin_record
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_status_shows_queues_workers_and_throughput(start_worker):
    add.apply_async((1, 1), queue="idle-queue")
    start_worker("-c", "1", "--hostname", "status@test")
    for i in range(5):
        add.delay(i, i).get(timeout=30)
    running = spin_record.delay("status", 10)
    wait_until(lambda: QueuedMessage.objects.filter(task_id=running.id,
                                                    started_at__isnull=False).exists(),
               message="the task to start")
    out = StringIO()
    call_command("tasks_status", stdout=out)
    text = out.getvalue()
    assert "idle-queue" in text and "waiting       1" in text
    assert "status@test" in text
    assert f"running tests.tasks.spin_record[{running.id}]" in text
    assert "Throughput, last 5 min: 5 done" in text
    running.revoke(terminate=True)
