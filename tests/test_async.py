"""Async: adelay/aapply_async, aget/astate, .delay() inside a running event
loop, and ``async def`` tasks sharing one event loop per worker process."""

import asyncio
import signal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections, transaction
from django.test import override_settings

from django_tasks import EagerResult, chain, group, states
from django_tasks.exceptions import (
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    TimeoutError,
)
from django_tasks.models import QueuedMessage, TaskResult
from tests.models import Note
from tests.tasks import (
    add,
    async_add,
    async_cleans_up,
    async_exits,
    async_fails,
    async_sees_note,
    async_sees_revoke,
    async_sleep,
    async_task_group,
    atomic_async_note,
    blocks_the_loop,
    enqueues_from_the_loop,
    meet,
    stops_the_loop,
    use_shared_client,
    wait_for_note,
)
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def run(coroutine_function):
    """Run it as an async view would be run, then close the connections the
    threads behind sync_to_async opened (the test database is dropped later)."""
    async def main():
        try:
            return await coroutine_function()
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(main())


def started(result):
    return QueuedMessage.objects.filter(task_id=result.id, started_at__isnull=False).exists()


# -- calling from async code --------------------------------------------------

def test_adelay_aapply_async_and_aget_from_a_coroutine(start_worker):
    start_worker("--pool", "threads", "-c", "2")

    async def main():
        results = [await add.adelay(2, 3),
                   await add.aapply_async((4, 5), countdown=0, priority=3),
                   await add.s(1, 1).adelay(),
                   await (add.s(1, 2) | add.s(10)).adelay()]
        values = [await result.aget(timeout=30) for result in results]
        return values, await results[0].astate(), await results[0].aready(), \
            await results[0].asuccessful(), await results[0].afailed()

    values, state, ready, successful, failed = run(main)
    assert values == [5, 9, 2, 13]
    assert (state, ready, successful, failed) == (states.SUCCESS, True, True, False)


def test_aget_raises_the_tasks_error_and_times_out(start_worker):
    async def main():
        failing = await async_fails.adelay("boom")
        never_run = await add.adelay(1, 1)  # no worker yet
        with pytest.raises(TimeoutError):
            await never_run.aget(timeout=0.5, interval=0.1)
        return failing

    failing = run(main)
    start_worker("--pool", "threads", "-c", "1")

    async def wait_for_failure():
        with pytest.raises(ValueError, match="boom"):
            await failing.aget(timeout=30)
        return await failing.aget(timeout=30, propagate=False), await failing.astate()

    error, state = run(wait_for_failure)
    assert isinstance(error, ValueError) and state == states.FAILURE


def test_aget_does_not_hold_up_the_event_loop(start_worker):
    """The task finishes only after another coroutine of the same loop writes
    the note it waits for: if aget() blocked the loop, it would time out."""
    start_worker("--pool", "threads", "-c", "1")

    async def main():
        result = await wait_for_note.adelay("go", 30)

        async def release():
            await asyncio.sleep(0)
            await Note.objects.acreate(text="go")

        value, _ = await asyncio.gather(result.aget(timeout=30), release())
        return value

    assert run(main) == "go"


def test_many_concurrent_agets_share_the_loop(start_worker):
    start_worker("--pool", "threads", "-c", "4")

    async def main():
        results = [await add.adelay(i, i) for i in range(60)]
        group_result = await group(add.s(i, 1) for i in range(5)).adelay()
        values = await asyncio.gather(*(result.aget(timeout=60) for result in results))
        return values, await group_result.ajoin(timeout=60), await group_result.aready()

    values, joined, ready = run(main)
    assert values == [2 * i for i in range(60)]
    assert joined == [i + 1 for i in range(5)] and ready


