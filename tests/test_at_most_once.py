"""acks_late=False: a task that must run at most once is never run again after
its worker died mid-task; it ends FAILURE with WorkerLostError. Messages
that had not begun (prefetched) still run, once; default tasks are still
delivered again."""

import os
import signal
from collections import Counter

import pytest
from django.db import transaction
from django.test import override_settings

from django_tasks import states, task
from django_tasks.delivery_checks import check_delivery_options
from django_tasks.exceptions import WorkerLostError
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.worker.at_most_once import acks_late
from tests.delivery_tasks import once_record, once_then_block, record_then_block_first_time
from tests.models import Execution
from tests.workers import stop_processes, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BLOCK = 120  # seconds: far longer than any test waits


def _runs():
    return Counter(Execution.objects.values_list("key", flat=True))


def _ran(*keys):
    return lambda: all(Execution.objects.filter(key=key).exists() for key in keys)


def _lost(result):
    assert result.get(timeout=60, propagate=False) is not None
    row = TaskResult.objects.get(task_id=result.id)
    assert row.state == states.FAILURE, row.result
    with pytest.raises(WorkerLostError, match="acks_late=False"):
        result.get(timeout=1)


def _send_together(*calls):
    """One transaction: one claim can take all of them (a batch, with prefetch)."""
    with transaction.atomic():
        return [function.delay(*args) for function, *args in calls]


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_a_killed_worker_fails_its_begun_at_most_once_task(start_worker, pool):
    worker = start_worker("-P", pool, "-c", "2", "--prefetch-multiplier", "4")
    calls = [(once_then_block, "once", BLOCK)]
    if pool != "solo":
        calls.append((record_then_block_first_time, "default", BLOCK))
    calls += [(once_record, f"later-{i}") for i in range(4)]
    results = _send_together(*calls)
    wait_until(_ran(*(key for _, key, *_ in calls[:2 if pool != "solo" else 1])),
               message="the blocking tasks to begin")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its children
    worker.wait_exit()
    start_worker("-P", "solo")  # recovers the lost worker's messages, runs them
    _lost(results[0])
    later = results[-4:]
    assert sorted(r.get(timeout=60) for r in later) == [f"later-{i}" for i in range(4)]
    runs = _runs()
    assert runs["once"] == 1
    assert all(runs[f"later-{i}"] == 1 for i in range(4)), runs
    if pool != "solo":
        assert results[1].get(timeout=60) == "default"
        assert runs["default"] == 2  # at least once: delivered again
    assert not QueuedMessage.objects.exists()


def test_a_dead_prefork_child_fails_its_begun_at_most_once_task(start_worker):
    worker = start_worker("-P", "prefork", "-c", "2", "--prefetch-multiplier", "4")
    blocked, default, *later = _send_together(
        (once_then_block, "once", BLOCK), (record_then_block_first_time, "default", BLOCK),
        *[(once_record, f"later-{i}") for i in range(4)])
    wait_until(_ran("once", "default"), message="the blocking tasks to begin")
    for key in ("once", "default"):
        os.kill(Execution.objects.get(key=key).pid, signal.SIGKILL)
    _lost(blocked)
    assert default.get(timeout=60) == "default"
    assert sorted(r.get(timeout=60) for r in later) == [f"later-{i}" for i in range(4)]
    runs = _runs()
    assert runs["once"] == 1 and runs["default"] == 2
    assert all(runs[f"later-{i}"] == 1 for i in range(4)), runs
    assert worker.proc.poll() is None
    worker.wait_for("died running tests.delivery_tasks.once_then_block")


@pytest.mark.parametrize("pool", ["solo", "prefork", "threads"])
def test_a_cold_shutdown_fails_a_begun_at_most_once_task(start_worker, pool):
    worker = start_worker("-P", pool, "-c", "1")
    blocked = once_then_block.delay("once", BLOCK)
    wait_until(_ran("once"), message="the task to begin")
    worker.send(signal.SIGTERM)
    worker.wait_for("Warm shutdown")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0
    _lost(blocked)
    assert not QueuedMessage.objects.exists()
    start_worker("-P", pool)
    assert once_record.delay("after").get(timeout=60) == "after"
    assert _runs()["once"] == 1


def test_acks_late_follows_the_setting_unless_the_task_says():
    @task(name="tests.at_most_once.plain")
    def plain():
        return None

    @task(name="tests.at_most_once.late", acks_late=True)
    def late():
        return None

    assert plain.acks_late is None and acks_late(plain)
    assert not acks_late(once_record)
    with override_settings(DJANGO_TASKS={"ACKS_LATE": False}):
        assert not acks_late(plain)
        assert acks_late(late)


def test_celerys_other_delivery_options_are_accepted():
    @task(name="tests.at_most_once.options", acks_late=True, reject_on_worker_lost=True,
          acks_on_failure_or_timeout=False)
    def options():
        return None

    assert options.reject_on_worker_lost is True
    assert options.acks_on_failure_or_timeout is False
    notes = {message.id: message for message in check_delivery_options()
             if message.obj == "tests.at_most_once.options"}
    assert set(notes) == {"django_tasks.I041"}
    assert "no effect" in notes["django_tasks.I041"].msg


def test_a_delivery_option_that_is_not_a_boolean_is_refused():
    with pytest.raises(TypeError, match="acks_late"):
        task(name="tests.at_most_once.bad", acks_late="no")(lambda: None)


def test_a_worker_declared_lost_mid_task_does_not_run_it_again(start_worker):
    # The keeper consumes another queue: it only declares the stalled worker
    # lost and recovers what that one held.
    start_worker("-P", "solo", "-Q", "elsewhere")
    stalled = start_worker("-P", "solo")
    blocked = once_then_block.delay("once", BLOCK)
    wait_until(_ran("once"), message="the task to begin")
    stop_processes([stalled.pid])
    try:
        wait_until(lambda: TaskResult.objects.filter(task_id=blocked.id).exists(), timeout=60,
                   message="the keeper to end the lost worker's task")
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
    _lost(blocked)
    stalled.wait_for("Going on as worker", timeout=30)
    assert once_record.delay("after").get(timeout=60) == "after"
    assert _runs() == Counter({"once": 1, "after": 1})
    assert TaskResult.objects.get(task_id=blocked.id).state == states.FAILURE
