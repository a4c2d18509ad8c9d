"""apply_async options: countdown, eta, queue, expires, priority, task_id, routes."""

import time
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from django_tasks import AsyncResult, states
from django_tasks.exceptions import TaskRevokedError
from django_tasks.messages import new_task_id, new_task_ids
from django_tasks.models import QueuedMessage, TaskResult
from tests.models import Execution
from tests.tasks import add, record
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_countdown_runs_no_earlier_than_asked(start_worker):
    start_worker()
    sent = timezone.now()
    result = add.apply_async((1, 2), countdown=1.5)
    assert result.get(timeout=20) == 3
    row = TaskResult.objects.get(task_id=result.id)
    assert row.date_started >= sent + timedelta(seconds=1.5)


def test_eta_runs_no_earlier_than_asked(start_worker):
    start_worker()
    eta = timezone.now() + timedelta(seconds=1)
    result = add.apply_async((2, 2), eta=eta)
    assert result.get(timeout=20) == 4
    assert TaskResult.objects.get(task_id=result.id).date_started >= eta


def test_queue_reaches_only_a_worker_consuming_it(start_worker):
    default_worker = start_worker("-Q", "default")
    result = add.apply_async((5, 5), queue="reports")
    other = add.delay(1, 1)
    assert other.get(timeout=10) == 2  # the default worker is alive and working
    assert result.state == states.PENDING
    assert QueuedMessage.objects.get(task_id=result.id).queue == "reports"
    reports_worker = start_worker("-Q", "reports", "--hostname", "reports@test")
    assert result.get(timeout=10) == 10
    assert result.worker == "reports@test"
    assert f"[{result.id}]" not in default_worker.output
    assert f"Received task: tests.tasks.add[{result.id}]" in reports_worker.output


def test_expires_in_the_past_ends_revoked(start_worker):
    result = add.apply_async((1, 1), expires=timezone.now() - timedelta(seconds=1))
    also = add.apply_async((1, 1), expires=0.001)
    start_worker()
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=10)
    assert result.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        also.get(timeout=10)


def test_expires_in_the_future_still_runs(start_worker):
    start_worker()
    assert add.apply_async((1, 1), expires=60).get(timeout=10) == 2


def test_higher_priority_runs_first(start_worker):
    keys = [("low", 0), ("high", 9), ("middle", 5), ("highest", 10), ("lowest", -3)]
    results = [record.apply_async((key,), priority=priority) for key, priority in keys]
    start_worker("--pool", "solo")  # one at a time, so run order is claim order
    for result in results:
        result.get(timeout=20)
    order = list(Execution.objects.order_by("id").values_list("key", flat=True))
    assert order == ["highest", "high", "middle", "low", "lowest"]


def test_a_worker_on_two_queues_runs_the_higher_priority_first_across_them(start_worker):
    keys = [("a-low", "a", 0), ("a-middle", "a", 5), ("b-high", "b", 9), ("b-lowest", "b", -3),
            ("a-highest", "a", 10)]
    results = [record.apply_async((key,), queue=queue, priority=priority)
               for key, queue, priority in keys]
    # One message per claim: each claim must pick the best of both queues.
    start_worker("--pool", "solo", "-Q", "a,b", "--prefetch-multiplier", "1")
    for result in results:
        result.get(timeout=20)
    order = list(Execution.objects.order_by("id").values_list("key", flat=True))
    assert order == ["a-highest", "b-high", "a-middle", "a-low", "b-lowest"]


def test_given_task_id_is_used(start_worker):
    start_worker()
    task_id = uuid.uuid4()
    result = add.apply_async((1, 4), task_id=task_id)
    assert result.id == str(task_id)
    assert AsyncResult(task_id).get(timeout=10) == 5


def test_ignore_result_stores_no_success(start_worker):
    start_worker()
    ignored = add.apply_async((1, 1), ignore_result=True)
    follow = add.delay(2, 2)
    assert follow.get(timeout=10) == 4
    wait_until(lambda: not QueuedMessage.objects.filter(task_id=ignored.id).exists(),
               message="the ignored task to be acknowledged")
    assert not TaskResult.objects.filter(task_id=ignored.id).exists()


def test_task_routes_choose_queue_and_priority():
    routes = {"tests.tasks.rec*": {"queue": "recording", "priority": 7},
              "tests.*": {"queue": "tests"}}
    with override_settings(DJANGO_TASKS={"TASK_ROUTES": routes}):
        recorded = record.delay("x")
        added = add.delay(1, 1)
        explicit = add.apply_async((1, 1), queue="mine", priority=1)
    by_id = {str(m.task_id): m for m in QueuedMessage.objects.all()}
    assert (by_id[recorded.id].queue, by_id[recorded.id].priority) == ("recording", 7)
    assert (by_id[added.id].queue, by_id[added.id].priority) == ("tests", 0)
    assert (by_id[explicit.id].queue, by_id[explicit.id].priority) == ("mine", 1)


def test_default_queue_setting_is_used_and_follows_changes_of_the_setting():
    before = add.delay(1, 1)  # the default read, and kept
    with override_settings(DJANGO_TASKS={"DEFAULT_QUEUE": "elsewhere"}):
        result = add.delay(1, 1)
    after = add.delay(1, 1)
    queues = dict(QueuedMessage.objects.values_list("task_id", "queue"))
    assert [queues[r.id] for r in (before, result, after)] == [
        "default", "elsewhere", "default"]


def test_countdown_and_eta_together_is_an_error():
    with pytest.raises(ValueError, match="countdown or eta"):
        add.apply_async((1, 1), countdown=1, eta=timezone.now())


def test_task_ids_are_version_7_uuids_in_canonical_text():
    before_ms = time.time_ns() // 1_000_000
    ids = [new_task_id() for _ in range(2000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for task_id in ids:
        parsed = uuid.UUID(task_id)
        assert str(parsed) == task_id
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        # The first 48 bits are the clock's milliseconds.
        assert before_ms <= parsed.int >> 80 <= after_ms


def test_a_groups_task_ids_are_version_7_uuids_made_at_once_in_ascending_order():
    """new_task_ids(): as new_task_id()'s, one clock reading for all, each
    random; ascending (what makes them reach the queue's task_id index at
    its end)."""
    assert new_task_ids(0) == []
    before_ms = time.time_ns() // 1_000_000
    ids = new_task_ids(5000)
    after_ms = time.time_ns() // 1_000_000
    assert len(ids) == len(set(ids)) == 5000
    assert ids == sorted(ids)
    parsed = [uuid.UUID(task_id) for task_id in ids]
    assert [str(one) for one in parsed] == ids
    assert all(one.version == 7 and one.variant == uuid.RFC_4122 for one in parsed)
    assert len({one.int >> 80 for one in parsed}) == 1
    assert before_ms <= parsed[0].int >> 80 <= after_ms
    # rand_a (12 bits) and rand_b (62): each of their bits varies, no other does.
    varying = 0
    for one in parsed:
        varying |= one.int ^ parsed[0].int
    assert varying == (0xFFF << 64) | ((1 << 62) - 1)


def test_task_ids_sent_later_sort_after_earlier_ones():
    """What keeps the results' primary key growing at its right edge."""
    earlier = [new_task_id() for _ in range(100)]
    millisecond = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == millisecond:
        pass  # ids of the same millisecond are in random order
    later = [new_task_id() for _ in range(100)]
    assert max(earlier) < min(later)
    assert max(map(uuid.UUID, earlier)) < min(map(uuid.UUID, later))


