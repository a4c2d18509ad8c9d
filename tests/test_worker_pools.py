"""The three pools run tasks; prefork replaces dead and retired children."""

import json
import os
import signal
from collections import Counter

import pytest

from django_tasks import states
from django_tasks.exceptions import WorkerLostError
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue import enqueue
from tests.models import Execution
from tests.tasks import (
    add,
    always_exit,
    async_add,
    exit_on_first_delivery,
    record,
    report_pid,
    sleep_for,
)
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_each_pool_runs_tasks_and_async_tasks(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "2")
    assert f"({pool})" in worker.output
    results = [add.delay(i, i) for i in range(20)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(20)]
    assert async_add.delay(2, 3).get(timeout=30) == 5


def test_prefork_runs_tasks_in_parallel_children(start_worker):
    worker = start_worker("--pool", "prefork", "-c", "2")
    slow = [sleep_for.delay(1.0) for _ in range(2)]
    for result in slow:
        result.get(timeout=30)
    starts = sorted(TaskResult.objects.filter(task_id__in=[r.id for r in slow])
                    .values_list("date_started", "date_done"))
    # The second started before the first was done: two slots at once.
    assert starts[1][0] < starts[0][1]
    pids = {report_pid.delay().get(timeout=30) for _ in range(6)}
    assert worker.pid not in pids  # tasks ran in children, not the parent


def test_two_prefork_workers_drain_a_few_thousand_exactly_once(start_worker):
    total = 3000
    enqueue([record.build_message((f"k{i}",)) for i in range(total)])
    start_worker("-c", "2", "--hostname", "a@test")
    start_worker("-c", "2", "--hostname", "b@test")
    wait_until(lambda: not QueuedMessage.objects.exists(), timeout=300, interval=0.5,
               message="the queue to drain")
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert len(runs) == total and set(runs.values()) == {1}
    assert TaskResult.objects.filter(state=states.SUCCESS).count() == total
    assert set(TaskResult.objects.values_list("worker", flat=True)) == {"a@test", "b@test"}


def test_a_child_that_dies_is_replaced_and_its_task_delivered_again(start_worker):
    worker = start_worker("--pool", "prefork", "-c", "1")
    result = exit_on_first_delivery.delay("phoenix")
    assert result.get(timeout=60) == "phoenix"
    row = TaskResult.objects.get(task_id=result.id)
    assert row.deliveries == 2
    worker.wait_for("died running tests.tasks.exit_on_first_delivery")
    worker.wait_for("Delivering tests.tasks.exit_on_first_delivery")
    # The replacement child keeps serving.
    assert add.delay(20, 22).get(timeout=30) == 42


def test_a_dead_childs_prefetched_messages_go_back_uncounted(start_worker):
    worker = start_worker("--pool", "prefork", "-c", "1", "--prefetch-multiplier", "4",
                          ready=False)
    # Claimed together by the one child, which dies running the first.
    doomed = exit_on_first_delivery.delay("doomed")
    bystanders = [record.delay(f"by{i}") for i in range(3)]
    worker.wait_ready()
    assert doomed.get(timeout=60) == "doomed"
    assert [r.get(timeout=30) for r in bystanders] == ["by0", "by1", "by2"]
    deliveries = dict(TaskResult.objects.values_list("task_id", "deliveries"))
    assert deliveries[doomed.id] == 2
    assert [deliveries[r.id] for r in bystanders] == [1, 1, 1]
    assert Execution.objects.filter(key__startswith="by").count() == 3


def test_messages_prefetched_behind_a_long_task_go_to_another_worker(start_worker):
    first = start_worker("--pool", "prefork", "-c", "1", "--prefetch-multiplier", "4",
                         "-n", "first@test", ready=False)
    long = sleep_for.delay(6)
    short = record.delay("short")
    first.wait_ready()
    wait_until(lambda: QueuedMessage.objects.filter(task_id=long.id, claimed_by__isnull=False)
               .exists(), message="the long task to be claimed")
    first.wait_for("prefetched message(s) back to the queue")
    start_worker("--pool", "prefork", "-c", "1", "-n", "second@test")
    assert short.get(timeout=30) == "short"
    assert TaskResult.objects.get(task_id=short.id).worker == "second@test"
    assert long.state != states.SUCCESS  # the short one did not wait for it
    assert long.get(timeout=30) == 6


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_result_is_stored_before_the_next_prefetched_task_runs(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "1", "--prefetch-multiplier", "4", ready=False)
    quick = record.delay("quick")
    slow = sleep_for.delay(4)  # claimed in the same batch, runs right after
    worker.wait_ready()
    assert quick.get(timeout=30) == "quick"
    wait_until(lambda: QueuedMessage.objects.filter(task_id=slow.id, claimed_by__isnull=False)
               .exists(), message="the slow task to be claimed")
    assert slow.state != states.SUCCESS  # quick's result did not wait for it
    assert slow.get(timeout=30) == 4


def test_a_task_that_always_kills_its_child_fails_with_worker_lost(start_worker):
    start_worker("--pool", "prefork", "-c", "1")
    result = always_exit.delay()
    with pytest.raises(WorkerLostError, match="delivered 3 time"):
        result.get(timeout=90)
    assert result.state == states.FAILURE
    assert add.delay(1, 1).get(timeout=30) == 2


def test_max_tasks_per_child_replaces_children(start_worker):
    start_worker("--pool", "prefork", "-c", "1", "--max-tasks-per-child", "2")
    pids = [report_pid.delay().get(timeout=30) for _ in range(6)]
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]


def test_ctrl_c_to_the_process_group_does_not_kill_children_mid_task(start_worker):
    worker = start_worker("--pool", "prefork", "-c", "1")
    result = sleep_for.delay(1.5)
    wait_until(lambda: QueuedMessage.objects.filter(task_id=result.id,
                                                    started_at__isnull=False).exists(),
               message="the task to start")
    # What a terminal's Ctrl-C does: SIGINT to every process of the group.
    os.killpg(worker.pid, signal.SIGINT)
    assert worker.wait_exit(60) == 0
    assert result.get(timeout=5) == 1.5


def test_children_forked_while_the_worker_threads_write_can_write(start_worker):
    # A child per task: every fork lands while the results flusher, the
    # heartbeat and beat are busy with the database. On SQLite a fork in the
    # middle of one of their transactions left the child unable to write.
    total = 150
    enqueue([record.build_message((f"fork{i}",)) for i in range(total)])
    schedule = {"tick": {"task": "tests.tasks.record_tick", "seconds": 1}}
    start_worker("--pool", "prefork", "-c", "2", "--max-tasks-per-child", "1", "--beat",
                 env={"TESTS_BEAT_SCHEDULE": json.dumps(schedule)})
    wait_until(lambda: Execution.objects.filter(key__startswith="fork").count() >= total,
               timeout=120, interval=0.5, message="every task to write its row")
    wait_until(lambda: TaskResult.objects.filter(task_name=record.name).count() >= total,
               timeout=60, message="every result to be stored")
    runs = Counter(Execution.objects.filter(key__startswith="fork")
                   .values_list("key", flat=True))
    assert len(runs) == total and set(runs.values()) == {1}
    rows = TaskResult.objects.filter(task_name=record.name)
    assert set(rows.values_list("state", "deliveries")) == {(states.SUCCESS, 1)}
