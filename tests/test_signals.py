"""Celery's signals, sent where Celery sends them, with its keyword arguments.

The worker-side receivers live in tests/delivery_tasks.py (connected in the
worker processes a test starts with TESTS_SIGNAL_LOG): each takes exactly
Celery's arguments and writes a line to that file."""

import json
import signal
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_tasks import group, send_task, signals
from django_tasks.exceptions import EncodeError
from django_tasks.models import QueuedMessage
from django_tasks.result import AsyncResult
from django_tasks.task import task_for_sending
from tests.delivery_tasks import header_value, retry_once
from tests.tasks import add, fail_with_type_error
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _lines(path):
    try:
        with open(path) as lines:
            return [json.loads(line) for line in lines]
    except FileNotFoundError:
        return []


def _by_signal(lines):
    found = {}
    for line in lines:
        found.setdefault(line["signal"], []).append(line)
    return found


def _one(found, signal_name, /, **fields):
    matching = [line for line in found.get(signal_name, [])
                if all(line.get(key) == value for key, value in fields.items())]
    assert matching, f"no {signal_name} with {fields}: {found.get(signal_name)}"
    return matching[0]


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_the_worker_sends_celerys_signals(start_worker, pool, tmp_path):
    path = tmp_path / "signals.jsonl"
    worker = start_worker("-P", pool, "-c", "1", env={"TESTS_SIGNAL_LOG": str(path)})
    ok = add.delay(2, 3)
    assert ok.get(timeout=30) == 5
    failed = fail_with_type_error.delay("x")
    failed.get(timeout=30, propagate=False)
    retried = retry_once.delay()
    assert retried.get(timeout=30) == "retried"
    expired = add.apply_async((1, 1), expires=timezone.now() - timedelta(seconds=1))
    unknown = task_for_sending("tests.never.registered").delay()
    rejected = AsyncResult(uuid.uuid4())
    QueuedMessage.objects.create(task_id=rejected.id, task_name="tests.tasks.add",
                                 queue="default", body="{not json", headers={},
                                 available_at=timezone.now())
    for result in (expired, unknown, rejected):
        result.get(timeout=30, propagate=False)
    wait_until(lambda: "heartbeat_sent" in _by_signal(_lines(path)), message="a heartbeat")
    worker.send(signal.SIGTERM)
    assert worker.wait_exit() == 0

    found = _by_signal(_lines(path))
    hostname = _one(found, "celeryd_init", pool=pool)["hostname"]
    _one(found, "celeryd_after_setup", hostname=hostname)
    for name in ("worker_init", "worker_ready", "worker_shutdown", "heartbeat_sent"):
        _one(found, name, pid=worker.pid)
    _one(found, "worker_shutting_down", pid=worker.pid, hostname=hostname, sig="SIGTERM",
         how="Warm", exitcode=0)

    # Task signals come from the process that ran the task.
    runner = _one(found, "task_prerun", task="tests.tasks.add", task_id=ok.id,
                  args=[2, 3], kwargs={})["pid"]
    _one(found, "task_received", task_id=ok.id, name="tests.tasks.add", args=[2, 3])
    _one(found, "task_postrun", task_id=ok.id, state="SUCCESS", retval="5")
    _one(found, "task_success", task="tests.tasks.add", result=5, pid=runner)
    _one(found, "task_failure", task="tests.tasks.fail_with_type_error", task_id=failed.id,
         exception="TypeError", args=["x"], traceback="traceback", einfo="TypeError",
         einfo_text="TypeError: bad value: 'x'")
    _one(found, "task_postrun", task_id=failed.id, state="FAILURE")
    _one(found, "task_retry", task_id=retried.id, reason="once more", einfo="ValueError")
    _one(found, "task_revoked", task_id=expired.id, expired=True, terminated=False)
    _one(found, "task_unknown", task_id=unknown.id, name="tests.never.registered",
         exc="NotRegistered")
    _one(found, "task_rejected", task_id=str(rejected.id), exc="DecodeError")
    if pool == "prefork":
        assert runner != worker.pid
        _one(found, "worker_before_create_process", pid=worker.pid)
        _one(found, "worker_process_init", pid=runner)
        _one(found, "worker_process_shutdown", pid=runner, child=runner, exitcode=0)
    else:
        assert runner == worker.pid
    if pool == "solo":
        _one(found, "worker_process_init", pid=worker.pid)
    if pool == "threads":
        assert "worker_process_init" not in found


