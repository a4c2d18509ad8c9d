"""An idle worker starts a new task on NOTIFY, long before its next poll."""

import statistics

import pytest
from django.db import connection

from django_tasks.models import TaskResult
from tests.tasks import add
from tests.workers import wait_until

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



def listening_backends():
    """Sessions of this database whose last statement was the workers' LISTEN."""
    from django_tasks.queue.postgresql import QUEUE_CHANNEL

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND query = %s",
                       [f"LISTEN {QUEUE_CHANNEL}"])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_with_listen_off_the_worker_polls_and_never_listens(start_worker, postgres_only, pool):
    start_worker("-P", pool, "-c", "2", env={"TESTS_LISTEN_NOTIFY": "0"})
    results = [add.delay(i, i) for i in range(20)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(20)]
    assert listening_backends() == 0


def test_a_prefork_worker_listens_on_one_connection_for_all_its_children(
        start_worker, postgres_only):
    start_worker("-P", "prefork", "-c", "3")
    assert add.delay(1, 1).get(timeout=30) == 2
    wait_until(lambda: listening_backends() == 1, message="one LISTEN connection")
