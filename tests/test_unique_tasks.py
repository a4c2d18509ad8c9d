"""Unique tasks (issue 19): while a message of a task with a key waits or
runs (and unique_for seconds after), another send of it returns the same
AsyncResult and writes nothing; never an aborted transaction."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from django_tasks import AsyncResult, chain, group, send_task
from django_tasks.maintenance import purge_expired_results
from django_tasks.models import QueuedMessage, TaskResult, UniqueLock
from django_tasks.unique import MAX_UNIQUE_FOR
from tests.models import Execution
from tests.tasks import add, echo, slow_record
from tests.test_async import run
from tests.unique_tasks import nightly_singleton, retries_once, unique_report
from tests.workers import ROOT, wait_until, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def _counts():
    return QueuedMessage.objects.count(), UniqueLock.objects.count()


# -- sends ------------------------------------------------------------------

def test_a_duplicate_send_returns_the_holder_and_writes_nothing():
    first = add.apply_async((1, 1), unique_key="report-42")
    assert _counts() == (1, 1)
    again = add.apply_async((5, 5), unique_key="report-42")
    assert again.id == first.id
    assert send_task("tests.tasks.add", (2, 2), unique_key="report-42").id == first.id
    assert add.s(3, 3).set(unique_key="report-42").delay().id == first.id
    assert add.signature((3, 3), unique_key="report-42").apply_async().id == first.id
    assert _counts() == (1, 1)
    assert QueuedMessage.objects.get().body == '{"args":[1,1],"kwargs":{}}'
    # The key is the task's: another task, or another key, is sent.
    other_task = echo.apply_async(("x",), unique_key="report-42")
    other_key = add.apply_async((1, 1), unique_key="report-43")
    assert len({first.id, other_task.id, other_key.id}) == 3
    assert _counts() == (3, 3)
    # Sends without a key are not touched by any of it.
    add.delay(1, 1)
    add.delay(1, 1)
    assert _counts() == (5, 3)


def test_a_task_level_key_callable_decides_per_call():
    first = unique_report.delay(7)
    assert unique_report.delay(7).id == first.id
    assert unique_report.delay(8).id != first.id
    # The callable returns None: that call is not unique.
    assert unique_report.delay(None).id != unique_report.delay(None).id
    assert QueuedMessage.objects.count() == 4
    assert QueuedMessage.objects.get(task_id=first.id).headers["unique_key"] == "report-7"
    # A call may give its own key instead of the task's.
    assert unique_report.apply_async((7,), unique_key="mine").id != first.id


def test_inside_a_transaction_a_duplicate_leaves_it_usable():
    with transaction.atomic():
        first = add.apply_async((1, 1), unique_key="k")
        # Not committed yet: the same transaction sees its own lock.
        assert add.apply_async((2, 2), unique_key="k").id == first.id
        assert QueuedMessage.objects.count() == 1  # still usable: no aborted transaction
        add.delay(3, 3)
    assert _counts() == (2, 1)
    with transaction.atomic():
        assert add.apply_async((2, 2), unique_key="k").id == first.id
        assert add.apply_async((2, 2), unique_key="k", task_id="fixed").id == first.id
        assert QueuedMessage.objects.filter(task_id="fixed").count() == 0
    assert _counts() == (2, 1)


def test_a_rolled_back_send_holds_nothing():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        add.apply_async((1, 1), unique_key="k")
        raise ZeroDivisionError
    assert _counts() == (0, 0)
    assert add.apply_async((1, 1), unique_key="k").id
    assert _counts() == (1, 1)


def test_a_fixed_task_id_holds_the_key_under_that_id():
    held = add.apply_async((1, 1), unique_key="k", task_id="order-1")
    assert held.id == "order-1"
    assert add.apply_async((1, 1), unique_key="k", task_id="order-2").id == "order-1"
    assert list(QueuedMessage.objects.values_list("task_id", flat=True)) == ["order-1"]


def test_members_of_a_canvas_cannot_be_unique():
    for canvas in (group(add.s(1, 1).set(unique_key="k"), add.s(2, 2)),
                   chain(add.s(1, 1), add.s(2).set(unique_for=5)),
                   add.s(1, 1).set(link=add.s(2).set(unique_key="k"))):
        with pytest.raises(TypeError, match="not applied to the members of a group"):
            canvas.delay()
    with transaction.atomic():  # refused before anything is written; usable after
        with pytest.raises(TypeError):
            group([add.s(i, i).set(unique_key="k") for i in range(300)]).delay()
        assert _counts() == (0, 0)


@override_settings(DJANGO_TASKS={"EAGER": True})
def test_eager_mode_runs_every_call_and_checks_the_options():
    assert add.apply_async((1, 1), unique_key="k").get() == 2
    assert add.apply_async((1, 2), unique_key="k").get() == 3
    assert add.s(1, 3).set(unique_key="k").delay().get() == 4
    with pytest.raises(TypeError, match="unique_key must be a str"):
        add.apply_async((1, 1), unique_key=5)
    assert _counts() == (0, 0)


@pytest.mark.parametrize("options, error, match", [
    ({"unique_key": 42}, TypeError, "unique_key must be a str, got int"),
    ({"unique_key": b"k"}, TypeError, "unique_key must be a str"),
    ({"unique_key": ""}, ValueError, "1 to 255 characters"),
    ({"unique_key": "x" * 256}, ValueError, "1 to 255 characters"),
    ({"unique_key": "a\x00b"}, ValueError, "without NUL"),
    ({"unique_key": "\ud800"}, ValueError, "lone surrogate"),
    ({"unique_key": "k", "unique_for": -1}, ValueError, "between 0 and"),
    ({"unique_key": "k", "unique_for": math.nan}, ValueError, "between 0 and"),
    ({"unique_key": "k", "unique_for": math.inf}, ValueError, "between 0 and"),
    ({"unique_key": "k", "unique_for": MAX_UNIQUE_FOR + 1}, ValueError, "between 0 and"),
    ({"unique_key": "k", "unique_for": True}, TypeError, "unique_for must be seconds"),
    ({"unique_key": "k", "unique_for": "60"}, TypeError, "unique_for must be seconds"),
    ({"unique_for": 60}, TypeError, "unique_for needs a unique_key"),
])
def test_bad_unique_options_are_refused_at_the_call(options, error, match):
    with pytest.raises(error, match=match):
        add.apply_async((1, 1), **options)
    with pytest.raises(error, match=match):
        send_task("tests.tasks.add", (1, 1), **options)
    with pytest.raises(error, match=match):
        add.s(1, 1).set(**options).delay()
    assert _counts() == (0, 0)


def test_a_bad_key_callable_is_refused_at_the_call():
    from django_tasks import task

    with pytest.raises(TypeError, match="unique_key must be a str"):
        task(unique_key=42, name="tests.bad_key")(lambda: None)
    with pytest.raises(TypeError, match="unique_for needs a unique_key"):
        task(unique_for=5, name="tests.bad_for")(lambda: None)
    with pytest.raises(ValueError, match="unique_for"):
        task(unique_key="k", unique_for=-5, name="tests.bad_for2")(lambda: None)

    raising = task(unique_key=lambda args, kwargs: args[5], name="tests.raising_key",
                   typing=False)(lambda *a: None)
    with pytest.raises(ValueError, match="callable .* raised IndexError"):
        raising.delay(1)
    not_text = task(unique_key=lambda args, kwargs: 42, name="tests.int_key")(lambda: None)
    with pytest.raises(TypeError, match="returned int 42; it must return a str key"):
        not_text.delay()
    assert _counts() == (0, 0)


def test_async_sends_are_unique_too():
    async def send_twice():
        first = await add.aapply_async((1, 1), unique_key="k")
        again = await add.s(2, 2).set(unique_key="k").aapply_async()
        return first.id, again.id

    first_id, again_id = run(send_twice)
    assert first_id == again_id
    assert _counts() == (1, 1)


def test_unique_for_takes_a_timedelta():
    add.apply_async((1, 1), unique_key="k", unique_for=timedelta(minutes=2))
    assert QueuedMessage.objects.get().headers["unique_for"] == 120.0
    assert UniqueLock.objects.get().unique_for == 120.0


# -- concurrent transactions --------------------------------------------------

def _in_thread(function):
    """Run ``function`` in a thread with its own connection; its outcome in a list."""
    outcome = []

    def run():
        try:
            outcome.append(function())
        except BaseException as exc:  # handed to the test, which re-raises it
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _backend_waiting_on_a_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("first_commits", [True, False])
def test_concurrent_transactions_sending_one_key_write_one_message(postgres_only,
                                                                  first_commits):
    sent, release = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            result = add.apply_async((1, 1), unique_key="k")
            sent.set()
            release.wait(60)
            if not first_commits:
                transaction.set_rollback(True)
        return result.id

    def second():
        with transaction.atomic():
            result_id = add.apply_async((2, 2), unique_key="k").id
            # Its transaction goes on: the duplicate aborted nothing.
            return result_id, QueuedMessage.objects.filter(task_id=result_id).exists()

    first_thread, first_outcome = _in_thread(first)
    assert sent.wait(30)
    second_thread, second_outcome = _in_thread(second)
    # The second waits for the first's transaction (the unique index).
    wait_until(_backend_waiting_on_a_lock, message="the second send to wait for the first")
    release.set()
    first_thread.join(60)
    second_thread.join(60)
    (first_id,), ((second_id, visible),) = first_outcome, second_outcome
    assert visible
    if first_commits:
        assert second_id == first_id
        assert QueuedMessage.objects.get().body == '{"args":[1,1],"kwargs":{}}'
    else:
        assert second_id != first_id
        assert QueuedMessage.objects.get().body == '{"args":[2,2],"kwargs":{}}'
    assert _counts() == (1, 1)


def test_threads_taking_a_stale_key_at_once_write_one_message(postgres_only):
    """A finished holder's key is taken over by exactly one of many senders."""
    for round_ in range(5):
        QueuedMessage.objects.all().delete()  # the holder finished (its message gone)
        barrier = threading.Barrier(8)

        def send(barrier=barrier, round_=round_):
            barrier.wait(30)
            return add.apply_async((round_, 0), unique_key="k").id

        threads = [_in_thread(send) for _ in range(8)]
        for thread, _ in threads:
            thread.join(60)
        ids = {outcome[0] for _, outcome in threads}
        assert len(ids) == 1, ids
        assert QueuedMessage.objects.count() == 1
        assert UniqueLock.objects.get().task_id == ids.pop()


