"""EAGER mode and the django_tasks.testing helpers for users' own tests."""

import pytest
from django.test import override_settings

from django_tasks import EagerResult, states
from django_tasks.exceptions import EncodeError
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.testing import eager, queued_messages, run_queued_tasks
from tests.tasks import add, echo, fail_with_type_error, record, return_unserializable


@pytest.mark.django_db
def test_eager_runs_inline_without_storing_anything():
    with override_settings(DJANGO_TASKS={"EAGER": True}):
        result = add.delay(2, 3)
    assert isinstance(result, EagerResult)
    assert result.get() == 5 and result.state == states.SUCCESS and result.successful()
    assert not QueuedMessage.objects.exists() and not TaskResult.objects.exists()


@pytest.mark.django_db
def test_eager_goes_through_serialization():
    with eager():
        assert echo.delay((1, 2)).get() == (1, 2)
        with pytest.raises(EncodeError):
            echo.delay(object())
        with pytest.raises(EncodeError, match="cannot be stored"):
            return_unserializable.delay().get()


@pytest.mark.django_db
def test_eager_failure_propagates_on_get():
    with eager():
        result = fail_with_type_error.delay(1)
    assert result.failed()
    with pytest.raises(TypeError):
        result.get()
    assert isinstance(result.get(propagate=False), TypeError)
    assert "Traceback" in result.traceback


@pytest.mark.django_db
def test_run_queued_tasks_runs_through_the_worker_path():
    first = add.delay(1, 1)
    second = record.apply_async(("x",), queue="other")
    assert [m.task_name for m in queued_messages()] == ["tests.tasks.add", "tests.tasks.record"]
    outcomes = run_queued_tasks()
    assert [o.state for o in outcomes] == [states.SUCCESS, states.SUCCESS]
    assert first.get(timeout=1) == 2 and second.get(timeout=1) == "x"
    assert not queued_messages()
