"""Warm and cold shutdown, and a worker killed with SIGKILL mid-load."""

import signal

import pytest

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult, Worker
from django_tasks.queue import enqueue
from tests.models import Execution
from tests.tasks import record, slow_record
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _started(count):
    return lambda: QueuedMessage.objects.filter(started_at__isnull=False).count() >= count


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_warm_shutdown_finishes_running_tasks_and_releases_the_rest(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "2", "--prefetch-multiplier", "3")
    running = [slow_record.delay(f"run{i}", 1.5) for i in range(2)]
    waiting = [record.delay(f"wait{i}") for i in range(6)]
    wait_until(_started(1 if pool == "solo" else 2), message="tasks to start")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0
    worker.wait_for("Warm shutdown")
    # What was running finished and was stored; nothing else stays claimed.
    started = [r for r in running if r.state == states.SUCCESS]
    assert started, worker.output
    assert not QueuedMessage.objects.filter(claimed_by__isnull=False).exists()
    assert Worker.objects.get().stopped_at is not None
    # Everything else is still queued and runs on the next worker, once.
    start_worker("--pool", pool, "-c", "2")
    for result in running + waiting:
        assert result.get(timeout=60)
    keys = list(Execution.objects.values_list("key", flat=True))
    assert len(keys) == len(set(keys)) == 8


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_cold_shutdown_releases_running_tasks(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "1")
    result = slow_record.delay("cold", 5, 0.05)  # cut short, then quick once delivered again
    wait_until(_started(1), message="the task to start")
    worker.send(signal.SIGTERM)
    worker.wait_for("Warm shutdown")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0
    worker.wait_for("Cold shutdown")
    message = QueuedMessage.objects.get(task_id=result.id)
    assert message.claimed_by is None  # handed back, not lost
    assert not Execution.objects.exists()  # cut short before it recorded anything
    start_worker("--pool", pool)
    assert result.get(timeout=60) == "cold"
    assert TaskResult.objects.get(task_id=result.id).deliveries == 2


def test_sigkill_of_a_worker_mid_load_loses_nothing(start_worker):
    total = 200
    enqueue([slow_record.build_message((f"k{i}", 0.02)) for i in range(total)])
    victim = start_worker("-c", "2", "--prefetch-multiplier", "4", "--hostname", "victim@test")
    wait_until(lambda: Execution.objects.count() >= 20, message="some tasks to run")
    victim.send(signal.SIGKILL)
    victim.wait_exit(30)
    claimed_by_victim = QueuedMessage.objects.filter(claimed_by__isnull=False).count()
    assert claimed_by_victim > 0  # it died holding work
    rescuer = start_worker("-c", "2", "--hostname", "rescuer@test")
    wait_until(lambda: not QueuedMessage.objects.exists(), timeout=120, interval=0.5,
               message="the queue to drain")
    assert TaskResult.objects.filter(state=states.SUCCESS).count() == total
    assert set(Execution.objects.values_list("key", flat=True)) == {f"k{i}" for i in range(total)}
    redelivered = TaskResult.objects.filter(deliveries__gt=1).count()
    assert redelivered >= claimed_by_victim
    rescuer.wait_for("from lost workers")
    assert Worker.objects.get(hostname="victim@test").stopped_at is not None