# -- with workers -----------------------------------------------------------

def test_a_finished_holder_frees_its_key(start_worker):
    start_worker("-P", "solo")
    first = slow_record.apply_async(("a", 0), unique_key="k")
    assert first.get(timeout=30) == "a"
    second = slow_record.apply_async(("b", 0), unique_key="k")
    assert second.id != first.id
    assert second.get(timeout=30) == "b"


def test_unique_for_holds_the_key_that_long_after_it_finished(start_worker):
    start_worker("-P", "solo")
    first = slow_record.apply_async(("a", 0), unique_key="k", unique_for=2)
    assert first.get(timeout=30) == "a"
    lock = UniqueLock.objects.get()
    assert lock.held_until is not None
    sends = []

    def sent_anew():
        result = slow_record.apply_async(("b", 0), unique_key="k", unique_for=2)
        sends.append((timezone.now(), result.id))
        return result.id != first.id

    wait_until(sent_anew, timeout=30, interval=0.2, message="the key to be free again")
    # Every send before held_until was a duplicate; the first after it was not.
    assert all(task_id == first.id for when, task_id in sends[:-1])
    assert sends[-1][0] >= lock.held_until
    assert len(sends) > 1
    assert QueuedMessage.objects.filter(task_id=first.id).count() == 0


def test_unique_for_of_a_task_that_ignores_its_result(start_worker):
    start_worker("-P", "solo")
    first = nightly_singleton.delay()
    wait_until(lambda: Execution.objects.filter(key="nightly").exists(),
               message="nightly to run")
    wait_until(lambda: not QueuedMessage.objects.exists(), message="it to be acknowledged")
    assert not TaskResult.objects.exists()
    # Finished, no result stored: held for its unique_for (an hour) all the same.
    assert nightly_singleton.delay().id == first.id
    lock = UniqueLock.objects.get()
    assert lock.held_until > timezone.now() + timedelta(minutes=59)
    assert QueuedMessage.objects.count() == 0


