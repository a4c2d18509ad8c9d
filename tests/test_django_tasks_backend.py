"""Django 6's task API (``django.tasks``) on this app's queue and worker.

The tasks are in tests/django6_tasks.py, written against Django's API only;
``TASKS`` in tests/settings.py names ``django_tasks.backends.DatabaseBackend``.
Skipped on Django 5.2, which has no ``django.tasks``.
"""

import asyncio
import time
from datetime import timedelta

import pytest

pytest.importorskip("django.tasks", reason="django.tasks is new in Django 6.0")

from asgiref.sync import async_to_sync  # noqa: E402
from django.core.checks import run_checks  # noqa: E402
from django.db import transaction  # noqa: E402
from django.tasks import TaskResultStatus, default_task_backend, task_backends  # noqa: E402
from django.tasks.exceptions import (  # noqa: E402
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django.tasks.signals import task_enqueued  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_tasks import states  # noqa: E402
from django_tasks.backends import DatabaseBackend  # noqa: E402
from django_tasks.models import QueuedMessage, TaskResult  # noqa: E402
from tests import django6_tasks as dj  # noqa: E402
from tests.models import Execution  # noqa: E402
from tests.workers import wait_until  # noqa: E402


def finished(result, timeout=30):
    """``result`` refreshed until the worker has finished it."""
    def done():
        result.refresh()
        return result.is_finished
    wait_until(done, timeout=timeout, message=f"task {result.id} to finish")
    return result


def test_the_backend_says_what_it_supports(db):
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    assert (backend.supports_defer, backend.supports_async_task, backend.supports_get_result,
            backend.supports_priority) == (True, True, True, True)


def test_a_task_enqueued_through_djangos_api_runs_on_runworker(start_worker):
    start_worker()
    result = dj.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at is not None and result.backend == "default"
    assert result.args == [2, 3] and result.kwargs == {}

    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.errors == []
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1 and result.worker_ids[0]
    # By id, from the task or the backend, as another process would read it.
    again = dj.add.get_result(result.id)
    assert (again.status, again.return_value, again.args) == \
        (TaskResultStatus.SUCCESSFUL, 5, [2, 3])
    assert default_task_backend.get_result(result.id).task.func is dj.add.func
    # The same row as this app's own API reads.
    assert TaskResult.objects.get(task_id=result.id).state == states.SUCCESS


def test_a_failing_task_is_failed_with_its_error(start_worker):
    worker = start_worker()
    enqueued = []

    def receive(sender, task_result, **kwargs):
        enqueued.append((sender, task_result.id))

    task_enqueued.connect(receive)
    try:
        result = finished(dj.fail.enqueue("boom"))
    finally:
        task_enqueued.disconnect(receive)
    assert enqueued == [(DatabaseBackend, result.id)]
    # The worker sent task_finished: Django's own receiver logged the failure.
    worker.wait_for(f"Task id={result.id} path=tests.django6_tasks.fail state=FAILED")
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "raise ValueError(text)" in error.traceback and "boom" in error.traceback
    assert result.finished_at is not None


def test_a_return_value_that_is_not_json_fails_the_task(start_worker):
    start_worker()
    result = finished(dj.returns_a_set.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError


def test_a_task_that_takes_context_gets_its_result_and_attempt(start_worker):
    start_worker()
    result = finished(dj.who_am_i.enqueue("me"))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    value = result.return_value
    assert (value["label"], value["id"], value["attempt"], value["status"]) == \
        ("me", result.id, 1, "RUNNING")
    assert value["worker_ids"] == result.worker_ids
    assert value["queue_name"] == "default"


def test_run_after_defers_the_task(start_worker):
    start_worker()
    later = timezone.now() + timedelta(hours=1)
    waiting = dj.add.using(run_after=later).enqueue(1, 1)
    soon = timezone.now() + timedelta(seconds=1)
    deferred = dj.add.using(run_after=soon).enqueue(2, 2)

    finished(deferred)
    assert deferred.return_value == 4
    assert deferred.started_at >= soon  # not before its time
    waiting.refresh()
    assert waiting.status == TaskResultStatus.READY
    assert waiting.task.run_after == later
    assert QueuedMessage.objects.get(task_id=waiting.id).available_at == later


def test_higher_priority_runs_first(start_worker):
    keys = [("low", 0), ("high", 90), ("middle", 5), ("highest", 100), ("lowest", -100)]
    results = [dj.record.using(priority=priority).enqueue(key) for key, priority in keys]
    assert results[3].task.priority == 100
    start_worker("--pool", "solo")  # one at a time, so run order is claim order
    for result in results:
        finished(result)
    order = list(Execution.objects.order_by("id").values_list("key", flat=True))
    assert order == ["highest", "high", "middle", "low", "lowest"]


def test_queue_names_are_checked_against_queues_and_used(start_worker):
    with pytest.raises(InvalidTask, match="Queue 'elsewhere' is not valid"):
        dj.add.using(queue_name="elsewhere")
    result = dj.on_the_other_queue.enqueue()
    message = QueuedMessage.objects.get(task_id=result.id)
    assert (message.queue, message.priority) == ("django-other", 7)
    start_worker("-Q", "django-other")
    finished(result)
    assert result.return_value == "other"
    assert result.task.queue_name == "django-other"


def test_enqueue_inside_a_rolled_back_transaction_never_runs(start_worker):
    start_worker()
    with pytest.raises(RuntimeError, match="roll back"):
        with transaction.atomic():
            rolled_back = dj.record.enqueue("rolled back")
            raise RuntimeError("roll back")
    with transaction.atomic():
        committed = dj.record.enqueue("committed")
    finished(committed)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(rolled_back.id)
    assert list(Execution.objects.values_list("key", flat=True)) == ["committed"]


def test_aenqueue_and_aget_result_with_an_async_task(start_worker):
    start_worker()

    async def finished_soon(result, timeout=30):
        deadline = time.monotonic() + timeout
        while not result.is_finished:
            assert time.monotonic() < deadline, f"task {result.id} did not finish"
            await asyncio.sleep(0.05)
            await result.arefresh()

    async def scenario():
        result = await dj.async_multiply.aenqueue(6, 7)
        context = await dj.async_who_am_i.aenqueue()
        for each in (result, context):
            await finished_soon(each)
        fetched = await dj.async_multiply.aget_result(result.id)
        return fetched, context

    fetched, context = async_to_sync(scenario)()
    assert (fetched.status, fetched.return_value) == (TaskResultStatus.SUCCESSFUL, 42)
    assert context.return_value == {"id": context.id, "attempt": 1}


def test_get_result_of_an_unknown_or_foreign_id(db):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")
    result = dj.add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        dj.fail.get_result(result.id)
    # A task of this app's own API is no django.tasks result.
    from tests.tasks import add

    own = add.delay(1, 2)
    with pytest.raises(TaskResultDoesNotExist, match="not a django.tasks Task"):
        default_task_backend.get_result(own.id)


def test_wrong_arguments_are_refused_at_enqueue(db):
    with pytest.raises(TypeError, match="got wrong arguments"):
        dj.add.enqueue(1)
    with pytest.raises(TypeError, match="got wrong arguments"):
        dj.who_am_i.enqueue()  # the context is the worker's to give
    with pytest.raises(TypeError, match="Unsupported type"):
        dj.add.enqueue({1}, 2)  # Django's rule: JSON arguments only
    assert not QueuedMessage.objects.exists()


def test_unknown_options_and_bad_queue_names_are_system_check_errors(db):
    tasks_setting = {"default": {"BACKEND": "django_tasks.backends.DatabaseBackend",
                                 "QUEUES": ["default", "a,b"], "OPTIONS": {"SPEED": 1}}}
    with override_settings(TASKS=tasks_setting):
        ids = {error.id for error in run_checks()}
    assert {"django_tasks.E202", "django_tasks.E203"} <= ids
    assert "django_tasks.E201" not in ids  # django_tasks is installed
