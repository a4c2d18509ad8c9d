"""@task(concurrency_limit=N, concurrency_key=...): at most N running at once
per key across every worker; the rest wait without holding a worker slot,
and a killed worker or a restarted database loses neither slot nor message."""

import io
import os
import signal
from collections import defaultdict

import psycopg
import pytest
from django.core.management import call_command
from django.urls import reverse

from django_tasks import states, task
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue.base import PARKED
from tests import test_database_restart
from tests.models import Note
from tests.tasks import limited_retry, limited_span, one_at_a_time, unlimited_span
from tests.test_database_restart import _count, _manage
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

own_server = test_database_restart.own_server


def _spans(kind):
    """{key: [(start, end)]} of the runs the span tasks noted."""
    spans = defaultdict(list)
    for text in Note.objects.filter(text__startswith=f"{kind} ").values_list("text", flat=True):
        _, key, started, ended, _ = text.split(" ")
        spans[key].append((float(started), float(ended)))
    return spans


def _begun(kind):
    """How many long span tasks have begun running (see tests.tasks._span)."""
    return Note.objects.filter(text__startswith=f"begun-{kind} ").count()


def _most_at_once(spans):
    """The largest number of the (start, end) spans running at one moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans],
                    key=lambda event: (event[0], event[1]))
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _all_done(results, timeout=180):
    wait_until(lambda: TaskResult.objects.filter(
        task_id__in=[r.id for r in results], state=states.SUCCESS).count() == len(results),
        timeout=timeout, message=f"{len(results)} tasks to succeed")


# -- calling ------------------------------------------------------------


def test_a_limit_that_is_not_a_positive_int_is_refused_by_the_decorator():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="concurrency_limit"):
            task(concurrency_limit=bad)(lambda: None)


def test_a_key_that_is_not_callable_or_has_no_limit_is_refused():
    with pytest.raises(TypeError, match="concurrency_key"):
        task(concurrency_limit=2, concurrency_key="customer")(lambda: None)
    with pytest.raises(ValueError, match="concurrency_key needs concurrency_limit"):
        task(concurrency_key=lambda args, kwargs: "k")(lambda: None)


def test_a_bad_key_is_refused_at_the_call_and_nothing_is_sent():
    def send(key):
        limited = task(name=f"conc.bad.{id(key)}", concurrency_limit=1,
                       concurrency_key=lambda args, kwargs: key(*args), typing=False)(lambda v: v)
        return limited.delay(1)

    with pytest.raises(TypeError, match="concurrency_key returned 42"):
        send(lambda v: 42)
    with pytest.raises(ValueError, match="at most 200 characters"):
        send(lambda v: "x" * 201)
    with pytest.raises(ValueError, match="concurrency_key raised ZeroDivisionError"):
        send(lambda v: v / 0)
    assert not QueuedMessage.objects.exists()


def test_the_key_and_limit_travel_in_the_message():
    limited_span.delay("acme", 0.1)
    one_at_a_time.delay("x")
    unlimited_span.delay("x")
    headers = {m.task_name: m.headers for m in QueuedMessage.objects.all()}
    assert headers[limited_span.name]["concurrency"] == ["acme", 2]
    assert headers[one_at_a_time.name]["concurrency"] == ["", 1]
    assert "concurrency" not in headers[unlimited_span.name]
    # A key function returning None: that call is not limited.
    free = task(name="conc.none", concurrency_limit=1, concurrency_key=lambda args, kwargs: None)(
        lambda: None)
    free.delay()
    assert "concurrency" not in QueuedMessage.objects.get(task_name="conc.none").headers


# -- real workers ---------------------------------------------------------


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_never_more_than_the_limit_per_key_across_workers(start_worker, pool):
    # Three workers with many more slots than the limits allow together.
    for _ in range(3):
        start_worker("-P", pool, "-c", "4")
    keys = [f"k{i}" for i in range(5)]
    # Long enough that a key's two slots overlap even on a loaded machine
    # (the peak must reach the limit, not only stay under it).
    results = [limited_span.delay(keys[i % len(keys)], 0.1) for i in range(200)]
    results += [one_at_a_time.delay("whole", 0.02) for _ in range(20)]
    _all_done(results)
    spans = _spans("limited")
    assert sorted(spans) == keys and sum(map(len, spans.values())) == 200
    assert {key: _most_at_once(s) for key, s in spans.items()} == dict.fromkeys(keys, 2)
    assert _most_at_once(_spans("single")["whole"]) == 1
    # Waiting for a slot never counted a delivery.
    assert set(TaskResult.objects.values_list("deliveries", flat=True)) == {1}
    assert not QueuedMessage.objects.exists()


def test_the_limit_holds_on_sqlite_and_postgresql_alike_with_one_worker(start_worker):
    start_worker("-P", "threads", "-c", "6")
    results = [limited_span.delay("only", 0.05) for _ in range(20)]
    _all_done(results)
    assert _most_at_once(_spans("limited")["only"]) == 2


def test_unlimited_tasks_keep_flowing_while_limited_ones_wait(start_worker):
    start_worker("-P", "threads", "-c", "4")
    # The first holds the only slot for a long time; the others wait for it.
    first = one_at_a_time.delay("whole", 8.0)
    blocked = [one_at_a_time.delay("whole", 0.0) for _ in range(5)]
    # Queued behind them, on the same queue.
    free = [unlimited_span.delay(f"u{i}", 0.0) for i in range(20)]
    _all_done(free, timeout=60)
    # All twenty ran while the limited ones waited their turn (without a
    # worker slot: the worker has four).
    assert not TaskResult.objects.filter(task_id__in=[r.id for r in [first, *blocked]]).exists()
    assert QueuedMessage.objects.filter(task_name=one_at_a_time.name,
                                        available_at=PARKED).count() == 5
    _all_done([first, *blocked], timeout=60)
    assert _most_at_once(_spans("single")["whole"]) == 1


def test_a_parked_message_waits_unclaimed_and_uncounted(start_worker, admin_client):
    start_worker("-P", "threads", "-c", "4")
    first = one_at_a_time.delay("whole", 3.0)
    wait_until(lambda: QueuedMessage.objects.filter(task_id=first.id, holds_slot=True).exists(),
               message="the first to take the slot")
    second = one_at_a_time.delay("whole", 0.0)
    wait_until(lambda: QueuedMessage.objects.filter(task_id=second.id,
                                                    available_at=PARKED).exists(),
               message="the second to be parked")
    parked = QueuedMessage.objects.get(task_id=second.id)
    assert (parked.claimed_by, parked.deliveries, parked.holds_slot,
            parked.concurrency_key) == (None, 0, False, "")
    # Shown as such: tasks_status, the admin's message page, list and dashboard.
    out = io.StringIO()
    call_command("tasks_status", stdout=out)
    assert (f"Waiting for a concurrency slot\n  {one_at_a_time.name}  key (the whole task)  "
            "waiting 1  running 1/1") in out.getvalue()
    page = admin_client.get(reverse("admin:django_tasks_queuedmessage_change",
                                    args=[parked.pk])).content.decode()
    assert "waiting for a concurrency slot (1/1 running for key (the whole task))" in page
    listing = admin_client.get(reverse("admin:django_tasks_queuedmessage_changelist"),
                               {"state": "slot"}).content.decode()
    assert second.id in listing and first.id not in listing
    assert "waiting for a slot" in listing
    # Its due time is a mark, not a time: shown as what it waits for.
    assert "when a concurrency slot frees" in listing and "9999" not in listing
    dashboard = admin_client.get(reverse("admin:django_tasks_dashboard_changelist"))
    assert 'id="dashboard-concurrency"' in dashboard.content.decode()
    assert second.get(timeout=30) == "whole"
    assert TaskResult.objects.get(task_id=second.id).deliveries == 1


def test_a_retry_keeps_its_key_and_waits_its_turn_again(start_worker):
    start_worker("-P", "threads", "-c", "4")
    results = [limited_retry.delay(f"r{i}", 0.1) for i in range(5)]
    _all_done(results, timeout=60)
    assert set(TaskResult.objects.values_list("retries", flat=True)) == {1}
    spans = [span for key_spans in _spans("retried").values() for span in key_spans]
    assert len(spans) == 5 and _most_at_once(spans) == 1


def test_revoking_a_parked_message_keeps_the_others_waiting_their_turn(start_worker):
    start_worker("-P", "threads", "-c", "4")
    first = one_at_a_time.delay("whole", 2.0)
    parked = [one_at_a_time.delay("whole", 0.0) for _ in range(3)]
    wait_until(lambda: QueuedMessage.objects.filter(available_at=PARKED).count() == 3,
               message="three parked")
    parked[0].revoke()
    for result in [first, *parked[1:]]:
        result.get(timeout=30)
    assert TaskResult.objects.get(task_id=parked[0].id).state == states.REVOKED
    assert _most_at_once(_spans("single")["whole"]) == 1


def test_a_killed_worker_gives_its_slots_back(start_worker):
    # The killed worker takes both slots of a key with long tasks; the other
    # consumes only once they are handed back through lost-worker recovery.
    doomed = start_worker("-P", "threads", "-c", "4")
    # Held until the kill; short once delivered again.
    held = [limited_span.delay("acme", 30.0, 0.05) for _ in range(2)]
    wait_until(lambda: QueuedMessage.objects.filter(
        holds_slot=True, concurrency_key="acme").count() == 2, message="both slots taken")
    waiting = [limited_span.delay("acme", 0.05) for _ in range(10)]
    wait_until(lambda: QueuedMessage.objects.filter(available_at=PARKED).count() == 10,
               message="the rest to wait")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.proc.wait()
    start_worker("-P", "prefork", "-c", "3")
    _all_done(waiting, timeout=120)
    assert _most_at_once(_spans("limited")["acme"]) <= 2
    # The killed tasks were delivered again, their slots taken anew.
    _all_done(held, timeout=120)
    assert TaskResult.objects.filter(task_id__in=[r.id for r in held], deliveries=2).count() == 2
    assert not QueuedMessage.objects.exists()


def test_a_killed_prefork_child_gives_its_slot_back(start_worker):
    from tests.test_lost_worker import _children

    worker = start_worker("-P", "prefork", "-c", "2")
    # Long enough that the kill lands while it runs, even on a loaded
    # machine; short once delivered again.
    held = [limited_span.delay("acme", 10.0, 0.05) for _ in range(2)]
    # Running, not only claimed (a claim marks them started): a child killed
    # before its task began hands it back without counting a delivery.
    wait_until(lambda: _begun("limited") == 2, message="both tasks to begin")
    assert QueuedMessage.objects.filter(holds_slot=True, concurrency_key="acme").count() == 2
    # Both children are busy: these wait unclaimed, then for a slot.
    waiting = [limited_span.delay("acme", 0.05) for _ in range(4)]
    running = Note.objects.filter(text__startswith="begun-limited ").values_list("text", flat=True)
    victim = next(pid for pid in _children(worker.pid)
                  if pid in {int(text.split(" ")[-1]) for text in running})
    os.kill(victim, signal.SIGKILL)
    # Its parent hands its message back: the slot it held is freed then, not
    # left taken by a process that is gone.
    _all_done(held + waiting, timeout=90)
    assert _most_at_once(_spans("limited")["acme"]) <= 2
    assert TaskResult.objects.filter(deliveries=2).count() == 1


def test_a_database_restart_loses_no_slot_and_no_message(postgres_only, own_server):
    import pgserver

    server, data_dir, database = own_server
    _manage(database, "migrate", "-v0")
    _manage(database, "enqueue_records", "120", "--seconds", "0.2", "--limited-keys", "3")
    workers = [WorkerProcess("-P", "threads", "-c", "4", database=database).wait_ready()
               for _ in range(2)]
    try:
        wait_until(lambda: _count(database, "select count(*) from tests_note") >= 10,
                   timeout=120, message="some tasks to run before the restart")
        pgserver.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data_dir,
                        user=server.system_user)
        wait_until(lambda: _count(database,
                                  "select count(*) from django_tasks_queuedmessage") == 0,
                   timeout=180, interval=0.5, message="the queue to drain after the restart")
        # The restart came while they ran.
        wait_until(lambda: any(w.count("Database unavailable") for w in workers), timeout=60,
                   message="the workers to notice the restart")
        assert _count(database, "select count(*) from django_tasks_taskresult "
                                "where state = 'SUCCESS'") == 120
        with psycopg.connect(host=database["HOST"], user="postgres", dbname="postgres") as conn:
            notes = [row[0] for row in conn.execute("select text from tests_note")]
    finally:
        for worker in workers:
            worker.stop()
    spans = defaultdict(list)
    for text in notes:
        _, key, started, ended, _ = text.split(" ")
        spans[key].append((float(started), float(ended)))
    assert sorted(spans) == ["k0", "k1", "k2"]
    assert max(_most_at_once(s) for s in spans.values()) == 2


def test_the_housekeeping_net_wakes_a_message_no_trigger_woke(start_worker):
    # A parked message whose key has free slots (as if a wake-up were lost).
    one_at_a_time.delay("whole")
    QueuedMessage.objects.update(available_at=PARKED, concurrency_key="")
    start_worker("-P", "threads", "-c", "2")
    wait_until(lambda: not QueuedMessage.objects.exists(), timeout=60,
               message="the parked message to be woken and run")