def test_a_message_with_damaged_unique_headers_still_runs(start_worker):
    start_worker("-P", "solo")
    for task_id, headers in (("bad-for", {"unique_key": "k", "unique_for": "an hour"}),
                             ("bad-key", {"unique_key": 5, "unique_for": 60}),
                             ("huge-for", {"unique_key": "k", "unique_for": 1e300}),
                             ("long-key", {"unique_key": "k" * 300, "unique_for": 60})):
        message = add.build_message((1, 1), task_id=task_id)
        QueuedMessage.objects.create(
            task_id=task_id, task_name=message.task_name, queue=message.queue,
            content_type=message.content_type, body=message.body,
            headers={**message.headers, **headers})
    for task_id in ("bad-for", "bad-key", "huge-for", "long-key"):
        assert AsyncResult(task_id).get(timeout=30) == 2


def test_a_retried_holder_keeps_its_key(start_worker):
    start_worker("-P", "solo")
    first = retries_once.apply_async(("r",), unique_key="k")
    wait_until(lambda: Execution.objects.filter(key="r").count() == 1, message="first run")
    # Between its runs (waiting for the retry) it still holds the key.
    assert retries_once.apply_async(("other",), unique_key="k").id == first.id
    assert first.get(timeout=30) == 1
    assert Execution.objects.filter(key="other").count() == 0


