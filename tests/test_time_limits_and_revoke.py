"""Soft and hard time limits; revoke before and during execution."""

import pytest

from django_tasks import AsyncResult, states
from django_tasks.exceptions import TaskRevokedError, TimeLimitExceeded
from django_tasks.models import QueuedMessage
from tests.models import Execution, Note
from tests.tasks import add, cleans_up_on_soft_limit, ignores_limits, sleep_for, spin_record
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_soft_time_limit_is_raised_inside_the_task(start_worker, pool):
    start_worker("--pool", pool, "-c", "1")
    result = cleans_up_on_soft_limit.delay(10)
    assert result.get(timeout=30) == "cleaned up"
    assert Note.objects.filter(text="cleaned up").exists()


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_hard_time_limit_fails_the_task(start_worker, pool):
    start_worker("--pool", pool, "-c", "1")
    # A thread can only be interrupted between Python steps (see docs/retries-and-time-limits.rst).
    task = spin_record if pool == "threads" else sleep_for
    args = ("limited", 30) if pool == "threads" else (30,)
    result = task.apply_async(args, time_limit=1)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=30)
    assert result.state == states.FAILURE
    assert add.delay(1, 1).get(timeout=30) == 2  # the slot serves again


def test_prefork_kills_a_child_that_swallows_its_time_limit(start_worker):
    worker = start_worker("--pool", "prefork", "-c", "1")
    result = ignores_limits.delay(60)
    with pytest.raises(TimeLimitExceeded, match="time limit"):
        result.get(timeout=30)
    worker.wait_for("child killed")
    assert add.delay(2, 2).get(timeout=30) == 4  # a new child took its place


def test_revoke_before_it_starts(start_worker):
    result = add.delay(1, 1)
    assert result.revoke() == 1
    assert result.state == states.REVOKED
    assert not QueuedMessage.objects.filter(task_id=result.id).exists()
    start_worker()
    assert add.delay(2, 2).get(timeout=30) == 4
    with pytest.raises(TaskRevokedError):
        AsyncResult(result.id).get(timeout=1)


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_revoke_terminate_stops_a_running_task(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "1")
    result = spin_record.delay("never", 20)
    wait_until(lambda: QueuedMessage.objects.filter(task_id=result.id,
                                                    started_at__isnull=False).exists(),
               message="the task to start")
    assert result.revoke(terminate=True) == 1
    with pytest.raises(TaskRevokedError, match="terminated"):
        result.get(timeout=30)
    assert result.state == states.REVOKED
    assert not Execution.objects.exists()
    worker.wait_for(f"Terminating task {result.id}")
    assert add.delay(3, 3).get(timeout=30) == 6