def _result_listeners(since):
    """Connections listening for results, opened since ``since`` (a server time)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query = 'LISTEN django_tasks_result' AND backend_start >= %s",
                       [since])
        return cursor.fetchone()[0]


def _server_time():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def test_waiting_agets_share_one_listening_connection(start_worker, postgres_only):
    from django_tasks import awaiting
    from django_tasks.queue import get_backend

    if not get_backend().wakes_up:
        pytest.skip("LISTEN_NOTIFY is off: aget() polls")
    since = _server_time()

    async def main():
        results = [await add.adelay(i, 1) for i in range(40)]
        waiting = [asyncio.create_task(result.aget(timeout=60)) for result in results]
        loop = asyncio.get_running_loop()
        while len(getattr(awaiting._listeners.get(loop, {}).get("default"), "waiters", ())) < 40:
            await asyncio.sleep(0.01)  # until every aget() has subscribed
        listening = await sync_to_async(_result_listeners)(since)
        await sync_to_async(start_worker, thread_sensitive=False)("--pool", "threads", "-c", "2")
        return listening, await asyncio.gather(*waiting)

    listening, values = run(main)
    assert listening == 1
    assert values == [i + 1 for i in range(40)]


def test_aget_polls_where_there_are_no_notifications(start_worker):
    with override_settings(DJANGO_TASKS={"LISTEN_NOTIFY": False, "POLL_INTERVAL": 0.2}):
        start_worker("--pool", "threads", "-c", "1")

        async def main():
            result = await add.adelay(20, 22)
            return await result.aget(timeout=30, interval=0.1)

        assert run(main) == 42


def test_aget_inside_a_task_is_refused():
    from django_tasks.context import Request, running_task

    async def main():
        token = running_task.set(Request(id="outer", task="x"))
        try:
            with pytest.raises(RuntimeError, match="within a task"):
                await _result("x").aget()
        finally:
            running_task.reset(token)

    run(main)


def _result(task_id):
    from django_tasks import AsyncResult

    return AsyncResult(task_id)


def test_plain_delay_works_inside_a_running_event_loop(start_worker):
    async def main():
        # Code written for Celery, called from an async view or consumer.
        single = add.delay(1, 2)
        applied = add.apply_async((3, 4), countdown=0)
        chained = chain(add.s(1, 1), add.s(5)).delay()
        grouped = group(add.s(i, i) for i in range(3)).delay()
        return single, applied, chained, grouped

    single, applied, chained, grouped = run(main)
    start_worker("--pool", "threads", "-c", "2")
    assert single.get(timeout=30) == 3 and applied.get(timeout=30) == 7
    assert chained.get(timeout=30) == 7 and grouped.get(timeout=30) == [0, 2, 4]


def test_plain_delay_in_a_loop_under_async_to_sync_joins_the_callers_transaction():
    """async_to_sync (Django's test client, a sync view calling async code):
    the enqueue runs in the calling thread, inside its transaction."""
    async def enqueue():
        return add.delay(5, 5).id

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        task_id = async_to_sync(enqueue)()
        assert QueuedMessage.objects.filter(task_id=task_id).exists()
        raise Undo
    assert not QueuedMessage.objects.filter(task_id=task_id).exists()
    with transaction.atomic():
        kept = async_to_sync(enqueue)()
    assert QueuedMessage.objects.filter(task_id=kept).exists()


def test_eager_delay_inside_a_running_event_loop():
    async def main():
        return add.delay(2, 2), await add.adelay(3, 3), async_add.delay(1, 1)

    with override_settings(DJANGO_TASKS={"EAGER": True}):
        plain, awaited, async_task = run(main)
    assert isinstance(plain, EagerResult) and plain.get() == 4
    assert awaited.get() == 6 and async_task.get() == 2

    async def aget_eager():
        return await plain.aget()

    assert run(aget_eager) == 4
    assert not QueuedMessage.objects.exists()


def test_an_eager_async_tasks_orm_calls_run_in_the_callers_transaction():
    """As a test case's: the coroutine's ORM calls run in the calling thread."""
    with transaction.atomic():
        Note.objects.create(text="not committed yet")
        with override_settings(DJANGO_TASKS={"EAGER": True}):
            assert async_sees_note.delay("not committed yet").get() is True
        transaction.set_rollback(True)


# -- async tasks on the worker's shared event loop ------------------------------

def test_async_tasks_overlap_on_one_event_loop_in_the_threads_pool(start_worker):
    start_worker("--pool", "threads", "-c", "2")
    first, second = meet.delay("a", "b"), meet.delay("b", "a")
    one, two = first.get(timeout=60), second.get(timeout=60)
    assert (one["name"], one["id"]) == ("a", first.id)
    assert (two["name"], two["id"]) == ("b", second.id)
    # Both were running at once, so equal ids are one loop, not a reused address.
    assert (one["pid"], one["loop"]) == (two["pid"], two["loop"])


@pytest.mark.parametrize("pool", ["threads", "solo", "prefork"])
def test_a_loop_bound_client_serves_every_call_of_a_process(start_worker, pool):
    start_worker("--pool", pool, "-c", "1")
    calls = [use_shared_client.delay().get(timeout=30) for _ in range(3)]
    assert [call["calls"] for call in calls] == [1, 2, 3]


def test_an_async_task_enqueues_with_its_own_id_as_parent(start_worker):
    start_worker("--pool", "threads", "-c", "2")
    result = enqueues_from_the_loop.delay(4)
    child_id = result.get(timeout=30)
    assert _result(child_id).get(timeout=30) == 8
    assert str(TaskResult.objects.get(task_id=child_id).parent_id) == result.id


@pytest.mark.parametrize("fail", [True, False])
def test_an_atomic_async_tasks_orm_calls_and_enqueues_share_its_transaction(start_worker,
                                                                              fail):
    start_worker("--pool", "threads", "-c", "2")
    result = atomic_async_note.delay("atomic", fail)
    if fail:
        with pytest.raises(ValueError, match="undo"):
            result.get(timeout=30)
        # The note and both enqueues were undone with the task's transaction.
        assert not Note.objects.exists()
        assert not TaskResult.objects.filter(task_name=add.name).exists()
        assert not QueuedMessage.objects.exists()
    else:
        assert result.get(timeout=30) == "atomic"
        assert Note.objects.filter(text="atomic").count() == 1
        wait_until(lambda: TaskResult.objects.filter(task_name=add.name,
                                                     state=states.SUCCESS).count() == 2,
                   message="both enqueued tasks to run")


def test_an_async_task_raising_ends_failure_with_its_traceback(start_worker):
    start_worker("--pool", "threads", "-c", "1")
    result = async_fails.delay("bad input")
    with pytest.raises(ValueError, match="bad input"):
        result.get(timeout=30)
    assert result.state == states.FAILURE
    assert "async_fails" in result.traceback and "ValueError: bad input" in result.traceback


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_sys_exit_or_loop_stop_in_an_async_task_ends_only_that_task(start_worker, pool):
    start_worker("--pool", pool, "-c", "1")
    exited = async_exits.delay()
    # Stored as a stand-in named SystemExit (a real one would end the caller).
    assert type(exited.get(timeout=30, propagate=False)).__name__ == "SystemExit"
    assert exited.state == states.FAILURE
    assert stops_the_loop.delay().get(timeout=30) == "still running"
    assert async_add.delay(1, 2).get(timeout=30) == 3


@pytest.mark.parametrize("pool", ["threads", "solo", "prefork"])
def test_soft_time_limit_reaches_the_coroutine_at_its_await(start_worker, pool):
    start_worker("--pool", pool, "-c", "1")
    result = async_cleans_up.apply_async((30,), soft_time_limit=1)
    assert result.get(timeout=30) == "cleaned up"
    assert Note.objects.filter(text="async cleaned up").exists()


@pytest.mark.parametrize("pool", ["threads", "solo", "prefork"])
def test_hard_time_limit_ends_an_async_task(start_worker, pool):
    start_worker("--pool", pool, "-c", "1")
    result = async_sleep.apply_async((30,), time_limit=1)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=30)
    assert result.state == states.FAILURE and "async_sleep" in result.traceback
    assert async_add.delay(2, 2).get(timeout=30) == 4  # the slot and the loop serve again


@pytest.mark.parametrize("pool", ["threads", "solo", "prefork"])
def test_revoke_terminate_reaches_the_coroutine(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "1")
    result = async_sees_revoke.delay("r", 30)
    wait_until(lambda: started(result), message="the task to start")
    assert result.revoke(terminate=True) == 1
    with pytest.raises(TaskRevokedError, match="terminated"):
        result.get(timeout=30)
    assert result.state == states.REVOKED
    assert Note.objects.filter(text="revoked r").exists()
    worker.wait_for(f"Terminating task {result.id}")
    assert async_add.delay(3, 3).get(timeout=30) == 6


def test_an_interruption_wrapped_by_a_task_group_still_ends_the_task_as_itself(start_worker):
    start_worker("--pool", "threads", "-c", "1")
    limited = async_task_group.apply_async((30,), time_limit=1)
    with pytest.raises(TimeLimitExceeded):
        limited.get(timeout=30)
    revoked = async_task_group.delay(30)
    wait_until(lambda: started(revoked), message="the task to start")
    revoked.revoke(terminate=True)
    with pytest.raises(TaskRevokedError):
        revoked.get(timeout=30)
    assert revoked.state == states.REVOKED


def test_a_task_that_blocks_the_loop_past_its_hard_limit_gets_it_replaced(start_worker):
    worker = start_worker("--pool", "threads", "-c", "2")
    blocking = blocks_the_loop.apply_async((60,), time_limit=1)
    with pytest.raises(TimeLimitExceeded):
        blocking.get(timeout=30)
    worker.wait_for("blocks the event loop")
    # The old loop still sleeps in that task; a new one serves.
    assert async_add.delay(4, 4).get(timeout=30) == 8
    assert blocking.state == states.FAILURE


def test_soft_limit_caught_as_cancellation_by_asyncio_itself():
    """What the coroutine sees is both the limit and a CancelledError."""
    from django_tasks.event_loop import _as_cancellation

    thrown = _as_cancellation(SoftTimeLimitExceeded("soft time limit (1s) exceeded"))
    assert isinstance(thrown, SoftTimeLimitExceeded)
    assert isinstance(thrown, asyncio.CancelledError)
    assert str(thrown) == "soft time limit (1s) exceeded"


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_cold_shutdown_hands_a_running_async_task_back(start_worker, pool):
    worker = start_worker("--pool", pool, "-c", "1")
    result = async_sleep.delay(30)
    wait_until(lambda: started(result), message="the task to start")
    worker.send(signal.SIGTERM)
    worker.wait_for("Warm shutdown")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0
    worker.wait_for("Cold shutdown")
    assert QueuedMessage.objects.get(task_id=result.id).claimed_by is None
    assert not TaskResult.objects.filter(task_id=result.id).exists()