def test_a_killed_worker_holding_the_key_keeps_it_until_the_task_ran(start_worker):
    doomed = start_worker("-P", "solo")
    held = slow_record.apply_async(("held", 2.0), unique_key="k")
    wait_until(lambda: QueuedMessage.objects.filter(task_id=held.id,
                                                    started_at__isnull=False).exists(),
               message="the task to start")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait_exit()
    # Its message is still in the queue, claimed by a dead worker: still held.
    assert slow_record.apply_async(("dup", 0), unique_key="k").id == held.id
    start_worker("-P", "solo")  # recovers it once the dead one is declared lost
    assert held.get(timeout=60) == "held"
    assert Counter(Execution.objects.values_list("key", flat=True)) == {"held": 1}
    assert TaskResult.objects.get(task_id=held.id).deliveries == 2
    anew = slow_record.apply_async(("after", 0), unique_key="k")
    assert anew.id != held.id
    assert anew.get(timeout=30) == "after"


def test_processes_sending_one_thousand_times_over_fifty_keys(postgres_only, start_worker):
    start_worker("-P", "prefork", "-c", "2")
    start_worker("-P", "threads", "-c", "4")
    senders = [subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "send_unique", str(start), "250",
         "--keys", "50", "--seconds", "0.02"],
        cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, text=True)
        for start in range(0, 1000, 250)]
    sent = []
    for sender in senders:
        out, _ = sender.communicate(timeout=300)
        assert sender.returncode == 0
        sent += json.loads(out.splitlines()[-1])
    assert len(sent) == 1000
    enqueued = {task_id for _, task_id in sent}
    wait_until(lambda: Execution.objects.count() >= len(enqueued), timeout=180,
               message="every enqueued message to run")
    wait_until(lambda: not QueuedMessage.objects.exists(), message="the queue to drain")
    runs = Counter(Execution.objects.values_list("task_id", flat=True))
    # Each id handed out ran exactly once; the rest of the sends were duplicates.
    assert set(runs) == enqueued and set(runs.values()) == {1}
    duplicates = len(sent) - len(enqueued)
    assert duplicates > 0
    # Whenever one ran, it was the only message of its key in the queue.
    counts = Counter(key.split(":")[1] for key in
                     Execution.objects.values_list("key", flat=True))
    assert counts == {"1": len(enqueued)}, counts
    # Every id handed out for a key belongs to that key's task calls.
    by_id = dict(Execution.objects.values_list("task_id", "key"))
    assert all(by_id[task_id].split(":")[0] == str(key) for key, task_id in sent)
    print(f"{len(sent)} sends over 50 keys: {len(enqueued)} enqueued, {duplicates} duplicates")


# -- housekeeping and visibility ------------------------------------------------

def test_purge_deletes_the_locks_that_hold_nothing():
    add.apply_async((1, 1), unique_key="queued")
    add.apply_async((1, 1), unique_key="done")
    add.apply_async((1, 1), unique_key="done-recently", unique_for=3600)
    QueuedMessage.objects.exclude(headers__unique_key="queued").delete()
    UniqueLock.objects.filter(key="done-recently").update(
        held_until=timezone.now() + timedelta(hours=1))
    later = timezone.now() + timedelta(days=2)
    purged = purge_expired_results(now=later, expires=timedelta(days=1))
    assert purged.unique_locks == 1
    assert set(UniqueLock.objects.values_list("key", flat=True)) == {"queued", "done-recently"}


def test_tasks_status_counts_the_keys_held():
    add.apply_async((1, 1), unique_key="a")
    add.apply_async((1, 1), unique_key="b")
    add.apply_async((1, 1), unique_key="gone")
    QueuedMessage.objects.filter(headers__unique_key="gone").delete()
    out = StringIO()
    call_command("tasks_status", stdout=out)
    assert "Unique keys held: 2" in out.getvalue()


def test_the_admin_shows_a_message_unique_key(admin_client):
    from django.urls import reverse

    held = add.apply_async((1, 1), unique_key="report-42", unique_for=60)
    row = QueuedMessage.objects.get(task_id=held.id)
    page = admin_client.get(reverse("admin:django_tasks_queuedmessage_change", args=[row.pk]))
    assert "report-42 (held 60s after it finished)" in page.content.decode()
    dashboard = admin_client.get(reverse("admin:django_tasks_dashboard_changelist"))
    assert 'id="dashboard-unique-keys">1<' in dashboard.content.decode()
