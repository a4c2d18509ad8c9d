"""A worker hands back only what it still holds: a message it was declared
lost with, recovered and claimed by another worker, stays with that one,
whichever way the lost worker hands it back (released, prefetched, or
refused by a flow gate with a due time)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_tasks.models import QueuedMessage, Worker
from django_tasks.queue import get_backend
from django_tasks.worker.housekeeping import recover_lost_workers
from tests.tasks import add
from tests.workers import live_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _claim_one(worker_id):
    claimed = get_backend().claim(worker_id, ["default"], 1, start=1, pid=4242)
    assert len(claimed) == 1
    return claimed[0]


def _declare_lost_and_recover(worker_id):
    """What housekeeping does to a worker whose heartbeat went stale."""
    Worker.objects.filter(id=worker_id).update(
        last_heartbeat=timezone.now() - timedelta(hours=1))
    again, failed = recover_lost_workers(get_backend())
    assert (again, failed) == (1, 0)
    assert Worker.objects.get(id=worker_id).stopped_at is not None


@pytest.mark.parametrize("how", [
    {},
    {"undeliver": True},
    {"undeliver": True, "available_at": "later"},
], ids=["released", "prefetched", "refused-until-later"])
def test_a_lost_worker_never_hands_back_what_another_worker_claimed_since(how):
    add.delay(1, 2)
    lost, other = live_worker(), live_worker()
    message = _claim_one(lost)
    _declare_lost_and_recover(lost)
    assert QueuedMessage.objects.get(id=message.id).claimed_by is None
    assert _claim_one(other).id == message.id
    row = QueuedMessage.objects.get(id=message.id)
    assert (row.claimed_by, row.deliveries) == (other, 2)

    options = dict(how)
    if "available_at" in options:
        options["available_at"] = [timezone.now() + timedelta(hours=1)]
    assert get_backend().hand_back([message.id], lost, **options) == 0

    after = QueuedMessage.objects.get(id=message.id)
    assert (after.claimed_by, after.claimed_pid, after.deliveries, after.available_at,
            after.started_at) == (other, row.claimed_pid, 2, row.available_at, row.started_at)
    # The worker that holds it can hand it back, the same way.
    assert get_backend().hand_back([message.id], other, **options) == 1
    handed = QueuedMessage.objects.get(id=message.id)
    assert handed.claimed_by is None
    assert handed.deliveries == (1 if options.get("undeliver") else 2)
    if "available_at" in options:
        assert handed.available_at == options["available_at"][0]


def test_a_hand_back_retried_counts_a_delivery_off_once():
    add.delay(1, 2)
    worker = live_worker()
    message = _claim_one(worker)
    backend = get_backend()
    assert backend.hand_back([message.id], worker, undeliver=True) == 1
    assert backend.hand_back([message.id], worker, undeliver=True) == 0
    assert QueuedMessage.objects.get(id=message.id).deliveries == 0
