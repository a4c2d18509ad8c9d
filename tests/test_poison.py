"""Poison: values a worker cannot store, hostile wake-ups, moments out of range.

Each ends as the offending message's FAILURE (or an error at call time);
the worker stays up and every other message runs, once.
"""

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test import override_settings

from django_tasks import group, states, task
from django_tasks.exceptions import WorkerLostError
from django_tasks.models import QueuedMessage, TaskResult
from tests import poison_tasks
from tests.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)

POISON = [
    (poison_tasks.return_cyclic, ()),
    (poison_tasks.return_nested, (100_000,)),
    (poison_tasks.raise_with_cyclic_args, ()),
    (poison_tasks.raise_with_nested_args, (5_000,)),
    (poison_tasks.exit_the_process, ()),
    (poison_tasks.raise_own_base_exception, ()),
    (poison_tasks.raise_cold_shutdown, ()),
]


def _assert_alive(worker):
    assert worker.proc.poll() is None, f"worker exited:\n{worker.output}"


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_poison_results_fail_their_task_and_nothing_else(start_worker, pool):
    worker = start_worker("-P", pool, "-c", "2")
    # Poison and ordinary messages claimed in the same batches.
    sent = []
    for poison, args in POISON:
        sent.append(poison.delay(*args))
        sent.append(add.delay(len(sent), 1))
    for result in sent:
        result.get(timeout=60, propagate=False)
    for index, result in enumerate(sent):
        row = TaskResult.objects.get(task_id=result.id)
        if index % 2:
            assert (row.state, result.result) == (states.SUCCESS, index + 1)
        else:
            assert row.state == states.FAILURE, (POISON[index // 2], row.result)
            assert isinstance(result.result, BaseException)
            assert str(result.result)
        assert row.deliveries == 1, (row.task_name, row.deliveries)
    assert not QueuedMessage.objects.exists()
    # What a task exits with is its failure, not the worker's.
    exit_result = sent[2 * 4]
    assert type(exit_result.result).__name__ == "SystemExit"
    _assert_alive(worker)
    assert add.delay(20, 22).get(timeout=30) == 42
    assert "died" not in worker.output


def test_a_dead_pool_thread_is_replaced_and_its_task_failed(start_worker):
    worker = start_worker("-P", "threads", "-c", "2")
    killers = [poison_tasks.end_the_pool_thread.delay() for _ in range(3)]
    for killer in killers:
        with pytest.raises(WorkerLostError, match="ThreadPoolWorker-.* died"):
            killer.get(timeout=30)
    # Both slots work again: more tasks than slots, all of them run.
    results = [add.delay(i, i) for i in range(10)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(10)]
    worker.wait_for("died running", times=3)
    _assert_alive(worker)


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_hostile_notifications_only_wake_the_worker(start_worker, postgres_only, pool):
    worker = start_worker("-P", pool, "-c", "2")
    payloads = ["9" * 5000 + " default", "9" * 5000, "99999999999 default", "1" * 7000,
                "\u00b2\u00b3 default", "-1 default", " ", "", "release release", "x" * 7990,
                "0 default", "default 5"]
    with connection.cursor() as cursor:
        for payload in payloads:
            cursor.execute("SELECT pg_notify('django_tasks_queue', %s)", [payload])
    assert add.delay(1, 1).get(timeout=30) == 2
    # Sent after the notifications were read: the worker is still woken by them.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('django_tasks_queue', %s)", ["9" * 5000 + " default"])
    assert [r.get(timeout=30) for r in [add.delay(i, 1) for i in range(5)]] == [1, 2, 3, 4, 5]
    _assert_alive(worker)
    assert "Traceback" not in worker.output


def test_announced_wake_ups_of_any_shape():
    from django_tasks.queue.postgresql import _wakeups_announced

    assert _wakeups_announced(["9" * 5000 + " default"]) is None
    assert _wakeups_announced(["99999999999 default"]) is None
    assert _wakeups_announced(["\u00b2\u00b3 default", "3 default"]) == 4
    assert _wakeups_announced(["", " ", "default 5", "x" * 7990]) == 4


EDGES = [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC),
         datetime.min.replace(tzinfo=ZoneInfo("Pacific/Kiritimati")),
         datetime.max.replace(tzinfo=ZoneInfo("Pacific/Pago_Pago")),
         datetime(1, 1, 1, 12), datetime(9999, 12, 31)]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/Adak"])
@pytest.mark.parametrize("moment", EDGES, ids=range(len(EDGES)))
def test_moments_out_of_range_are_refused_at_call_time(zone, moment):
    with override_settings(TIME_ZONE=zone):
        for options in ({"eta": moment}, {"expires": moment}):
            with pytest.raises(ValueError, match="out of range"), transaction.atomic():
                add.apply_async((1, 1), **options)
            with pytest.raises(ValueError, match="out of range"):
                add.s(1, 1).apply_async(**options)
            with pytest.raises(ValueError, match="out of range"):
                group(add.s(1, 1), add.s(2, 2)).apply_async(**options)
    assert not QueuedMessage.objects.exists()


@pytest.mark.parametrize("options, error", [
    ({"countdown": 1e300}, "out of range"), ({"countdown": math.inf}, "finite"),
    ({"countdown": math.nan}, "finite"), ({"countdown": "soon"}, "number of seconds"),
    ({"expires": 1e300}, "out of range"), ({"expires": -math.inf}, "finite"),
    ({"expires": timedelta.max}, "out of range"),
    ({"time_limit": 1e300}, "time_limit"), ({"soft_time_limit": math.nan}, "soft_time_limit"),
    ({"time_limit": -1}, "time_limit"),
])
def test_durations_out_of_range_are_refused_at_call_time(options, error):
    with pytest.raises((ValueError, TypeError), match=error):
        add.apply_async((1, 1), **options)
    assert not QueuedMessage.objects.exists()


def test_a_task_declared_with_an_impossible_time_limit_is_refused():
    with pytest.raises(ValueError, match="time_limit"):
        task(time_limit=1e300)(lambda: None)


def test_a_retry_too_far_away_fails_the_task_with_the_reason(start_worker):
    start_worker("-P", "solo")
    result = poison_tasks.retry_in.delay(1e300)
    with pytest.raises(ValueError, match="countdown .* out of range"):
        result.get(timeout=30)
    assert add.delay(1, 2).get(timeout=30) == 3


UNKNOWN = "some.task.this_worker_does_not_know"


def _unknown(task_id):
    from django_tasks import signature

    return signature(UNKNOWN, task_id=task_id)


def test_links_to_a_task_no_one_knows_end_as_that_links_failure(start_worker):
    import uuid

    from django_tasks import AsyncResult
    from django_tasks.exceptions import NotRegistered, TaskRevokedError

    worker = start_worker("-P", "prefork", "-c", "2")
    ids = [str(uuid.uuid4()) for _ in range(4)]
    failed = add.apply_async((1, "x"), link_error=_unknown(ids[0]))
    succeeded = add.apply_async((2, 2), link=_unknown(ids[1]))
    # Expires before it can start: housekeeping ends it. As in Celery, an
    # expired or revoked task runs no errback (the transaction that stored
    # REVOKED would have enqueued it).
    expired = add.apply_async((1, 1), eta=datetime.now(UTC) + timedelta(seconds=3),
                              expires=1, link_error=_unknown(ids[2]))
    revoked = add.apply_async((3, 3), countdown=3600, link_error=_unknown(ids[3]))
    assert revoked.revoke() == 1
    assert succeeded.get(timeout=30) == 4 and succeeded.state == states.SUCCESS
    with pytest.raises(TaskRevokedError, match="expired"):
        expired.get(timeout=30)
    for link_id in ids[:2]:
        with pytest.raises(NotRegistered, match=UNKNOWN):
            AsyncResult(link_id).get(timeout=30)
    assert failed.state == states.FAILURE
    assert revoked.state == states.REVOKED
    for errback_id in ids[2:]:
        assert AsyncResult(errback_id).state == states.PENDING
        assert not QueuedMessage.objects.filter(task_id=errback_id).exists()
    _assert_alive(worker)
    assert add.delay(5, 5).get(timeout=30) == 10


def test_a_message_that_breaks_the_loop_is_counted_and_its_batch_mates_are_not(start_worker):
    from tests.workers import wait_until

    sabotage = poison_tasks.sabotage_the_loop.delay()
    mates = [add.delay(i, 1) for i in range(3)]
    # One child: it claims the saboteur with its batch-mates, every time.
    worker = start_worker("-P", "prefork", "-c", "1")
    with pytest.raises(WorkerLostError, match="loop failed .*sabotaged.*poison message"):
        sabotage.get(timeout=60)
    assert [r.get(timeout=30) for r in mates] == [1, 2, 3]
    assert TaskResult.objects.get(task_id=sabotage.id).deliveries == 3
    assert [TaskResult.objects.get(task_id=r.id).deliveries for r in mates] == [1, 1, 1]
    _assert_alive(worker)
    assert add.delay(2, 2).get(timeout=30) == 4

    # A solo worker is that loop: it hands back what it held and exits.
    assert worker.stop() == 0
    sabotage = poison_tasks.sabotage_the_loop.delay()
    mate = add.delay(5, 5)
    solo = start_worker("-P", "solo", "--prefetch-multiplier", "4")
    assert solo.wait_exit() == 1
    rows = {str(row.task_id): row for row in QueuedMessage.objects.all()}
    wait_until(lambda: not QueuedMessage.objects.filter(claimed_by__isnull=False).exists())
    assert rows[sabotage.id].deliveries == 1
    assert rows[mate.id].deliveries == 0


def test_a_message_that_kills_its_child_counts_only_its_own_deliveries(start_worker):
    from tests.tasks import always_exit

    killer = always_exit.delay()
    mates = [add.delay(i, 2) for i in range(3)]
    worker = start_worker("-P", "prefork", "-c", "1")
    with pytest.raises(WorkerLostError, match="delivered 3 time.*poison message"):
        killer.get(timeout=90)
    assert [r.get(timeout=30) for r in mates] == [2, 3, 4]
    assert [TaskResult.objects.get(task_id=r.id).deliveries for r in mates] == [1, 1, 1]
    _assert_alive(worker)


def test_an_integer_too_long_for_text_is_refused_at_call_time():
    from django_tasks.exceptions import EncodeError

    with pytest.raises(EncodeError, match="argument 'x'"):
        add.delay(10**5000, 1)
    assert not QueuedMessage.objects.exists()


@pytest.mark.parametrize("options, error", [
    ({"queue": "a,b"}, "cannot be consumed"), ({"queue": " padded"}, "cannot be consumed"),
    ({"queue": "\u2028"}, "cannot be consumed"),
    ({"queue": "q" * 201}, "cannot be consumed"), ({"priority": 40000}, "out of range"),
    ({"priority": -40000}, "out of range"),
])
def test_queues_no_worker_can_consume_and_priorities_out_of_range_are_refused(options, error):
    with pytest.raises(ValueError, match=error):
        add.apply_async((1, 1), **options)
    with pytest.raises(ValueError, match=error):
        group(add.s(1, 1).set(**options), add.s(2, 2)).apply_async()
    assert not QueuedMessage.objects.exists()
