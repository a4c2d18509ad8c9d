"""A ``.delay()`` outside a transaction on PostgreSQL runs its INSERT through
libpq directly (queue/libpq.py): the same row, the same errors as Django's,
the caller's transactions untouched. Its wake-up follows in a transaction of
its own, in the same round trip."""

import contextlib
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import (
    DataError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from django_tasks.messages import Message
from django_tasks.models import QueuedMessage
from django_tasks.queue import enqueue, postgresql
from tests.tasks import add
from tests.workers import listening

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

DIRECT = ["django_tasks_insert_one", "django_tasks_wake"]
DIRECT_RELAXED = "django_tasks_enqueue_one_relaxed"


def prepared_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return sorted(row[0] for row in cursor.fetchall())


def test_a_delay_stores_every_field_through_the_statement_prepared_once():
    connection.close()  # a new session: nothing prepared yet
    before = timezone.now()
    plain = add.delay(1, 2)
    eta = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    timed = add.apply_async(
        (3,), {"y": "é€ ☃"}, eta=eta.astimezone(timezone.get_fixed_timezone(330)),
        expires=timedelta(days=400), priority=7, queue="file-é",
        headers={"note": "naïve ☃"})
    assert prepared_names() == DIRECT

    row = QueuedMessage.objects.get(task_id=plain.id)
    assert (row.task_name, row.queue, row.priority, row.deliveries) == (
        "tests.tasks.add", "default", 0, 0)
    assert row.available_at == row.created_at and before <= row.created_at <= timezone.now()
    assert row.expires is None and row.claimed_by is None
    assert row.headers == {"retries": 0}

    row = QueuedMessage.objects.get(task_id=timed.id)
    assert (row.queue, row.priority, row.available_at) == ("file-é", 7, eta)
    assert row.expires == row.created_at + timedelta(days=400)
    assert row.headers == {"note": "naïve ☃", "retries": 0}
    assert "é€ ☃" in row.body


def test_inside_a_transaction_the_enqueue_is_part_of_it():
    connection.close()
    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        result = add.delay(1, 2)
        assert QueuedMessage.objects.filter(task_id=result.id).exists()
        raise Abandoned
    assert not QueuedMessage.objects.filter(task_id=result.id).exists()
    assert not set(DIRECT) & set(prepared_names())


def test_off_the_relaxed_statement_is_prepared_under_its_own_name():
    connection.close()
    with override_settings(DJANGO_TASKS={"SYNCHRONOUS_ENQUEUE": False}):
        result = add.delay(1, 2)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert prepared_names() == [DIRECT_RELAXED]


def test_a_duplicate_task_id_raises_djangos_integrity_error_and_the_connection_goes_on():
    task_id = str(uuid.uuid4())
    add.apply_async((1, 2), task_id=task_id)
    with pytest.raises(IntegrityError, match="task_id"):
        add.apply_async((3, 4), task_id=task_id)
    assert QueuedMessage.objects.filter(task_id=task_id).count() == 1
    assert QueuedMessage.objects.filter(task_id=add.delay(5, 6).id).exists()


def test_a_nul_character_is_refused_as_djangos_data_error_and_nothing_is_stored():
    with pytest.raises(DataError, match="NUL"):
        add.apply_async((1, 2), queue="bad\x00queue")
    assert not QueuedMessage.objects.exists()


def test_statements_deallocated_behind_its_back_are_prepared_again():
    add.delay(1, 2)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert prepared_names() == []
    result = add.delay(3, 4)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert prepared_names() == DIRECT


def test_a_session_ended_by_the_server_raises_djangos_operational_error_then_reconnects():
    add.delay(1, 2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    with pytest.raises(OperationalError):
        add.delay(3, 4)
    connection.close_if_unusable_or_obsolete()  # what Django does at a request's end
    result = add.delay(5, 6)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()


def test_debug_query_logging_sees_the_insert():
    with CaptureQueriesContext(connection) as queries:
        add.delay(1, 2)
    assert any("INSERT INTO django_tasks_queuedmessage" in q["sql"]
               for q in queries.captured_queries)


def test_threads_sharing_one_connection_take_turns():
    """As Django's live server tests share the test's connection."""
    shared = connections["default"]
    shared.ensure_connection()
    shared.inc_thread_sharing()
    sent, errors = [], []

    def send():
        connections["default"] = shared
        try:
            sent.extend(add.delay(i, i).id for i in range(200))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        shared.dec_thread_sharing()
    assert errors == []
    assert QueuedMessage.objects.filter(task_id__in=sent).count() == len(sent) == 800


@pytest.mark.parametrize("in_transaction", [False, True], ids=["direct", "in a transaction"])
def test_a_hand_made_message_is_stored_or_refused_as_on_every_path(in_transaction):
    now = timezone.now()
    fields = dict(task_id=uuid.uuid4(), task_name="tests.tasks.add", queue="default",
                  priority=0, available_at=now, expires=None, content_type="json",
                  body='{"args": [1, 2], "kwargs": {}}', headers={}, created_at=now)
    block = transaction.atomic if in_transaction else contextlib.nullcontext
    with block():
        enqueue([Message(**fields)])  # a UUID object as task id
    assert QueuedMessage.objects.get(task_id=fields["task_id"]).body == fields["body"]
    for missing in ("task_name", "priority", "created_at"):
        with pytest.raises(IntegrityError, match=missing), block():
            enqueue([Message(**{**fields, "task_id": uuid.uuid4(), missing: None})])
    assert QueuedMessage.objects.count() == 1


def test_the_wake_up_comes_once_the_message_is_committed():
    with listening() as listener:
        result = add.delay(1, 2)
        notices = list(listener.notifies(timeout=10, stop_after=1))
        # Seen from the listener's own session: committed before the wake-up.
        committed = listener.execute(
            "SELECT count(*) FROM django_tasks_queuedmessage WHERE task_id = %s",
            [result.id]).fetchone()[0]
    assert [n.payload for n in notices] == ["default"]
    assert committed == 1


def test_a_wake_up_that_fails_leaves_the_message_enqueued_and_says_so(monkeypatch, caplog):
    """The message is committed before its wake-up runs: the caller must not
    see an error (a retry would send it twice); idle workers find it when
    they poll."""
    monkeypatch.setattr(postgresql, "WAKE",
                        (b"django_tasks_test_broken_wake", b"SELECT length($1::text) / 0"))
    with caplog.at_level(logging.WARNING, logger="django_tasks.queue"):
        result = add.delay(1, 2)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert f"[{result.id}] was enqueued, but the notification" in caplog.text
    assert "division by zero" in caplog.text


def test_a_deallocated_wake_up_statement_is_prepared_again_and_sent():
    add.delay(1, 2)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE django_tasks_wake")
    with listening() as listener:
        result = add.delay(3, 4)
        notices = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.payload for n in notices] == ["default"]
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert prepared_names() == DIRECT


GEVENT_PRODUCER = """
import sys
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
import django
django.setup()
from django.db import connection
from tests.tasks import add
result = add.delay(1, 2)
with connection.cursor() as cursor:
    cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'django_tasks%%'")
    print(sorted(row[0] for row in cursor.fetchall()), result.id)
"""


@pytest.mark.parametrize("green", [False, True], ids=["threads", "gevent"])
def test_under_gevent_the_insert_goes_through_psycopg_which_lets_greenlets_run(green):
    """A call blocking in libpq would stop every greenlet for the round trip;
    psycopg's own waits go through gevent once it has patched select."""
    from tests.workers import ROOT, worker_env

    done = subprocess.run([sys.executable, "-c", GEVENT_PRODUCER, "gevent" if green else "plain"],
                          cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names, task_id = done.stdout.strip().rsplit(" ", 1)
    assert names == str([] if green else DIRECT)
    assert QueuedMessage.objects.filter(task_id=task_id).exists()


INTERRUPTED_PRODUCER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
import django
django.setup()
from django.db import connection
from tests.tasks import add
add.delay(0, 0)
print("sending", flush=True)
interrupted = closed = 0
deadline = time.monotonic() + 60
def send():
    global interrupted, closed
    while interrupted < int(sys.argv[1]) and time.monotonic() < deadline:
        try:
            add.delay(1, 2)
        except KeyboardInterrupt:
            interrupted += 1
            closed += connection.connection.closed
            print("interrupted", flush=True)
while True:
    try:
        send()
        break
    except KeyboardInterrupt:  # landed in the loop's own lines, not in delay()
        interrupted += 1
        print("interrupted", flush=True)
print("interrupted", interrupted, "closed", closed, flush=True)
add.delay(3, 4)  # the same session, still usable
"""


def test_a_ctrl_c_during_delay_leaves_the_session_usable():
    """The signal lands between two reads of the round trip more often than
    not: what was sent is read before the interrupt goes on."""
    from tests.workers import ROOT, worker_env

    signals = 8
    producer = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_PRODUCER, str(signals)], cwd=ROOT,
        env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in producer.stdout],
                     daemon=True).start()
    try:
        assert lines.get(timeout=60) == "sending"
        for _ in range(signals):
            time.sleep(0.02)  # lands somewhere in a later call: not a synchronization
            producer.send_signal(signal.SIGINT)
            # The next signal only once this one was seen: two signals at
            # once would make one interrupt.
            assert lines.get(timeout=60) == "interrupted"
        assert lines.get(timeout=60) == f"interrupted {signals} closed 0"
        assert producer.wait(timeout=60) == 0
    finally:
        producer.kill()
