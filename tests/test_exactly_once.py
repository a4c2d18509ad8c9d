"""Two workers draining one queue never run the same message twice."""

from collections import Counter

import pytest
from django.db.models import Count

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue import enqueue
from tests.models import Execution
from tests.tasks import record
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = 2000


def test_two_workers_run_each_message_exactly_once(start_worker):
    enqueue([record.build_message((f"k{i}",)) for i in range(TASKS)])
    first = start_worker("--hostname", "one@test", "--prefetch-multiplier", "10")
    second = start_worker("--hostname", "two@test", "--prefetch-multiplier", "10")
    wait_until(lambda: not QueuedMessage.objects.exists(), timeout=300, interval=0.5,
               message="the queue to drain")
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert len(runs) == TASKS
    assert set(runs.values()) == {1}
    assert TaskResult.objects.filter(state=states.SUCCESS).count() == TASKS
    per_worker = dict(TaskResult.objects.values_list("worker").annotate(n=Count("task_id")))
    # Both took part, so the test really exercised concurrent claims.
    assert per_worker.get("one@test", 0) > 0 and per_worker.get("two@test", 0) > 0
    assert first.count("Received task:") + second.count("Received task:") == TASKS