def test_publish_signals_fire_at_send_and_header_changes_reach_the_worker(start_worker):
    sent = []

    def before(sender, body, exchange, routing_key, headers, properties, declare,
               retry_policy, **extra):
        sent.append(("before", sender, headers["id"], body[0], routing_key))
        headers["trace"] = f"trace-{headers['id']}"

    def after(sender, body, exchange, routing_key, headers, **extra):
        sent.append(("after", sender, headers["id"], body[0], headers.get("trace")))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        result = header_value.delay("trace")
        members = group(add.s(i, i) for i in range(3)).apply_async()
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    name = "tests.delivery_tasks.header_value"
    assert sent[:2] == [("before", name, result.id, ["trace"], "default"),
                        ("after", name, result.id, ["trace"], f"trace-{result.id}")]
    member_ids = {child.id for child in members.results}
    assert {entry[2] for entry in sent[2:] if entry[0] == "before"} == member_ids
    assert {entry[2] for entry in sent[2:] if entry[0] == "after"} == member_ids
    start_worker("-P", "solo")
    assert result.get(timeout=30) == f"trace-{result.id}"


def test_a_unique_duplicate_sends_neither_publish_signal(start_worker):
    # Nothing is published for a send whose key is held: no signal says one
    # is, and every before_task_publish has its after_task_publish (a
    # receiver may open in one what it closes in the other).
    sent = []

    def before(sender, headers, **extra):
        sent.append(("before", headers["id"]))
        headers["trace"] = f"trace-{headers['id']}"

    def after(sender, headers, **extra):
        sent.append(("after", headers["id"], headers.get("trace")))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    key = f"k-{uuid.uuid4()}"
    try:
        first = header_value.apply_async(("trace",), unique_key=key)
        again = header_value.apply_async(("trace",), unique_key=key)
        by_name = send_task(header_value.name, ("trace",), unique_key=key)
        with transaction.atomic():
            inside = header_value.s("trace").set(unique_key=key).delay()
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    assert again.id == by_name.id == inside.id == first.id
    assert sent == [("before", first.id), ("after", first.id, f"trace-{first.id}")]
    # The header a receiver added is written, as for any send.
    start_worker("-P", "solo")
    assert first.get(timeout=30) == f"trace-{first.id}"


def test_a_unique_send_grown_too_large_by_a_receiver_gives_its_key_back():
    # before_task_publish runs once the key is taken; what its receiver adds
    # is checked then, and the refused send neither keeps the key nor breaks
    # the caller's transaction.
    def grow(sender, headers, **extra):
        headers["baggage"] = "x" * 5000

    key = f"k-{uuid.uuid4()}"
    small = {**settings.DJANGO_TASKS, "MAX_MESSAGE_SIZE": 2000}
    signals.before_task_publish.connect(grow)
    try:
        with override_settings(DJANGO_TASKS=small), transaction.atomic():
            with pytest.raises(EncodeError, match="too large"):
                add.apply_async((1, 1), unique_key=key)
            signals.before_task_publish.disconnect(grow)
            sent = add.apply_async((2, 2), unique_key=key)
    finally:
        signals.before_task_publish.disconnect(grow)
    assert list(QueuedMessage.objects.values_list("task_id", flat=True)) == [sent.id]


def test_a_receiver_that_raises_does_not_fail_the_task():
    def broken(**kwargs):
        raise RuntimeError("a broken monitoring hook")

    signals.task_prerun.connect(broken)
    signals.task_postrun.connect(broken)
    try:
        with override_settings(DJANGO_TASKS={"EAGER": True}):
            assert add.delay(1, 2).get() == 3
    finally:
        signals.task_prerun.disconnect(broken)
        signals.task_postrun.disconnect(broken)


def test_connect_is_a_decorator_as_in_celery():
    seen = []

    @signals.task_success.connect(sender=add)
    def only_add(sender, result, **kwargs):
        seen.append(("add", result))

    @signals.task_success.connect
    def every_task(sender, result, **kwargs):
        seen.append((sender.name, result))

    try:
        with override_settings(DJANGO_TASKS={"EAGER": True}):
            add.delay(1, 2).get()
            header_value.delay("x").get()
    finally:
        signals.task_success.disconnect(only_add, sender=add)
        signals.task_success.disconnect(every_task)
    assert sorted(seen, key=str) == sorted(
        [("add", 3), ("tests.tasks.add", 3), ("tests.delivery_tasks.header_value", None)],
        key=str)
