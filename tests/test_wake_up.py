"""An idle worker starts a new task on NOTIFY, long before its next poll."""

import statistics

import pytest
from django.db import connection

from django_tasks.models import TaskResult
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import listening, wait_until

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


def queue_scans():
    """Scans of the queue table so far (of an index, or of the whole table
    while it is small): claims and acknowledgements."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                       "WHERE relname = 'django_tasks_queuedmessage'")
        return cursor.fetchone()[0]


def queue_scans_once_workers_are_gone():
    """Queue table scans once every other session of the database has ended
    (a backend's statistics reach the server before it leaves pg_stat_activity)."""
    get_backend().close_listener()

    def other_sessions():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid() "
                           "AND backend_type = 'client backend'")
            return cursor.fetchone()[0]

    wait_until(lambda: other_sessions() == 0, message="the workers' sessions to end")
    return queue_scans()


def test_one_message_wakes_one_idle_child_not_all(start_worker, postgres_only):
    before = queue_scans_once_workers_are_gone()
    worker = start_worker("-P", "prefork", "-c", "4",
                          env={"TESTS_POLL_INTERVAL": str(POLL_INTERVAL)})
    tasks = 30
    for i in range(tasks):
        assert add.delay(i, i).get(timeout=30) == 2 * i
    assert worker.stop() == 0
    scans = queue_scans_once_workers_are_gone() - before
    # Per task, the child woken claims it (a claim scans four times: the
    # highest priority level, its due messages, the probe for a lower level,
    # then the update by id), claims again finding nothing (one scan), and
    # the message is acknowledged: 229 to 273 scans here (housekeeping and
    # timing add a few). Waking every idle child on each notification: over 700.
    assert tasks * 3 <= scans <= tasks * 12, scans


def test_a_bulk_enqueue_announces_how_many_messages(postgres_only):
    from django_tasks import group
    from django_tasks.queue.postgresql import _wakeups_announced

    with listening() as listener:
        add.delay(1, 1)
        group(add.s(i, i) for i in range(5)).apply_async()
        group(add.s(i, i) for i in range(250)).apply_async()  # through COPY
        payloads = [n.payload for n in listener.notifies(timeout=10, stop_after=3)]
    assert payloads == ["default", "5 default", "250 default"]
    assert _wakeups_announced(payloads) == 256
    assert _wakeups_announced(["release", "default"]) is None
    assert _wakeups_announced(["high priority"]) == 1
