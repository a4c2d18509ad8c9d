"""A worker declared lost (stalled past WORKER_LOST_TIMEOUT) goes on under a
new identity: what it claims after that runs once, and what the lost
identity held is delivered by whoever recovers it, not run alongside."""

import os
import signal
from collections import Counter

import pytest

from django_tasks.models import Worker
from tests.models import Execution
from tests.tasks import slow_record
from tests.workers import stop_processes, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _row_of(worker):
    return Worker.objects.get(pid=worker.pid, stopped_at__isnull=True)


@pytest.mark.parametrize("pool", ["solo", "prefork", "threads"])
def test_a_worker_declared_lost_goes_on_as_a_new_one(start_worker, pool):
    # The other worker only keeps house (it consumes another queue): it
    # declares the stalled one lost and recovers what that one held.
    keeper = start_worker("-P", "solo", "-Q", "elsewhere")
    stalled = start_worker("-P", pool, "-c", "2")
    lost_id = _row_of(stalled).id
    held = slow_record.delay("held", 1.0)  # running when the stall begins
    wait_until(lambda: Execution.objects.filter(key="held").exists(), message="held to start")
    stop_processes([stalled.pid, *_children(stalled.pid)])
    try:
        wait_until(lambda: Worker.objects.get(id=lost_id).stopped_at is not None, timeout=30,
                   message="the stalled worker to be declared lost")
        # Sent while it is stalled: it finds them the moment it resumes.
        results = [slow_record.delay(f"after-{i}", 0.5) for i in range(6)]
    finally:
        for child in _children(stalled.pid):
            os.kill(child, signal.SIGCONT)
        os.kill(stalled.pid, signal.SIGCONT)
    stalled.wait_for("Going on as worker", timeout=30)
    assert sorted(r.get(timeout=60) for r in results) == sorted(f"after-{i}" for i in range(6))
    assert held.get(timeout=60) == "held"
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert all(runs[f"after-{i}"] == 1 for i in range(6)), runs
    new_id = _row_of(stalled).id
    assert new_id != lost_id
    # The later tasks ran on the resumed worker, under its new identity.
    assert Execution.objects.filter(key__startswith="after-").exclude(
        pid=keeper.pid).count() == 6
    assert stalled.proc.poll() is None and keeper.proc.poll() is None


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except FileNotFoundError:
        return []
