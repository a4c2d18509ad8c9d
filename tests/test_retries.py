"""Retries: self.retry(), autoretry_for with backoff, max_retries, with real workers.

Retries are scheduled an hour (or a few seconds) ahead; the tests observe
the RETRY state and the scheduled time, then make the message due at once
instead of waiting, so they never depend on the clock.
"""

import random
import uuid

import pytest
from django.utils import timezone

from django_tasks import AsyncResult, states
from django_tasks.exceptions import MaxRetriesExceededError
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.retry import backoff_countdown
from django_tasks.testing import eager
from tests.canvas_tasks import (
    Flaky,
    always_flaky,
    retry_past_limit_with_exc,
    retry_without_exc,
    succeed_on_third_attempt,
)
from tests.models import Execution
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _retry_row(result, retries):
    """Wait until ``result`` is in RETRY after attempt ``retries + 1``; return its row."""
    def retried():
        row = TaskResult.objects.filter(task_id=result.id, state=states.RETRY,
                                        retries=retries).first()
        message = QueuedMessage.objects.filter(task_id=result.id, claimed_by=None).first()
        return row is not None and message is not None and (row, message)
    return wait_until(retried, message=f"RETRY after attempt {retries + 1}")


def _make_due(message):
    QueuedMessage.objects.filter(id=message.id).update(available_at=timezone.now())


def test_retried_task_succeeds_on_third_attempt(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    result = succeed_on_third_attempt.delay(key, 3600)
    for attempt in (1, 2):
        row, message = _retry_row(result, retries=attempt - 1)
        assert result.state == states.RETRY
        assert isinstance(result.info, Flaky) and str(result.info) == f"attempt {attempt}"
        assert message.headers["retries"] == attempt
        assert (message.available_at - row.date_done).total_seconds() > 3500
        _make_due(message)
    assert result.get(timeout=20) == "done after 2 retries"
    assert result.state == states.SUCCESS and result.retries == 2
    assert Execution.objects.filter(key=key).count() == 3


def test_autoretry_backoff_grows_and_is_bounded_then_fails(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    result = always_flaky.delay(key)
    delays = []
    for retries in range(4):  # max_retries=4
        row, message = _retry_row(result, retries)
        delays.append(round((message.available_at - row.date_done).total_seconds()))
        _make_due(message)
    # retry_backoff=2: 2, 4, 8 -> capped at retry_backoff_max=5.
    assert delays == [2, 4, 5, 5]
    with pytest.raises(Flaky, match=f"flaky {key}"):
        result.get(timeout=20)
    assert result.state == states.FAILURE and result.retries == 4
    assert Execution.objects.filter(key=key).count() == 5


def test_retry_past_max_retries_raises_max_retries_exceeded(start_worker):
    start_worker()
    result = retry_without_exc.delay(2)
    with pytest.raises(MaxRetriesExceededError, match="max_retries=2"):
        result.get(timeout=20)
    assert AsyncResult(result.id).retries == 2


def test_retry_past_max_retries_with_exc_raises_the_original(start_worker):
    start_worker()
    with pytest.raises(Flaky, match="original"):
        retry_past_limit_with_exc.delay().get(timeout=20)


def test_retries_in_eager_mode():
    key = str(uuid.uuid4())
    with eager():
        result = succeed_on_third_attempt.delay(key, 3600)
    assert result.get() == "done after 2 retries"
    assert Execution.objects.filter(key=key).count() == 3


def test_backoff_policy_is_exponential_bounded_and_jittered_below_the_bound():
    assert [backoff_countdown(n, 1, 600, jitter=False) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff_countdown(20, 1, 600, jitter=False) == 600
    rng = random.Random(4)
    assert all(0 <= backoff_countdown(n, 3, 20, jitter=True, rng=rng) <= min(20, 3 * 2 ** n)
               for n in range(12) for _ in range(20))
