"""The queue table's VACUUM (housekeeping's ``vacuum_queue``) runs when the
dead rows since the last one reach a fraction of the live ones, read from
PostgreSQL's statistics after real deletes: not on every turn whatever the
work, as its cost grows with the table."""

import time

import pytest
from django.db import connection

from django_tasks.models import QueuedMessage
from django_tasks.queue import get_backend
from django_tasks.queue.postgresql import VACUUM_DEAD_FLOOR, VACUUM_DEAD_FRACTION, vacuum_due
from tests.test_queue_scale import _fill

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = QueuedMessage._meta.db_table
# Live rows enough that the fraction, not the floor, decides.
LIVE = int(4 * VACUUM_DEAD_FLOOR / VACUUM_DEAD_FRACTION)
THRESHOLD = VACUUM_DEAD_FRACTION * LIVE


def _stat(column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM pg_stat_user_tables WHERE relid = %s::regclass",
                       [TABLE])
        return cursor.fetchone()[0]


def _counted(column, at_least):
    """Wait until the statistics' ``column`` reaches ``at_least``."""
    deadline = time.monotonic() + 30
    while _stat(column) < at_least:
        assert time.monotonic() < deadline, f"the statistics' {column} never counted it"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.05)  # the statistics are flushed asynchronously: poll them


def _delete_and_count(count):
    """Delete ``count`` messages and wait until the statistics count them dead."""
    dead_before = _stat("n_dead_tup")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} LIMIT %s)",
                       [count])
    _counted("n_dead_tup", dead_before + count)


@pytest.fixture
def queue_table(postgres_only):
    # Autovacuum, where it is on, must not clean up behind the test.
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} SET (autovacuum_enabled = false)")
    try:
        inserted = _stat("n_tup_ins")
        _fill(LIVE, 0, "2000-01-01T00:00:00Z")
        # The inserts counted before the VACUUM, which sets the live and dead
        # counts (counted after it, they would be counted twice).
        _counted("n_tup_ins", inserted + LIVE)
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {TABLE}")
        yield get_backend()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} RESET (autovacuum_enabled)")


def test_a_few_dead_rows_in_a_large_table_wait_for_more(queue_table):
    _delete_and_count(int(THRESHOLD) // 2)
    dead, live = queue_table.vacuum_stats()
    assert dead >= int(THRESHOLD) // 2 and live > LIVE // 2
    assert not vacuum_due((dead, live))
    vacuums = _stat("vacuum_count")
    assert queue_table.vacuum_queue() is False
    assert _stat("vacuum_count") == vacuums


def test_dead_rows_reaching_the_fraction_are_vacuumed(queue_table):
    _delete_and_count(int(THRESHOLD) + 1)
    assert vacuum_due(queue_table.vacuum_stats())
    vacuums = _stat("vacuum_count")
    assert queue_table.vacuum_queue() is True
    assert _stat("vacuum_count") == vacuums + 1
    # What it removed no longer counts: the next turn waits for more.
    assert queue_table.vacuum_stats()[0] < int(THRESHOLD) // 2
    assert queue_table.vacuum_queue() is False


def test_below_the_floor_a_small_table_waits_and_at_it_is_vacuumed():
    assert not vacuum_due((VACUUM_DEAD_FLOOR - 1, 0))
    assert vacuum_due((VACUUM_DEAD_FLOOR, 0))
    assert vacuum_due((VACUUM_DEAD_FLOOR, int(VACUUM_DEAD_FLOOR / VACUUM_DEAD_FRACTION)))


def test_without_statistics_it_vacuums_on_every_turn(queue_table):
    with connection.cursor() as cursor:
        # On every page: VACUUM then counts the table anew (from a few
        # pages it would keep its old count).
        cursor.execute(f"DELETE FROM {TABLE} WHERE id % 10 = 0")
        deleted = cursor.rowcount
        cursor.execute("SET track_counts = off")
    try:
        assert queue_table.vacuum_stats() is None
        assert queue_table.vacuum_queue() is True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET track_counts")
    # Not counted in the statistics then; seen in the catalog, which
    # VACUUM updates whatever track_counts says.
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [TABLE])
        assert deleted > 0 and cursor.fetchone()[0] == LIVE - deleted
