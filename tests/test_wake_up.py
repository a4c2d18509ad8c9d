"""An idle worker starts a new task on NOTIFY, long before its next poll."""

import statistics

import pytest

from django_tasks.models import TaskResult
from tests.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)

POLL_INTERVAL = 10.0


def test_listen_notify_wakes_an_idle_worker_well_before_the_poll(start_worker, postgres_only):
    start_worker("-c", "1", env={"TESTS_POLL_INTERVAL": str(POLL_INTERVAL)})
    delays = []
    for i in range(10):
        result = add.delay(i, i)
        assert result.get(timeout=POLL_INTERVAL * 3) == 2 * i
        row = TaskResult.objects.get(task_id=result.id)
        delays.append((row.date_started - row.date_created).total_seconds())
    # Polling alone would take POLL_INTERVAL / 2 on average: far above this.
    assert statistics.median(delays) < POLL_INTERVAL / 20, delays

