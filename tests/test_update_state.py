"""update_state: a running task's custom state and meta, seen by AsyncResult,
the admin and the dashboard while it runs, then overwritten by its outcome."""

import uuid

import pytest
from django.urls import reverse

from django_tasks import AsyncResult, states
from django_tasks.exceptions import EncodeError
from django_tasks.models import TaskResult
from django_tasks.testing import eager
from tests.models import Note
from tests.taskclass_tasks import (
    bad_meta,
    bad_update_state,
    progress_then_retry,
    reports_progress,
    reports_progress_atomically,
    updates_other,
)
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RESULTS = reverse("admin:django_tasks_taskresult_changelist")
DASHBOARD = reverse("admin:django_tasks_dashboard_changelist")


def wait_for_state(result, state):
    return wait_until(lambda: AsyncResult(result.id).state == state,
                      message=f"{result.id} in state {state}")


def test_progress_is_seen_while_the_task_runs_then_the_outcome(start_worker, admin_client):
    start_worker()
    key = str(uuid.uuid4())
    result = reports_progress.delay(key)
    wait_for_state(result, "PROGRESS")
    assert result.info == {"done": 1, "total": 2}
    assert not result.ready()
    # The admin's list (filter included), the result's page and the dashboard.
    listed = admin_client.get(RESULTS, {"state": "PROGRESS"}).content.decode()
    assert result.id in listed and "PROGRESS" in listed
    row = TaskResult.objects.get(task_id=result.id)
    page = admin_client.get(reverse("admin:django_tasks_taskresult_change",
                                    args=[row.pk])).content.decode()
    assert "PROGRESS" in page and "total" in page
    dashboard = admin_client.get(DASHBOARD).content.decode()
    assert 'data-state="PROGRESS"' in dashboard

    Note.objects.create(text=f"go-{key}")
    assert result.get(timeout=60) == "finished"
    assert AsyncResult(result.id).state == states.SUCCESS


def test_an_atomic_tasks_progress_is_seen_before_it_commits(start_worker, postgres_only):
    start_worker()
    key = str(uuid.uuid4())
    result = reports_progress_atomically.delay(key)
    wait_for_state(result, "PROGRESS")
    assert result.info == {"done": 1, "total": 2}
    # The task's own writes are still uncommitted.
    assert not Note.objects.filter(text=f"written-{key}").exists()
    Note.objects.create(text=f"go-{key}")
    assert result.get(timeout=60) == "finished"
    assert Note.objects.filter(text=f"written-{key}").exists()


def test_a_retry_overwrites_the_progress_and_the_next_run_reports_again(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    result = progress_then_retry.delay(key)
    wait_for_state(result, "PROGRESS")
    assert result.info == {"attempt": 0}
    Note.objects.create(text=f"retry-{key}")
    wait_until(lambda: AsyncResult(result.id).info == {"attempt": 1},
               message="the second run's progress")
    assert AsyncResult(result.id).state == "PROGRESS"
    Note.objects.create(text=f"go-{key}")
    assert result.get(timeout=60) == 1
    assert TaskResult.objects.get(task_id=result.id).state == states.SUCCESS


def test_update_state_of_another_task_id(start_worker):
    start_worker()
    other = str(uuid.uuid4())
    assert updates_other.delay(other).get(timeout=60) == "ok"
    assert AsyncResult(other).state == "WAITING-FOR-YOU"
    assert AsyncResult(other).info == [1, 2]
    assert not AsyncResult(other).ready()


@pytest.mark.parametrize(("state", "error"), [
    ("", "non-empty state name"),
    (None, "non-empty state name"),
    (42, "non-empty state name"),
    ("P" * 51, "at most 50 characters"),
    ("SUCCESS", "stores that state when the task ends"),
    ("FAILURE", "stores that state when the task ends"),
    ("RETRY", "stores that state when the task ends"),
])
def test_bad_states_fail_the_task_with_a_reason(state, error):
    with eager():
        result = bad_update_state.delay(state)
    assert result.state == states.FAILURE
    with pytest.raises(ValueError, match=error):
        result.get()


def test_meta_that_cannot_be_serialized_fails_at_the_call(start_worker):
    start_worker()
    result = bad_meta.delay()
    with pytest.raises(EncodeError, match="update_state meta"):
        result.get(timeout=60)


def test_a_long_custom_state_fits():
    state = "S" * 50
    with eager():
        assert bad_update_state.delay(state).get() == "unreachable"
    row = TaskResult.objects.create(task_id=uuid.uuid4(), task_name="x", state=state)
    assert AsyncResult(str(row.task_id)).state == state


def test_an_async_tasks_progress_is_seen_while_it_runs(start_worker):
    from tests.async_tasks import async_reports_progress

    start_worker("-P", "threads", "-c", "2")
    key = str(uuid.uuid4())
    result = async_reports_progress.delay(key)
    wait_for_state(result, "PROGRESS")
    assert result.info == {"done": 1}
    Note.objects.create(text=f"go-{key}")
    assert result.get(timeout=60) == "finished"
