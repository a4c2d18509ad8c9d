"""SQLite: claims in an immediate transaction, waking by polling.

SQLite has neither SKIP LOCKED nor NOTIFY. ``BEGIN IMMEDIATE`` takes the
database's single write lock before reading, so two workers can never pick
the same rows, and ``busy_timeout`` makes the second one wait its turn.
Every SQLite-specific statement of the app is in this module:
``SQLiteConnector`` (Django's cursor, polling, BEGIN IMMEDIATE) and
``SQLiteQueue``, the domain operations (base.py) with statements of their own.
"""

import datetime
import json
import uuid
from contextlib import contextmanager

from django.db import IntegrityError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..models import QueuedMessage, RateBucket, UniqueLock, Worker
from ..rate_limits import take_tokens
from .base import CLAIM_COLUMNS, REPEATED_TASK_ID_HINT, BaseQueue, sort_claimed
from .connector import Connector

TABLE = QueuedMessage._meta.db_table
WORKERS = Worker._meta.db_table
BUCKETS = RateBucket._meta.db_table

RATE_BUCKET_SQL = f"SELECT tat, horizon FROM {BUCKETS} WHERE task_name = %s"
SAVE_RATE_BUCKET_SQL = f"""
INSERT INTO {BUCKETS} (task_name, tat, horizon) VALUES (%s, %s, %s)
ON CONFLICT (task_name) DO UPDATE SET tat = excluded.tat, horizon = excluded.horizon
"""

CLAIM_SQL = f"""
UPDATE {TABLE}
SET claimed_by = %s, claimed_pid = %s, claimed_at = %s, deliveries = deliveries + 1,
    started_at = CASE WHEN picked.position <= %s THEN %s END
FROM (
    SELECT id, row_number() OVER (ORDER BY priority DESC, available_at, id) AS position
    FROM {TABLE}
    WHERE claimed_by IS NULL AND queue IN ({{placeholders}}) AND available_at <= %s
      AND EXISTS (SELECT 1 FROM {WORKERS} WHERE id = %s AND stopped_at IS NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s
) AS picked
WHERE {TABLE}.id = picked.id
RETURNING {{returning}}
"""
# Text columns come back as bytes, decoded here: sqlite3 fails the whole
# fetch on one value that is not UTF-8, after the claim has committed.
TEXT_COLUMNS = ("task_id", "task_name", "queue", "content_type", "body", "headers")
CLAIM_SQL = CLAIM_SQL.replace("{returning}", ", ".join(
    f"CAST({TABLE}.{column} AS BLOB)" if column in TEXT_COLUMNS else f"{TABLE}.{column}"
    for column in (c.strip() for c in CLAIM_COLUMNS.split(","))))


LOCKS = UniqueLock._meta.db_table

# A unique send (unique.py). The INSERT takes the database's write lock
# (even when it does nothing), held to the end of hold_unique_key's
# transaction: nobody changes the row between it and the read that follows.
TRY_UNIQUE_KEY_SQL = f"""
INSERT INTO {LOCKS} (task_name, key, task_id, unique_for, created_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (task_name, key) DO NOTHING
RETURNING task_id
"""


def _datetime(value):
    """SQLite keeps UTC datetimes without an offset; give them theirs back."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"not a datetime: {value!r:.60}")
        value = parsed
    if isinstance(value, datetime.datetime) and timezone.is_naive(value):
        return value.replace(tzinfo=datetime.UTC)
    return value


def _task_id(value):
    """A task id as text, whatever bytes a damaged row holds: the result
    stored for it must name it."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


class SQLiteConnector(Connector):
    """Django's cursor, polling, and the database's write lock taken first."""

    def immediately(self, work):
        """``work(cursor)`` holding the database's write lock from its first
        read (BEGIN IMMEDIATE), so no other writer comes in between."""
        connection = self.connection
        connection.ensure_connection()
        if connection.in_atomic_block:
            # The caller's transaction already makes this atomic (tests, helpers).
            with connection.cursor() as cursor:
                return work(cursor)
        with connection.cursor() as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                done = work(cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
        return done

    @contextmanager
    def write_locked(self):
        """A transaction holding the database's write lock from its start
        (BEGIN IMMEDIATE); within a caller's transaction, that one."""
        connection = self.connection
        connection.ensure_connection()
        if connection.in_atomic_block:
            yield
            return
        with connection.cursor() as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")


class SQLiteQueue(BaseQueue):
    """The domain operations SQLite runs its own statements for."""

    connector_class = SQLiteConnector

    def enqueue(self, messages):
        if not messages:
            return
        try:
            self._insert(messages)
        except IntegrityError as exc:
            exc.add_note(REPEATED_TASK_ID_HINT)
            raise
        self.remember_uncommitted([m.task_id for m in messages])

    def _insert(self, messages):
        QueuedMessage.objects.using(self.alias).bulk_create([
            QueuedMessage(task_id=m.task_id, task_name=m.task_name, queue=m.queue,
                          priority=m.priority, available_at=m.available_at,
                          expires=m.expires, content_type=m.content_type, body=m.body,
                          headers=m.headers, created_at=m.created_at)
            for m in messages])

    def try_unique_key(self, message, key, unique_for, now):
        if self.connector.execute(TRY_UNIQUE_KEY_SQL, [
                message.task_name, key, message.task_id, unique_for,
                self.connection.ops.adapt_datetimefield_value(now)], fetch=True):
            return True, None
        return False, self.unique_holder(message.task_name, key)

    def claim(self, worker_id, queues, limit, start=0, pid=None):
        ops = self.connection.ops
        now = ops.adapt_datetimefield_value(timezone.now())
        sql = CLAIM_SQL.format(placeholders=", ".join(["%s"] * len(queues)))
        worker = uuid.UUID(str(worker_id)).hex
        params = [worker, pid, now, start, now, *queues, now, worker, limit]

        def claim(cursor):
            cursor.execute(sql, params)
            return cursor.fetchall()

        return self._claimed(self.connector.immediately(claim))

    def take_rate_tokens(self, task_name, count, step, tolerance):
        # One host's clock (SQLite is one machine's file): Python's, read
        # under the write lock, so that starts are admitted in clock order.
        adapt = self.connection.ops.adapt_datetimefield_value

        def take(cursor):
            now = timezone.now()
            cursor.execute(RATE_BUCKET_SQL, [task_name])
            row = cursor.fetchone()
            tat, horizon = (_datetime(row[0]), _datetime(row[1])) if row else (None, None)
            admitted, first, new_tat, new_horizon = take_tokens(
                tat, horizon, now, count, step, tolerance)
            cursor.execute(SAVE_RATE_BUCKET_SQL, [task_name, adapt(new_tat), adapt(new_horizon)])
            return admitted, first, now

        return self.connector.immediately(take)

    def slot_transaction(self, task_name, key):
        """The database's write lock, taken before reading (as the claim):
        one writer at a time on the only host SQLite serves."""
        return self.connector.write_locked()

    def _claimed(self, rows):
        return sort_claimed([self.message_from_row(r, _datetime, _task_id, _json, _text)
                             for r in rows])
