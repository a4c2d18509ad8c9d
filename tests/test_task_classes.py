"""Task subclasses: Celery's handlers run by real workers with Celery's
arguments, class attributes as option defaults, and handlers that raise."""

import pytest

from django_tasks import Task, states, task
from django_tasks.testing import eager
from tests.models import HookCall
from tests.taskclass_tasks import (
    DefaultsTask,
    RecordingTask,
    broken_before_start,
    broken_on_failure,
    broken_on_success,
    defaults_overridden,
    divide_until_third,
    hooked_add,
    hooked_fail,
    hooked_retry_once,
)
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def calls(task_id):
    return [(c.hook, c.data) for c in HookCall.objects.filter(task_id=task_id).order_by("id")]


def test_base_builds_the_subclass_and_keeps_the_decorated_function():
    assert isinstance(hooked_add, RecordingTask)
    assert hooked_add(2, y=3) == 5  # a direct call runs the body only
    assert not HookCall.objects.exists()


def test_base_must_be_a_task_subclass():
    with pytest.raises(TypeError, match="subclass of django_tasks.Task"):
        task(base=object)
    with pytest.raises(TypeError, match="subclass of django_tasks.Task"):
        task(base=len)


def test_class_attributes_are_option_defaults():
    assert divide_until_third.max_retries == 5
    assert divide_until_third.autoretry_for == (ZeroDivisionError,)
    assert divide_until_third.default_retry_delay == 0
    assert divide_until_third.queue == "default"
    # The decorator's options win over the class's.
    assert defaults_overridden.max_retries == 1
    assert defaults_overridden.autoretry_for == (ZeroDivisionError,)
    # The plain Task keeps the usual defaults.
    assert Task(lambda: None, name="plain").max_retries == 3
    assert issubclass(DefaultsTask, Task)


def test_a_base_with_a_name_does_not_name_its_tasks():
    class Named(Task):
        name = "the.base"

    def first():
        return 1

    def second():
        return 2

    assert Named(first).name.endswith("first")
    assert Named(second).name.endswith("second")


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_handlers_of_a_success(start_worker, pool):
    start_worker("--pool", pool, "--concurrency", "2")
    result = hooked_add.apply_async((2,), {"y": 40})
    assert result.get(timeout=60) == 42
    recorded = wait_until(lambda: len(calls(result.id)) == 3 and calls(result.id),
                          message="three handler calls")
    assert recorded == [
        ("before_start", {"args": [2], "kwargs": {"y": 40}, "request_id": result.id}),
        ("on_success", {"retval": 42, "args": [2], "kwargs": {"y": 40}}),
        ("after_return", {"status": "SUCCESS", "retval": "42", "args": [2],
                          "kwargs": {"y": 40}, "einfo": None}),
    ]


def test_handlers_of_a_failure(start_worker):
    start_worker()
    result = hooked_fail.delay("boom")
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=60)
    recorded = dict(wait_until(lambda: len(calls(result.id)) == 3 and calls(result.id),
                               message="three handler calls"))
    einfo = {"type": "ValueError", "exception": "ValueError('boom')", "has_traceback": True}
    assert recorded["on_failure"] == {"exc": "ValueError('boom')", "args": ["boom"],
                                      "kwargs": {}, "einfo": einfo, "same": True}
    assert recorded["after_return"] == {"status": "FAILURE", "retval": "ValueError('boom')",
                                        "args": ["boom"], "kwargs": {}, "einfo": einfo}


def test_handlers_of_a_retry(start_worker):
    start_worker()
    result = hooked_retry_once.delay("again")
    assert result.get(timeout=60) == "again"
    recorded = [hook for hook, _ in calls(result.id)]
    # No after_return for the retry (as in Celery); two runs, two before_start.
    assert recorded == ["before_start", "on_retry", "before_start", "on_success",
                        "after_return"]
    on_retry = dict(calls(result.id))["on_retry"]
    assert on_retry == {"exc": "KeyError('again')", "args": ["again"], "kwargs": {},
                        "einfo": {"type": "KeyError", "exception": "KeyError('again')",
                                  "has_traceback": True}}


def test_autoretry_for_from_the_class(start_worker):
    start_worker()
    assert divide_until_third.delay().get(timeout=60) == 2


def test_on_success_raising_fails_the_task_and_the_worker_goes_on(start_worker):
    worker = start_worker()
    result = broken_on_success.delay(7)
    with pytest.raises(RuntimeError, match="on_success broke"):
        result.get(timeout=60)
    assert result.state == states.FAILURE
    worker.wait_for("on_success of tests.taskclass_tasks.broken_on_success")
    # on_failure learns of it, as in Celery.
    assert "on_failure" in [hook for hook, _ in calls(result.id)]
    assert hooked_add.delay(1, 1).get(timeout=60) == 2


def test_on_failure_raising_keeps_the_tasks_own_failure(start_worker):
    worker = start_worker()
    result = broken_on_failure.delay("original")
    with pytest.raises(ValueError, match="original"):
        result.get(timeout=60)
    worker.wait_for("on_failure of tests.taskclass_tasks.broken_on_failure")
    worker.wait_for("after_return of tests.taskclass_tasks.broken_on_failure")
    assert hooked_add.delay(1, 2).get(timeout=60) == 3


def test_before_start_raising_fails_the_task_without_running_it(start_worker):
    start_worker()
    result = broken_before_start.delay()
    with pytest.raises(RuntimeError, match="before_start broke"):
        result.get(timeout=60)
    assert not HookCall.objects.filter(hook="body").exists()
    assert [hook for hook, _ in calls(result.id)] == ["on_failure", "after_return"]


def test_handlers_run_in_eager_mode():
    with eager():
        assert hooked_add.delay(1, y=1).get() == 2
        result = hooked_fail.delay("eager")
    assert result.state == states.FAILURE
    assert [hook for hook, _ in calls(result.id)] == ["before_start", "on_failure",
                                                     "after_return"]
