"""AsyncResult's look-ups and get()'s wake-ups on PostgreSQL."""

import threading
import uuid

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue import get_backend
from django_tasks.queue.postgresql import RESULT_BY_TASK_ID_SQL
from django_tasks.result import AsyncResult
from tests.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


def fields(row):
    return {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields}


def store_result(task_id, value="42"):
    """A result written straight into the table: no notification is sent."""
    now = timezone.now()
    TaskResult.objects.create(task_id=task_id, task_name="tests.tasks.add", state="SUCCESS",
                              result=value, date_created=now, date_done=now)


def test_look_ups_by_task_id_read_what_the_orm_reads(postgres_only):
    backend = get_backend()
    queued = add.apply_async((1, 2), countdown=60, headers={"note": "kept"})
    message = backend.get_message(queued.id)
    assert fields(message) == fields(QueuedMessage.objects.get(task_id=queued.id))
    assert message.headers["note"] == "kept"
    assert queued.state == "PENDING"

    task_id = str(uuid.uuid4())
    store_result(task_id)
    assert fields(backend.get_result(task_id)) == fields(TaskResult.objects.get(task_id=task_id))
    assert AsyncResult(task_id).get(timeout=5) == 42
    assert backend.get_result(str(uuid.uuid4())) is None
    assert backend.get_message(str(uuid.uuid4())) is None


def test_any_text_is_looked_up_and_an_id_no_row_holds_is_not(postgres_only):
    backend = get_backend()
    store_result("not-a-uuid")
    assert fields(backend.get_result("not-a-uuid")) == fields(
        TaskResult.objects.get(task_id="not-a-uuid"))
    assert AsyncResult("not-a-uuid").get(timeout=5) == 42
    for never_sent in ("a\x00b", "x" * 256):  # PostgreSQL would refuse the NUL
        assert backend.get_result(never_sent) is None
        assert backend.get_message(never_sent) is None
        assert AsyncResult(never_sent).state == "PENDING"


class Notifier(threading.Thread):
    """Sends result notifications naming other tasks until told to stop."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.sent = 0

    def run(self):
        try:
            while not self.stop.wait(0.02):
                get_backend().notify_results([str(uuid.uuid4())])
                self.sent += 1
        finally:
            connections.close_all()


def looks_for(result, queries):
    return [q for q in list(queries) if q["sql"] == RESULT_BY_TASK_ID_SQL]


class Finisher(threading.Thread):
    """Stores ``result`` once get() looked for it once and ``notifications``
    more about other tasks went out; with ``notify``, then names it in one."""

    def __init__(self, result, notifier, notifications, notify):
        super().__init__(daemon=True)
        self.result, self.notifier = result, notifier
        self.notifications, self.notify = notifications, notify
        # The test thread's connection itself (``connection`` is a per-thread
        # proxy): its query log shows get()'s looks.
        self.waiter = connections[DEFAULT_DB_ALIAS]

    def run(self):
        try:
            stop = self.notifier.stop
            while not looks_for(self.result, self.waiter.queries_log):
                if stop.wait(0.005):
                    return
            target = self.notifier.sent + self.notifications
            while self.notifier.sent < target:
                if stop.wait(0.005):
                    return
            store_result(self.result.id)
            if self.notify:
                get_backend().notify_results([self.result.id])
        finally:
            connections.close_all()


def wait_with_notifications_about_others(interval, notify):
    """get() on a task finished by a Finisher while a Notifier runs; the looks it made."""
    result = AsyncResult(str(uuid.uuid4()))
    notifier = Notifier()
    with CaptureQueriesContext(connection) as queries:
        finisher = Finisher(result, notifier, 20, notify)
        notifier.start()
        finisher.start()
        try:
            assert result.get(timeout=60, interval=interval) == 42
        finally:
            notifier.stop.set()
            notifier.join()
            finisher.join()
    return looks_for(result, queries.captured_queries)


def test_get_looks_again_only_when_a_notification_names_its_task(postgres_only):
    looks = wait_with_notifications_about_others(interval=30, notify=True)
    # One look before waiting, one after the notification naming the task;
    # the 20 or more about other tasks woke nothing.
    assert len(looks) == 2, len(looks)


def test_get_still_finds_a_result_stored_without_a_notification(postgres_only):
    # Notifications about other tasks keep coming all along: the interval
    # alone must make get() look again.
    looks = wait_with_notifications_about_others(interval=0.2, notify=False)
    assert len(looks) >= 2
