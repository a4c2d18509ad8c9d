"""PostgreSQL: claims with FOR UPDATE SKIP LOCKED, wake-ups with LISTEN/NOTIFY.

Every PostgreSQL-specific statement of the app is in this module: first the
statements, then ``PostgreSQLConnector`` (psycopg's cursor, the libpq
shortcut of libpq.py, LISTEN/NOTIFY), then ``PostgreSQLQueue``, the domain
operations (base.py) that run statements of their own, through the
connector.
"""

import functools
import hashlib
import logging
import struct
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from operator import attrgetter

import psycopg
from django.db import DatabaseError, IntegrityError, connections, transaction
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format

from ..conf import settings
from ..messages import READ_ERRORS, Unreadable, is_task_id
from ..models import QueuedMessage, RateBucket, TaskResult, UniqueLock, Worker
from ..outcomes import RESULT_COLUMNS, RESULT_UPDATE_FIELDS
from ..serialization import compact_json
from . import libpq
from .base import (
    CLAIM_COLUMNS,
    PARKED,
    REPEATED_TASK_ID_HINT,
    BaseQueue,
    BatchWriter,
    UniqueHolder,
    sort_claimed,
)
from .connector import NOT_RUN, Connector

logger = logging.getLogger("django_tasks.queue")

QUEUE_CHANNEL = "django_tasks_queue"
RESULT_CHANNEL = "django_tasks_result"
# What a queue notification says: the queue's name for one new message,
# "<count> <queue>" for several, RELEASE for messages handed back (any
# number). An idle worker wakes as many of its children as it says.
RELEASE = "release"
# NOTIFY payloads must stay under 8000 bytes: comma-separated task ids, up
# to this many bytes of them (200 UUIDs; an id is at most 255 characters,
# 1,020 bytes).
NOTIFY_BYTES = 7400

TABLE = QueuedMessage._meta.db_table

ENQUEUE_SQL = f"""
WITH inserted AS (
    INSERT INTO {TABLE} (task_id, task_name, queue, priority, available_at, expires,
                         content_type, body, headers, deliveries, created_at)
    SELECT * FROM unnest(%b::varchar[], %b::varchar[], %b::varchar[], %b::smallint[],
                         %b::timestamptz[], %b::timestamptz[], %b::varchar[],
                         %b::text[], %b::jsonb[], %b::int[], %b::timestamptz[])
    RETURNING queue
)
SELECT pg_notify('{QUEUE_CHANNEL}',
                 CASE count(*) WHEN 1 THEN queue ELSE count(*) || ' ' || queue END)
FROM inserted GROUP BY queue
"""

# Large batches (a big group) are streamed with COPY, which costs the server
# much less per row than the INSERT above. The NOTIFY then follows in the same
# transaction. In the binary format the server reads timestamps and numbers
# as they are stored, rather than parsing their text (see CopyRows).
ENQUEUE_COPY_SQL = f"""
COPY {TABLE} (task_id, task_name, queue, priority, available_at, expires, content_type,
              body, headers, deliveries, created_at) FROM STDIN (FORMAT binary)
"""
COPY_FROM = 200  # messages; below, COPY's extra round trips cost more than it saves
# Fewer messages go by COPY too when they are this large: the statement
# above binds all their bodies as one array, one value, and PostgreSQL
# refuses a value (and a message) over 1 GB. COPY sends row by row.
COPY_FROM_CHARS = 64 * 1024 * 1024

# One message (every plain .delay()): scalar parameters cost a fraction of
# the array binding above.
INSERT_ONE_SQL = f"""
INSERT INTO {TABLE} (task_id, task_name, queue, priority, available_at, expires,
                     content_type, body, headers, deliveries, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, 0, %s)
"""

# Outside a transaction, a .delay() sends INSERT_ONE_SQL and then WAKE_SQL,
# each its own transaction, in one round trip (libpq.run_then). Until its
# transaction ends, a NOTIFY holds a lock that every notifying commit of the
# server waits for, WAL flush included: in the INSERT's transaction it kept
# concurrent producers from sharing flushes, so they committed one after
# another; after the commit it holds up nobody's flush. The wake-up's
# transaction has nothing to keep: it does not wait for the flush.
WAKE_SQL = (f"SELECT pg_notify('{QUEUE_CHANNEL}', %s), "
            "set_config('synchronous_commit', 'off', true)")

# The same, committing without waiting for the WAL flush (SYNCHRONOUS_ENQUEUE
# off). Only ever run outside a transaction block, where the statement is its
# own transaction: set_config(…, true) then reaches this commit and nothing
# else, never a transaction of the caller's.
RELAXED_CTE = "relaxed AS (SELECT set_config('synchronous_commit', 'off', true))"


# The pieces a statement that may relax its commit is composed of: each is
# empty when ``relaxed`` is false. The CTE is joined in (FROM …, relaxed) or
# filtered on, so that the server evaluates it.
def _relaxed_first(relaxed):
    """The CTE, first of a statement's own WITH list."""
    return f"{RELAXED_CTE},\n" if relaxed else ""


def _relaxed_with(relaxed):
    """A WITH clause of the CTE alone, before a statement that has none."""
    return f"WITH {RELAXED_CTE}\n" if relaxed else ""


def _relaxed_from(relaxed):
    """The CTE joined to a FROM list (one row: it multiplies nothing)."""
    return ", relaxed" if relaxed else ""


def _relaxed_where(relaxed):
    """A WHERE clause on the CTE, for a statement with no FROM list to join it to."""
    return "WHERE EXISTS (SELECT FROM relaxed)\n" if relaxed else ""


def _relaxed_and(relaxed):
    """The CTE as one more condition of a WHERE clause."""
    return " AND EXISTS (SELECT FROM relaxed)" if relaxed else ""


# One message inserted and announced in one statement.
def _enqueue_one_sql(relaxed):
    return f"""
WITH {_relaxed_first(relaxed)}inserted AS ({INSERT_ONE_SQL} RETURNING queue)
SELECT pg_notify('{QUEUE_CHANNEL}', queue) FROM inserted{_relaxed_from(relaxed)}
"""


ENQUEUE_ONE_SQL = _enqueue_one_sql(relaxed=False)
ENQUEUE_ONE_ASYNC_COMMIT_SQL = _enqueue_one_sql(relaxed=True)

LOCKS = UniqueLock._meta.db_table

# A unique send (unique.py): take the key, or read who holds it, in one
# statement. DO NOTHING never raises, so the caller's transaction is never
# aborted; a conflicting row another transaction is still writing makes it
# wait for that one's end. The read then has the statement's snapshot, taken
# before that commit: it sees no row, or the row before it, and the caller
# reads again (hold_unique_key), never taking a key on an old view.
TRY_UNIQUE_KEY_SQL = f"""
WITH taken AS (
    INSERT INTO {LOCKS} (task_name, key, task_id, unique_for, created_at)
    VALUES (%(task)s, %(key)s, %(task_id)s, %(unique_for)s, %(now)s)
    ON CONFLICT (task_name, key) DO NOTHING
    RETURNING task_id
)
SELECT true, task_id, NULL::timestamptz, NULL::timestamptz, true FROM taken
UNION ALL
SELECT false, l.task_id, l.created_at, l.held_until,
       EXISTS (SELECT FROM {TABLE} m WHERE m.task_id = l.task_id)
FROM {LOCKS} l
WHERE l.task_name = %(task)s AND l.key = %(key)s AND NOT EXISTS (SELECT FROM taken)
"""

CLAIM_RETURNING = ", ".join("m." + c.strip() for c in CLAIM_COLUMNS.split(","))

WORKERS = Worker._meta.db_table
# A claim takes nothing for a worker declared lost (its row stopped): what
# it claimed would count as orphaned at once, and run twice. Uncorrelated,
# so the server checks it once per claim, before reading the queue.
LIVE_CLAIMANT = (f"EXISTS (SELECT FROM {WORKERS} "
                 "WHERE id = %(worker)s::uuid AND stopped_at IS NULL)")


def _due_in_run_order(queue, limit, columns):
    """A query of the first ``limit`` due, unclaimed messages of ``queue``
    (SQL expressions), in run order, locked (SKIP LOCKED).

    Run order is priority, then ``available_at``, then id; but the claim
    index cannot be read in that order skipping the messages not due yet:
    a million future messages of a higher priority than the due ones would
    be stepped over one by one, on every claim. So the index is read one
    priority at a time, highest first: each level's due messages are a
    range of the index, and the next level down is one probe (a loose index
    scan). The Limit over the nested loop stops at the level that fills it:
    no sort, so the levels below are never visited.
    """
    return f"""
    WITH RECURSIVE levels(priority) AS (
        (SELECT priority FROM {TABLE} WHERE claimed_by IS NULL AND queue = {queue}
           AND {LIVE_CLAIMANT}
         ORDER BY priority DESC LIMIT 1)
        UNION ALL
        SELECT (SELECT priority FROM {TABLE}
                WHERE claimed_by IS NULL AND queue = {queue} AND priority < levels.priority
                ORDER BY priority DESC LIMIT 1)
        FROM levels WHERE levels.priority IS NOT NULL
    )
    SELECT {columns} FROM levels CROSS JOIN LATERAL (
        SELECT id, priority, available_at FROM {TABLE}
        WHERE claimed_by IS NULL AND queue = {queue} AND priority = levels.priority
          AND available_at <= statement_timestamp()
        ORDER BY available_at, id
        LIMIT {limit}
        FOR UPDATE SKIP LOCKED
    ) AS level
    WHERE levels.priority IS NOT NULL
    LIMIT {limit}"""


# The claims update the picked messages by id in an array (= ANY(ARRAY(...))),
# not joined to them: joined, a claim of a hundred messages or more was
# planned as a hash join over a scan of the whole queue table (5 ms a claim
# of 128 with 20,000 waiting, against 1.5 ms through the primary key).

# Each queue's due messages in run order (_due_in_run_order), then the
# first of them all.
def _claim_sql(relaxed):
    return f"""
WITH {_relaxed_first(relaxed)}due AS (
    SELECT d.id, d.priority, d.available_at
    FROM (SELECT unnest(%(queues)s::varchar[]) LIMIT %(queue_count)s) AS q(name)
    CROSS JOIN LATERAL ({_due_in_run_order("q.name", "%(limit)s",
                                          "level.id, level.priority, level.available_at")}
    ) AS d
), picked AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, available_at, id) AS position
    FROM due ORDER BY priority DESC, available_at, id LIMIT %(limit)s
)
UPDATE {TABLE} AS m
SET claimed_by = %(worker)s::uuid, claimed_pid = %(pid)s, claimed_at = now(),
    deliveries = m.deliveries + 1,
    started_at = CASE WHEN m.id = ANY(ARRAY(SELECT id FROM picked WHERE position <= %(start)s))
                 THEN now() END
WHERE m.id = ANY(ARRAY(SELECT id FROM picked)){_relaxed_and(relaxed)}
RETURNING {CLAIM_RETURNING}
"""

# The common case, one queue and every claimed message marked started: the
# same claim without the per-queue merge and the numbering.
def _claim_one_queue_sql(relaxed):
    return f"""{_relaxed_with(relaxed)}
UPDATE {TABLE} AS m
SET claimed_by = %(worker)s::uuid, claimed_pid = %(pid)s, claimed_at = now(),
    deliveries = m.deliveries + 1, started_at = now()
WHERE m.id = ANY(ARRAY({_due_in_run_order("%(queue)s", "%(limit)s", "level.id")}
)){_relaxed_and(relaxed)}
RETURNING {CLAIM_RETURNING}
"""


CLAIM_SQL = _claim_sql(relaxed=False)
CLAIM_ONE_QUEUE_SQL = _claim_one_queue_sql(relaxed=False)
# The claims again, committing without waiting for the WAL flush
# (SYNCHRONOUS_ACKS off); outside a transaction block only, as
# ENQUEUE_ONE_ASYNC_COMMIT_SQL. Never a session-level SET, not even on the
# worker's own connections: behind PgBouncer in transaction mode a session
# setting would reach whichever client gets that server connection next.
CLAIM_ASYNC_COMMIT_SQL = _claim_sql(relaxed=True)
CLAIM_ONE_QUEUE_ASYNC_COMMIT_SQL = _claim_one_queue_sql(relaxed=True)


@functools.cache
def _written_in(sql, limit, queue_count=1):
    """A claim with its limit and its number of queues written in, not
    parameters.

    Planning a claim cost more than running it. With these as parameters
    the server planned every claim anew (a plan for an unknown limit, or
    array of queues, looks costly: it assumes a tenth of the table, a
    hundred queues); written in, a prepared claim is planned once. A worker
    claims for the same queues, with a few limits (its free slots plus its
    prefetch): a few prepared statements.
    """
    return (sql.replace("%(limit)s", str(int(limit)))
            .replace("%(queue_count)s", str(int(queue_count))))


NOTIFY_SQL = "SELECT pg_notify(%s, %s)"
VACUUM_QUEUE_SQL = f"VACUUM {TABLE}"
# The queue table's dead and live rows as the cumulative statistics count
# them (flushed by each backend within seconds); NULLs when track_counts is
# off, as the counters then stand still.
VACUUM_STATS_SQL = ("SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables "
                    "WHERE relid = %s::regclass AND current_setting('track_counts')::boolean")
# The queue is vacuumed when its dead rows reach this fraction of its live
# ones (autovacuum's scale factor, for the queue), and at least this many.
VACUUM_DEAD_FRACTION = 0.05
VACUUM_DEAD_FLOOR = 1000
# The admin's paginator: what ANALYZE (or autovacuum) last counted.
ESTIMATED_ROWS_SQL = "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass"

# Concurrency slots (worker/concurrency_gate.py; the wakers are the triggers
# of migration 0012, which take the same lock shared). The locks are taken
# by a statement of their own, before the admission: a statement sees what
# committed before it began, and the admission must see what the wakers it
# waited for did.
LOCK_SPACE = 1685348195
LOCK_SLOTS_SQL = (f"SELECT pg_advisory_xact_lock({LOCK_SPACE}, "
                  "hashtext(%s::text || ' ' || %s::text))")
# A gate's keys, locked together without waiting: the gate never waits for
# a lock while it holds another, so it cannot deadlock with a waker (which
# holds one key's lock shared while it waits for the next). Returns the
# keys some other transaction holds: the gate takes those one at a time.
TRY_LOCK_SLOTS_SQL = f"""
SELECT task, key FROM unnest(%s::text[], %s::text[]) AS k(task, key)
WHERE NOT pg_try_advisory_xact_lock({LOCK_SPACE}, hashtext(task || ' ' || key))
"""
# The claimed messages of the locked keys, in run order within each key and
# each with its limit: the first ones into their key's free slots, the rest
# parked (unclaimed, their delivery not counted, available_at PARKED)
# until a slot frees. A candidate that already holds its key's slot (the
# gate run again after its first run's admission committed) keeps it: it
# comes first, and only the slots of other rows count against it.
TAKE_SLOTS_SQL = f"""
WITH claimed AS (
    SELECT c.id, c.task, c.key, c.slots, c.position,
           coalesce(m.holds_slot AND m.task_name = c.task
                    AND m.concurrency_key = c.key, false) AS held
    FROM unnest(%(ids)s::bigint[], %(tasks)s::text[], %(keys)s::text[], %(limits)s::int[])
         WITH ORDINALITY AS c(id, task, key, slots, position)
    JOIN {TABLE} AS m ON m.id = c.id AND m.claimed_by = %(worker)s::uuid
), candidates AS (
    SELECT id, task, key, slots, held,
           row_number() OVER (PARTITION BY task, key ORDER BY held DESC, position) AS position
    FROM claimed
), holding AS (
    SELECT k.task, k.key,
           (SELECT count(*) FROM {TABLE} WHERE holds_slot AND task_name = k.task
              AND concurrency_key = k.key
              AND id NOT IN (SELECT id FROM candidates WHERE held)) AS taken
    FROM (SELECT DISTINCT task, key FROM candidates) AS k
), decided AS (
    SELECT c.id, c.key, c.held OR c.position <= c.slots - h.taken AS admitted
    FROM candidates AS c JOIN holding AS h ON h.task = c.task AND h.key = c.key
)
UPDATE {TABLE} AS m
SET concurrency_key = d.key, holds_slot = d.admitted,
    claimed_by = CASE WHEN d.admitted THEN m.claimed_by END,
    claimed_pid = CASE WHEN d.admitted THEN m.claimed_pid END,
    claimed_at = CASE WHEN d.admitted THEN m.claimed_at END,
    started_at = CASE WHEN d.admitted THEN m.started_at END,
    deliveries = CASE WHEN d.admitted THEN m.deliveries ELSE m.deliveries - 1 END,
    available_at = CASE WHEN d.admitted THEN m.available_at ELSE %(parked)s END
FROM decided AS d
WHERE m.id = d.id AND m.claimed_by = %(worker)s::uuid
RETURNING m.id, d.admitted
"""

# The queue base's ORM reads of whole messages, as statements whose rows
# are read tolerantly (see _tolerant).
CLAIMED_BY_SQL = (f"SELECT {CLAIM_COLUMNS} FROM {TABLE} "
                  "WHERE claimed_by = %s::uuid AND claimed_pid = %s ORDER BY id")
# The claimant last: recovery hands each message back from its own.
ORPHANED_SQL = f"""
SELECT {CLAIM_COLUMNS}, claimed_by FROM {TABLE}
WHERE claimed_by IS NOT NULL AND claimed_by NOT IN (
    SELECT id FROM {WORKERS} WHERE stopped_at IS NULL AND last_heartbeat >= %s)
ORDER BY id LIMIT %s
"""
EXPIRED_WAITING_SQL = (f"SELECT {CLAIM_COLUMNS} FROM {TABLE} "
                       "WHERE claimed_by IS NULL AND expires < %s ORDER BY expires LIMIT %s")

BUCKETS = RateBucket._meta.db_table
# rate_limits.take_tokens in SQL, on the database's clock: the bucket's row
# locked (FOR UPDATE) while it is read, so that workers take their starts
# one after the other; the UPDATE returns what the locked read computed.
# %(step)s and %(tolerance)s are seconds.
def _take_rate_tokens_sql(relaxed):
    return f"""{_relaxed_with(relaxed)}
UPDATE {BUCKETS} AS b
SET tat = t.new_tat,
    horizon = t.first_free + make_interval(secs => (%(count)s - t.admitted) * %(step)s)
FROM (
    SELECT s.task_name, s.admitted, s.now, s.new_tat, greatest(s.line, s.new_tat) AS first_free
    FROM (
        SELECT l.task_name, l.now, l.admitted,
               l.start + make_interval(secs => l.admitted * %(step)s) AS new_tat,
               CASE WHEN l.tat >= l.now - make_interval(secs => %(tolerance)s)
                    THEN l.horizon ELSE l.now END AS line
        FROM (
            SELECT k.*, least(%(count)s, greatest(0, floor(
                       (extract(epoch FROM k.now - k.start) + %(tolerance)s) / %(step)s) + 1
                   ))::int AS admitted
            FROM (
                SELECT task_name, tat, horizon, statement_timestamp() AS now,
                       greatest(tat, statement_timestamp()) AS start
                FROM {BUCKETS} WHERE task_name = %(task)s FOR UPDATE
            ) AS k
        ) AS l
    ) AS s
) AS t{_relaxed_from(relaxed)}
WHERE b.task_name = t.task_name
RETURNING t.admitted, t.first_free, t.now
"""


TAKE_RATE_TOKENS_SQL = _take_rate_tokens_sql(relaxed=False)
# The same, committing without waiting for the WAL flush: a bucket a server
# crash takes back to an earlier state only lets a few more starts through
# once. Outside a transaction block only (see CLAIM_ASYNC_COMMIT_SQL).
TAKE_RATE_TOKENS_ASYNC_COMMIT_SQL = _take_rate_tokens_sql(relaxed=True)
# A task's first limited start: its bucket, as if long unused.
NEW_RATE_BUCKET_SQL = (f"INSERT INTO {BUCKETS} (task_name, tat, horizon) "
                       "VALUES (%s, statement_timestamp(), statement_timestamp()) "
                       "ON CONFLICT (task_name) DO NOTHING")
# A hand-back with each message's due time (Consumer.hand_back): the
# claimant's own messages only.
HAND_BACK_AT_SQL = f"""
UPDATE {TABLE} AS m
SET claimed_by = NULL, claimed_pid = NULL, claimed_at = NULL, started_at = NULL,
    acked_at = NULL, deliveries = m.deliveries - %s, available_at = d.at
FROM unnest(%s::bigint[], %s::timestamptz[]) AS d(id, at)
WHERE m.id = d.id AND m.claimed_by = %s::uuid AND m.acked_at IS NULL
"""

RESULTS = TaskResult._meta.db_table
# The casts of RESULT_COLUMNS' parameters, from the model's field types.
_CASTS = {"CharField": "varchar", "TextField": "text", "IntegerField": "int",
          "DateTimeField": "timestamptz"}
RESULT_TYPES = tuple(_CASTS[TaskResult._meta.get_field(column).get_internal_type()]
                     for column in RESULT_COLUMNS)
# Results upserted and messages deleted in one statement (one round trip).
# Relaxed, an uncorrelated EXISTS is a filter the server checks once before
# any row, so the setting is made even when no result is to be announced.
def _store_and_ack_sql(relaxed):
    return f"""
WITH {_relaxed_first(relaxed)}stored AS (
    INSERT INTO {RESULTS} ({', '.join(RESULT_COLUMNS)})
    SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in RESULT_TYPES)})
    ON CONFLICT (task_id) DO UPDATE SET
    {', '.join(f'{c} = EXCLUDED.{c}' for c in RESULT_UPDATE_FIELDS)}
    RETURNING 1
), acknowledged AS (
    DELETE FROM {TABLE} WHERE id = ANY(%b::bigint[]) RETURNING 1
)
SELECT pg_notify('{RESULT_CHANNEL}', payload) FROM unnest(%b::text[]) AS payload
{_relaxed_where(relaxed)}"""
# The same for one outcome (an idle worker's lone result, every result of a
# prefetch-1 worker): scalar parameters, which libpq can take as text.
def _store_and_ack_one_sql(relaxed):
    return f"""
WITH {_relaxed_first(relaxed)}stored AS (
    INSERT INTO {RESULTS} ({', '.join(RESULT_COLUMNS)})
    VALUES ({', '.join(f'%s::{t}' for t in RESULT_TYPES)})
    ON CONFLICT (task_id) DO UPDATE SET
    {', '.join(f'{c} = EXCLUDED.{c}' for c in RESULT_UPDATE_FIELDS)}
    RETURNING 1
), acknowledged AS (
    DELETE FROM {TABLE} WHERE id = %s::bigint RETURNING 1
)
SELECT pg_notify('{RESULT_CHANNEL}', %s::text){" FROM relaxed" if relaxed else ""}
"""


STORE_AND_ACK_SQL = _store_and_ack_sql(relaxed=False)
STORE_AND_ACK_ONE_SQL = _store_and_ack_one_sql(relaxed=False)
# Both again, committing without waiting for the WAL flush, as the claims.
STORE_AND_ACK_ASYNC_COMMIT_SQL = _store_and_ack_sql(relaxed=True)
STORE_AND_ACK_ONE_ASYNC_COMMIT_SQL = _store_and_ack_one_sql(relaxed=True)
# Opens a transaction finish() stores in, for the same reason.
RELAX_TRANSACTION_SQL = "SET LOCAL synchronous_commit TO off"

# AsyncResult's look-ups by task id (get() runs one on every wake-up): the
# ORM compiles each query anew, which costs the client many times what
# running a prepared statement does.
MESSAGE_FIELDS = tuple(f.attname for f in QueuedMessage._meta.concrete_fields)
RESULT_BY_TASK_ID_SQL = (f"SELECT {', '.join(RESULT_COLUMNS)} FROM {RESULTS} "
                         "WHERE task_id = %s::varchar")
MESSAGE_BY_TASK_ID_SQL = (f"SELECT {', '.join(MESSAGE_FIELDS)} FROM {TABLE} "
                          "WHERE task_id = %s::varchar")


# The statements every task runs (enqueue, claim, store): prepared once per
# connection, the server plans them once instead of on every call (a claim's
# planning cost as much as running it). The claims are prepared by claim(),
# each with its limit written in (see _written_in).
PREPARED = frozenset((ENQUEUE_ONE_SQL, ENQUEUE_ONE_ASYNC_COMMIT_SQL, STORE_AND_ACK_SQL,
                      STORE_AND_ACK_ASYNC_COMMIT_SQL, RESULT_BY_TASK_ID_SQL,
                      MESSAGE_BY_TASK_ID_SQL))
# A .delay() outside a transaction, and a lone outcome stored outside one,
# run their statements through libpq directly (see libpq.py), prepared under
# these names.
DIRECT = {
    sql: (name, libpq.numbered(sql).encode())
    for sql, name in ((INSERT_ONE_SQL, b"django_tasks_insert_one"),
                      (WAKE_SQL, b"django_tasks_wake"),
                      (ENQUEUE_ONE_ASYNC_COMMIT_SQL, b"django_tasks_enqueue_one_relaxed"),
                      (STORE_AND_ACK_ONE_SQL, b"django_tasks_store_one"),
                      (STORE_AND_ACK_ONE_ASYNC_COMMIT_SQL, b"django_tasks_store_one_relaxed"))
}
INSERT_ONE, WAKE = DIRECT[INSERT_ONE_SQL], DIRECT[WAKE_SQL]
# A prepare_threshold no statement reaches by being run: only those executed
# with prepare=True are prepared.
ONLY_WHEN_ASKED = 2**31


def _notify_payloads(task_ids):
    """The result notifications naming ``task_ids``: each id whole in one of
    them (a waiter looks for its id in a payload), each payload under
    NOTIFY_BYTES. Ids are any text, commas included: a waiter that finds
    its id inside another's only looks at its result once more."""
    payloads, ids, size = [], [], 0
    for task_id in task_ids:
        task_id = str(task_id)
        length = len(task_id) if task_id.isascii() else len(task_id.encode())
        if ids and size + length > NOTIFY_BYTES:
            payloads.append(",".join(ids))
            ids, size = [], 0
        ids.append(task_id)
        size += length + 1
    if ids:
        payloads.append(",".join(ids))
    return payloads


def _announcement(queue, count):
    """A queue notification's payload (see RELEASE)."""
    return queue if count == 1 else f"{count} {queue}"


# More than any worker has children: a larger count in a payload is not
# ours (NOTIFY needs no privilege), and wakes everyone.
MAX_ANNOUNCED = 100_000


def _wakeups_announced(payloads):
    """How many children the queue notifications ``payloads`` call for (None: all).

    Anyone who can log in may NOTIFY this channel: a payload that is not one
    of ours, of any length or shape, wakes every idle child, never more harm.
    """
    total = 0
    for payload in payloads:
        if payload == RELEASE:
            return None
        count, separator, _ = payload.partition(" ")
        if not (separator and count.isascii() and count.isdigit()):
            total += 1  # one message, on the queue the payload names
            continue
        # A name that merely looks like a count wakes more children than
        # needed, never fewer than one.
        if len(count) > len(str(MAX_ANNOUNCED)):
            return None
        total += int(count)
        if total > MAX_ANNOUNCED:
            return None
    return total


def _timestamp_text(value):
    return value.astimezone(UTC).isoformat()


def _utf8(value):
    return None if value is None else str(value).encode()


def _timestamp_utf8(value):
    return None if value is None else _timestamp_text(value).encode()


def _as_text(m, headers):
    """The single insert's parameters as libpq text (``None`` is NULL)."""
    created_at = _timestamp_utf8(m.created_at)
    # A message sent for now has one instant: formatted once.
    available_at = created_at if m.available_at is m.created_at \
        else _timestamp_utf8(m.available_at)
    return (_utf8(m.task_id), _utf8(m.task_name), _utf8(m.queue),
            None if m.priority is None else b"%d" % m.priority, available_at,
            _timestamp_utf8(m.expires), _utf8(m.content_type), _utf8(m.body),
            headers.encode(), created_at)


# COPY's binary format: the signature, no flags, no header extension; each
# row is its field count, then each field's length (-1: NULL) and value.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
_ROW_START = struct.pack(">h", 11)  # the columns of ENQUEUE_COPY_SQL
_length = struct.Struct(">i").pack
_NULL = _length(-1)
_DELIVERIES = _length(4) + _length(0)
_TIMESTAMP = struct.Struct(">iq")  # length, microseconds since PostgreSQL's epoch
_SMALLINT = struct.Struct(">ih")
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_JSONB_VERSION = b"\x01"


def _text_field(value, jsonb=False):
    """``value`` (a str) as a field of a binary COPY row: what psycopg's text
    dumper would send, refused as it refuses it."""
    if "\x00" in value:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    data = value.encode()
    if jsonb:
        return _length(len(data) + 1) + _JSONB_VERSION + data
    return _length(len(data)) + data


def _timestamp_field(value):
    if value is None:
        return _NULL
    # As _timestamp_text reads it: a naive datetime is in local time.
    return _TIMESTAMP.pack(8, (value.astimezone(UTC) - _POSTGRES_EPOCH) // _MICROSECOND)


def _smallint_field(value):
    # As the server reads psycopg's text of it: an int in range, nothing else.
    if type(value) is not int:
        raise psycopg.errors.InvalidTextRepresentation(
            f'invalid input syntax for type smallint: "{value}"')
    try:
        return _SMALLINT.pack(2, value)
    except struct.error:
        raise psycopg.errors.NumericValueOutOfRange(
            f"value {value} is out of range for type smallint") from None


_task_ids = attrgetter("task_id")
_bodies = attrgetter("body")
_queues = attrgetter("queue")
_headers = attrgetter("headers")
_priorities = attrgetter("priority")
_shapes = attrgetter("task_name", "queue", "priority", "available_at", "expires",
                     "content_type", "created_at")


def _alike_shapes(messages):
    shapes = list(map(_shapes, messages))
    return shapes.count(shapes[0]) == len(shapes)


class CopyRows:
    """Messages as rows of ENQUEUE_COPY_SQL's binary COPY, the bytes of what
    they share made once.

    A batch's messages share most of their fields: a group's members differ
    in their id and arguments only (MessageBuilder.repeat makes them share
    the rest, their headers dict included). Each row is spliced from the
    bytes of its id and body and those of its task's fields, made for the
    first message with them; psycopg's row formatting and the server's
    parsing of text timestamps were a large group's main costs. A batch
    whose messages share all but their ids (a group's members without
    arguments) is made with whole-list operations, not Python code per row.
    """

    def __init__(self):
        self._fields = {}  # (task name, queue, ...): their fields' bytes
        self._last_headers = self._last_created_at = self._last_tail = None
        self._last_body = self._last_body_field = None

    def __call__(self, messages):
        """The bytes of ``messages``' rows."""
        if not messages:
            return b""
        first = messages[0]
        count = len(messages)
        # The same body and headers objects (not merely equal ones: {"a": 1}
        # == {"a": True}), then equal other fields (the same bytes).
        if list(map(id, map(_bodies, messages))).count(id(first.body)) == count \
                and list(map(id, map(_headers, messages))).count(id(first.headers)) == count \
                and list(map(type, map(_priorities, messages))).count(type(first.priority)) \
                == count and _alike_shapes(messages):
            rows = self._alike(first, list(map(_task_ids, messages)))
            if rows is not None:
                return rows
        return self._one_by_one(messages)

    def _alike(self, first, task_ids):
        """The rows of messages that share all but their ids (a group's
        members without arguments), if their ids are ASCII of one length
        (generated ones): one join, each row's bytes between two ids."""
        ids = "".join(task_ids)
        length = len(task_ids[0])
        if not ids.isascii() or "\x00" in ids or len(ids) != length * len(task_ids) \
                or list(map(len, task_ids)).count(length) != len(task_ids):
            return None
        after_id = self._middle(first) + self._body_field_of(first.body) + self._tail(first)
        before_id = _ROW_START + _length(length)
        # Latin-1 maps each byte to one character and back.
        between = (after_id + before_id).decode("latin-1")
        return before_id + between.join(task_ids).encode("latin-1") + after_id

    def _one_by_one(self, messages):
        parts = []
        append = parts.append
        for m in messages:
            append(_ROW_START)
            append(_text_field(m.task_id))
            append(self._middle(m))
            append(self._body_field_of(m.body))
            append(self._tail(m))
        return b"".join(parts)

    def _body_field_of(self, body):
        if body is not self._last_body:
            self._last_body, self._last_body_field = body, _text_field(body)
        return self._last_body_field

    def _tail(self, m):
        if m.headers is not self._last_headers or m.created_at is not self._last_created_at:
            self._last_headers, self._last_created_at = m.headers, m.created_at
            self._last_tail = (_text_field(compact_json(m.headers), jsonb=True) + _DELIVERIES
                               + _timestamp_field(m.created_at))
        return self._last_tail

    def _middle(self, m):
        # Equal values have the same bytes; the priority's type is checked.
        key = (m.task_name, m.queue, m.priority, type(m.priority), m.available_at, m.expires,
               m.content_type)
        middle = self._fields.get(key)
        if middle is None:
            middle = self._fields[key] = b"".join((
                _text_field(m.task_name), _text_field(m.queue), _smallint_field(m.priority),
                _timestamp_field(m.available_at), _timestamp_field(m.expires),
                _text_field(m.content_type)))
        return middle


def _log_query(connection, sql, started):
    """What Django's own cursors log under DEBUG, for statements run around them."""
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


# A session's prepared statements found missing, or another's found there:
# what a pooler that hands each transaction any server session does to them.
_LOST_PREPARED = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.DuplicatePreparedStatement)
LOST_PREPARED_HINT = (
    "The server session's prepared statements are not this connection's: behind "
    "PgBouncer in transaction mode (older than 1.22.1, or without max_prepared_statements) "
    "set DJANGO_TASKS['PREPARED_STATEMENTS'] = False")


@contextmanager
def _database_errors(connection):
    """Django's errors for psycopg's, as its cursors raise them; where
    prepared statements went astray, with a note saying what to set."""
    try:
        with connection.wrap_database_errors:
            yield
    except DatabaseError as exc:
        if isinstance(exc.__cause__, _LOST_PREPARED):
            exc.add_note(LOST_PREPARED_HINT)
        raise


def _through_libpq(connection, sql, run, *args):
    """``run(*args)``, a call of libpq.py on Django's ``connection``, with
    Django's errors and DEBUG's query log (as ``sql``), as its cursors have."""
    started = time.monotonic()
    try:
        outcome = run(*args)
    except psycopg.Error:
        with _database_errors(connection):  # raised again as Django's
            raise
    _log_query(connection, sql, started)
    return outcome


def _execute_wrapped(connection, cursor, sql, params, binary, prepare):
    """``cursor.execute()`` through Django's ``execute_wrapper()`` functions
    of ``connection``, called as Django's cursors call them (the outermost
    installed first)."""
    def execute(sql, params, many, context):
        return cursor.execute(sql, params, binary=binary, prepare=prepare)

    for wrapper in reversed(connection.execute_wrappers):
        execute = functools.partial(wrapper, execute)
    return execute(sql, params, False, {"connection": connection, "cursor": cursor})


def _identity(value):
    return value


@functools.cache
def _tolerant(loader):
    """``loader`` that reads a value Python cannot hold (a timestamp of
    'infinity' or past year 9999, jsonb too deep or with a 5,000-digit
    number) as ``Unreadable`` instead of failing the whole fetch: a claim
    has already committed when its rows are read, and one bad row must not
    hide its batch-mates from the worker that claimed them."""

    class Tolerant(Loader):
        format = loader.format

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._inner = loader(oid, context)

        def load(self, data):
            try:
                return self._inner.load(data)
            except (psycopg.DataError, *READ_ERRORS) as exc:
                return Unreadable(f"{type(exc).__name__}: {exc}")

    return Tolerant


def _read_messages_tolerantly(cursor):
    """Make ``cursor`` read the columns of a message that can hold what
    Python cannot (binary results) tolerantly."""
    _register_tolerant(cursor.adapters)


def _register_tolerant(adapters):
    for name in ("timestamptz", "jsonb"):
        oid = adapters.types[name].oid
        adapters.register_loader(oid, _tolerant(adapters.get_loader(oid, Format.BINARY)))


def _message_readers(connection):
    """psycopg's Transformers reading claimed rows (binary) on Django's
    ``connection``, with its own loaders and tolerantly: kept with it while
    its session lasts, so that their loaders are made once, not at every
    claim as a cursor makes them."""
    raw = connection.connection
    kept = getattr(connection, "_django_tasks_message_readers", None)
    if kept is None or kept[0] is not raw:
        tolerant = AdaptersMap(raw.adapters)
        _register_tolerant(tolerant)
        kept = (raw, libpq.transformer(raw, raw.adapters), libpq.transformer(raw, tolerant))
        connection._django_tasks_message_readers = kept
    return kept[1:]


def _load_messages(connection, result):
    """The claimed rows of ``result``: read by the plain loaders (a Python
    call less per value), and again tolerantly (see _tolerant) only if one
    of them could not be read."""
    plain, tolerant = _message_readers(connection)
    try:
        return libpq.load_rows(plain, result)
    except (psycopg.DataError, *READ_ERRORS):
        return libpq.load_rows(tolerant, result)


@functools.cache
def _direct_claim(sql):
    """A one-queue claim (as _written_in wrote it) for libpq: its prepared
    statement's name and text, parameters $1 worker, $2 pid, $3 queue."""
    numbered = (sql.replace("%(worker)s", "$1").replace("%(pid)s", "$2")
                .replace("%(queue)s", "$3"))
    if "%" in numbered:
        raise ValueError("a claim for libpq has a placeholder left")
    digest = hashlib.sha1(sql.encode()).hexdigest()[:16]
    return f"django_tasks_claim_{digest}".encode(), numbered.encode()


class CopyWriter(BatchWriter):
    """Messages streamed with one COPY as a canvas plans them.

    The COPY opens with the first full batch, so the server stores rows while
    the client plans the next ones; the NOTIFY follows it in the same
    transaction. Nothing may use the connection while the COPY is open:
    planning a canvas does not.
    """

    def __init__(self, queue):
        super().__init__(queue)
        self.connector = queue.connector
        self.connection = queue.connection
        self._open = None  # the cursor and its COPY, while it is open
        self._queues = Counter()
        self._task_ids = []
        self._rows = CopyRows()

    def __exit__(self, *exc_info):
        if self._open is not None:  # planning failed: the COPY is abandoned
            open_copy, self._open = self._open, None
            with self.connection.wrap_database_errors:
                open_copy.__exit__(*exc_info)
        return False

    def write(self, messages):
        with self.connection.wrap_database_errors:
            rows = self._rows(messages)
            if self._open is None:
                self._start()
                rows = COPY_SIGNATURE + rows
            self._copy.write(rows)
        self._queues.update(map(_queues, messages))
        self._task_ids.extend(map(_task_ids, messages))

    def finish(self, messages):
        if self._open is None:  # never reached a batch: one ordinary enqueue
            super().finish(messages)
            return
        self.write(messages)
        self._copy.write(COPY_TRAILER)  # psycopg writes it only after rows it formatted
        open_copy, self._open = self._open, None
        connection = self.connection
        with connection.wrap_database_errors:
            open_copy.close()  # the COPY ends once the server has every row
        self.connector.notify_unlogged(
            QUEUE_CHANNEL, [_announcement(queue, count)
                            for queue, count in sorted(self._queues.items())])
        _log_query(connection, ENQUEUE_COPY_SQL, self._started)
        self.queue.remember_uncommitted(self._task_ids)

    def _start(self):
        self._started = time.monotonic()
        self._open, self._copy = self.connector.open_copy(ENQUEUE_COPY_SQL)


class PostgreSQLConnector(Connector):
    """Statements on psycopg's own cursor, the libpq shortcut, LISTEN/NOTIFY.

    ``execute`` (Django's cursor, client-side binding) as every vendor;
    ``execute_bound`` binds server-side and prepares the statements the
    queue runs all the time; ``run_directly`` is libpq's shortcut (libpq.py)
    for a lone statement outside a transaction. Waiting: one dedicated
    autocommit connection per thread and channel.
    """

    def __init__(self, alias):
        super().__init__(alias)
        self._listeners = threading.local()

    @property
    def wakes_up(self):
        return settings.LISTEN_NOTIFY

    # -- statements -----------------------------------------------------

    def execute_bound(self, sql, params, fetch=False, binary=False, prepare=False,
                      messages=False):
        """Run ``sql`` on psycopg's own cursor over Django's connection (same
        transaction).

        It binds parameters server-side, which for arrays of thousands of
        values is far cheaper than Django's client-side quoting; psycopg's
        errors still come out as Django's, DEBUG's query log still sees it,
        and so do the connection's ``execute_wrapper()`` functions.
        ``messages``: rows of the queue table (binary), read tolerantly.
        Returns the rows if ``fetch``, else how many rows it changed.
        """
        connection = self.connection
        connection.ensure_connection()
        started = time.monotonic()
        raw = connection.connection
        prepare = (prepare or sql in PREPARED) and settings.PREPARED_STATEMENTS
        if prepare and raw.prepare_threshold is None:
            # Django turns psycopg's preparing off (for poolers), which
            # ignores prepare=True too: prepare what is asked for, only.
            raw.prepare_threshold = ONLY_WHEN_ASKED
        # psycopg.Cursor explicitly: Django's connections default to a
        # client-side binding cursor class.
        with _database_errors(connection), psycopg.Cursor(raw) as cursor:
            if messages:  # rows of the queue table (binary): see _tolerant
                _read_messages_tolerantly(cursor)
            if connection.execute_wrappers:
                _execute_wrapped(connection, cursor, sql, params, binary, prepare or None)
            else:
                cursor.execute(sql, params, binary=binary, prepare=prepare or None)
            outcome = cursor.fetchall() if fetch else cursor.rowcount
        _log_query(connection, sql, started)
        return outcome

    def run_directly(self, sql, params, then=None):
        connection = self.connection
        # The connection is looked up once and handed down: Django's look-up
        # (a thread-local) is a microsecond each time.
        if not (connection.get_autocommit() and self._can_run_directly(connection)):
            return NOT_RUN
        if then is None:
            _through_libpq(connection, sql, libpq.run_prepared, connection.connection,
                           *DIRECT[sql], params)
            return True, None
        if not libpq.can_pipeline():
            return NOT_RUN
        failed = _through_libpq(connection, sql, libpq.run_then, connection.connection,
                                (*DIRECT[sql], params), then)
        return True, failed

    def claim_directly(self, sql, worker_id, pid, queue):
        """The rows of ``sql``, a one-queue claim, run through libpq as
        ``run_directly`` runs its statements and read (binary, tolerantly)
        by psycopg's loaders without its cursor (whose query conversion,
        parameter dumping and per-claim set-up were most of a claim's client
        CPU). None where that may not be (``execute_bound``'s turn)."""
        connection = self.connection
        if not (connection.get_autocommit() and self._can_run_directly(connection)):
            return None
        raw = connection.connection
        name, numbered = _direct_claim(sql)
        params = (str(worker_id).encode(), None if pid is None else b"%d" % pid, _utf8(queue))
        result = _through_libpq(connection, sql, libpq.run_prepared, raw, name, numbered,
                                params, True)
        with _database_errors(connection):
            return _load_messages(connection, result)

    @staticmethod
    def _can_run_directly(connection):
        """Whether a statement of DIRECT may go through libpq now on Django's
        ``connection`` (autocommit, no transaction open). Not while an
        ``execute_wrapper()`` is installed: the cursor path shows the
        statement to it (APM, tracing) and libpq would not."""
        return settings.PREPARED_STATEMENTS and not connection.execute_wrappers \
            and libpq.can_run(connection.connection)

    def open_copy(self, sql):
        """A COPY FROM STDIN of ``sql`` opened on Django's connection: the
        ExitStack that closes it, and the copy to write rows to."""
        connection = self.connection
        connection.ensure_connection()
        open_copy = ExitStack()
        cursor = open_copy.enter_context(psycopg.Cursor(connection.connection))
        return open_copy, open_copy.enter_context(cursor.copy(sql))

    def notify_unlogged(self, channel, payloads):
        """NOTIFY ``channel`` of each of ``payloads`` in the caller's
        transaction, on psycopg's cursor, outside DEBUG's log (the COPY
        they announce is logged)."""
        connection = self.connection
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            for payload in payloads:
                cursor.execute(NOTIFY_SQL, [channel, payload])

    # -- waking -----------------------------------------------------------

    def notify_queue(self):
        self.execute(NOTIFY_SQL, [QUEUE_CHANNEL, RELEASE])

    def notify_results(self, task_ids):
        if not task_ids:
            return
        with self.connection.cursor() as cursor:
            for payload in _notify_payloads(task_ids):
                cursor.execute(NOTIFY_SQL, [RESULT_CHANNEL, payload])

    def _listener(self, channel):
        listener = getattr(self._listeners, channel, None)
        if listener is None or listener.closed:
            params = connections[self.alias].get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            listener = psycopg.connect(**params, autocommit=True)
            listener.execute(f"LISTEN {channel}")
            setattr(self._listeners, channel, listener)
        return listener

    def _wait(self, channel, timeout):
        if not self.wakes_up:
            return super().wait_for_messages(timeout)
        try:
            listener = self._listener(channel)
            return [n.payload for n in listener.notifies(timeout=timeout, stop_after=1)]
        except psycopg.OperationalError as exc:
            # The server went away: drop the listener; the caller's next
            # database call reconnects (or reports) and polling carries on.
            logger.warning("LISTEN connection lost (%s); polling until it is back", exc)
            self.close_listener()
            return super().wait_for_messages(min(timeout, 1.0))

    def prepare_wait_for_messages(self):
        """LISTEN before checking the queue, so no NOTIFY falls in between."""
        if self.wakes_up:
            self._listener(QUEUE_CHANNEL)

    def prepare_wait_for_results(self):
        if self.wakes_up:
            self._listener(RESULT_CHANNEL)

    def wait_for_messages(self, timeout):
        return self._wait(QUEUE_CHANNEL, timeout)

    def queue_listener_fileno(self):
        if not self.wakes_up:
            return None
        # Django's error classes, as for every other database call: the
        # worker's reconnect loop knows those.
        with self.connection.wrap_database_errors:
            return self._listener(QUEUE_CHANNEL).fileno()

    def drain_queue_notifications(self):
        listener = getattr(self._listeners, QUEUE_CHANNEL, None)
        if listener is None:
            return None
        with self.connection.wrap_database_errors:
            return _wakeups_announced(n.payload for n in listener.notifies(timeout=0))

    def wait_for_results(self, timeout):
        return self._wait(RESULT_CHANNEL, timeout)

    async def result_notifications(self):
        """Result notifications for ``aget()``, on an async connection of
        their own: batches of payloads, the first one (empty) once it listens.
        Ends when the connection is lost (the waiters poll meanwhile)."""
        # A connection object of its own: looked up in the event loop's
        # thread, connections[alias] would stay behind in the caller's context.
        params = connections.create_connection(self.alias).get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        try:
            async with await psycopg.AsyncConnection.connect(**params,
                                                             autocommit=True) as listener:
                await listener.execute(f"LISTEN {RESULT_CHANNEL}")
                yield []
                async for notify in listener.notifies():
                    yield [notify.payload]
        except psycopg.OperationalError as exc:
            logger.warning("LISTEN connection for awaited results lost (%s); polling until "
                           "the next aget() connects again", exc)

    def close_listener(self):
        for channel in (QUEUE_CHANNEL, RESULT_CHANNEL):
            listener = getattr(self._listeners, channel, None)
            if listener is not None:
                listener.close()
                setattr(self._listeners, channel, None)


class PostgreSQLQueue(BaseQueue):
    """The domain operations PostgreSQL runs its own statements for."""

    connector_class = PostgreSQLConnector
    single_statement_finish = True

    # -- producer ---------------------------------------------------------

    def enqueue(self, messages):
        try:
            self._enqueue(messages)
        except IntegrityError as exc:  # the queue's one unique column: task_id
            exc.add_note(REPEATED_TASK_ID_HINT)
            raise

    def _enqueue(self, messages):
        if not messages:
            return
        if len(messages) == 1:
            self._enqueue_one(messages[0])
            return
        if len(messages) >= COPY_FROM:
            self._enqueue_by_copy(messages)
            return
        bodies, headers = [m.body for m in messages], [compact_json(m.headers) for m in messages]
        if sum(map(len, bodies)) + sum(map(len, headers)) > COPY_FROM_CHARS:
            self._enqueue_by_copy(messages)
            return
        columns = ([m.task_id for m in messages], [m.task_name for m in messages],
                   [m.queue for m in messages], [m.priority for m in messages],
                   [m.available_at for m in messages], [m.expires for m in messages],
                   [m.content_type for m in messages], bodies, headers, [0] * len(messages),
                   [m.created_at for m in messages])
        self.connector.execute_bound(ENQUEUE_SQL, columns)
        self.remember_uncommitted([m.task_id for m in messages])

    def _enqueue_one(self, m):
        headers = compact_json(m.headers)
        if settings.SYNCHRONOUS_ENQUEUE:
            # INSERT_ONE_SQL, then WAKE_SQL after its commit, in one round trip.
            params = _as_text(m, headers)
            ran, not_woken = self.connector.run_directly(INSERT_ONE_SQL, params,
                                                         then=(*WAKE, (params[2],)))
            if not_woken is not None:
                # The message is committed: the caller must not see an error
                # (a retry would send it twice). Idle workers find it when
                # they poll.
                logger.warning("task %s[%s] was enqueued, but the notification that wakes "
                               "idle workers was not sent (%s); they find it when they next "
                               "poll (POLL_INTERVAL)", m.task_name, m.task_id, not_woken)
        else:  # its commit does not wait for the flush: the NOTIFY may stay in it
            ran, _ = self.connector.run_directly(ENQUEUE_ONE_ASYNC_COMMIT_SQL,
                                                 _as_text(m, headers))
        if ran:
            return
        sql = ENQUEUE_ONE_SQL if settings.SYNCHRONOUS_ENQUEUE \
            or not self.connection.get_autocommit() else ENQUEUE_ONE_ASYNC_COMMIT_SQL
        self.connector.execute_bound(sql, (m.task_id, m.task_name, m.queue, m.priority,
                                           m.available_at, m.expires, m.content_type, m.body,
                                           headers, m.created_at))
        self.remember_uncommitted([m.task_id])

    def _enqueue_by_copy(self, messages):
        # One transaction for the rows and their wake-up, even in autocommit.
        with transaction.atomic(using=self.alias, savepoint=False), \
                self.message_writer() as writer:
            writer.write(messages)
            writer.finish([])

    def message_writer(self):
        return CopyWriter(self)

    def try_unique_key(self, message, key, unique_for, now):
        rows = self.connector.execute_bound(TRY_UNIQUE_KEY_SQL, {
            "task": message.task_name, "key": key, "task_id": message.task_id,
            "unique_for": unique_for, "now": now}, fetch=True, prepare=True)
        if not rows:
            return False, None
        taken, *holder = rows[0]
        return (True, None) if taken else (False, UniqueHolder(*holder))

    # -- consumer ---------------------------------------------------------

    def claim(self, worker_id, queues, limit, start=0, pid=None):
        # Binary results: psycopg's C loaders read the timestamps (Django's
        # text loader for them is Python, and was most of the claim's cost).
        relaxed = self._relaxes_commit()
        if len(queues) == 1 and start >= limit:
            sql = _written_in(CLAIM_ONE_QUEUE_ASYNC_COMMIT_SQL if relaxed
                              else CLAIM_ONE_QUEUE_SQL, limit)
            rows = self.connector.claim_directly(sql, worker_id, pid, queues[0])
            if rows is None:
                rows = self.connector.execute_bound(
                    sql, {"worker": str(worker_id), "pid": pid, "queue": queues[0]},
                    fetch=True, binary=True, prepare=True, messages=True)
        else:
            rows = self.connector.execute_bound(
                _written_in(CLAIM_ASYNC_COMMIT_SQL if relaxed else CLAIM_SQL, limit, len(queues)),
                {"queues": list(queues), "worker": str(worker_id), "pid": pid, "start": start},
                fetch=True, binary=True, prepare=True, messages=True)
        return sort_claimed(self._messages_from_rows(rows))

    def _hand_back(self, message_ids, worker_id, undeliver, available_at):
        if available_at is None:
            return super()._hand_back(message_ids, worker_id, undeliver, available_at)
        return self.connector.execute(HAND_BACK_AT_SQL, [
            1 if undeliver else 0, message_ids, list(available_at), str(worker_id)])

    def _messages_from_rows(self, rows):
        # Binary results: jsonb comes decoded (a JSON string as a str).
        return [self.message_from_row(r, _identity, _identity, _identity) for r in rows]

    def _read_messages(self, sql, params):
        return self._messages_from_rows(self.connector.execute_bound(
            sql, params, fetch=True, binary=True, messages=True))

    # The worker's other reads of whole messages: as tolerant as the claim.

    def claimed_messages(self, worker_id, pid):
        if pid is None:
            return super().claimed_messages(worker_id, pid)
        return self._read_messages(CLAIMED_BY_SQL, [str(worker_id), pid])

    def _relaxes_commit(self):
        """Whether the worker's claim or acknowledgement about to run may
        commit without waiting for the WAL flush: SYNCHRONOUS_ACKS off, and
        no transaction of a caller's open (task code's own commits keep their
        setting). A server crash can then lose only the last instant of them,
        and those tasks run again (at-least-once)."""
        return not settings.SYNCHRONOUS_ACKS and self.connection.get_autocommit()

    @contextmanager
    def acknowledging_transaction(self):
        relaxed = self._relaxes_commit()  # before it opens: then it is ours
        with transaction.atomic(using=self.alias):
            if relaxed:
                self.connector.execute_bound(RELAX_TRANSACTION_SQL, None)
            yield

    def store_and_acknowledge(self, stored, done_ids, notify_ids=()):
        if not stored and not done_ids and not notify_ids:
            return
        if len(stored) == 1 and self._store_one_directly(stored[0], done_ids, notify_ids):
            return
        values = [o.result_values() for o in stored]
        columns = [list(column) for column in zip(*values, strict=True)] if values \
            else [[] for _ in RESULT_COLUMNS]
        self.connector.execute_bound(
            STORE_AND_ACK_ASYNC_COMMIT_SQL if self._relaxes_commit() else STORE_AND_ACK_SQL,
            [*columns, list(done_ids), _notify_payloads(notify_ids)])

    def _store_one_directly(self, outcome, done_ids, notify_ids):
        """One outcome stored, acknowledged and notified, outside a transaction:
        through libpq, its values as text (far less client CPU than the
        array statement). Returns whether it did."""
        message = outcome.message
        if list(done_ids) != [message.id] or list(notify_ids) != [message.task_id]:
            return False
        values = outcome.result_values()
        sql = STORE_AND_ACK_ONE_SQL if settings.SYNCHRONOUS_ACKS \
            else STORE_AND_ACK_ONE_ASYNC_COMMIT_SQL
        ran, _ = self.connector.run_directly(sql, (
            *(_timestamp_utf8(v) if isinstance(v, datetime) else _utf8(v) for v in values),
            b"%d" % message.id, _utf8(message.task_id)))
        return ran

    # -- flow control -------------------------------------------------------

    def take_rate_tokens(self, task_name, count, step, tolerance):
        params = {"task": task_name, "count": count, "step": step, "tolerance": tolerance}
        sql = TAKE_RATE_TOKENS_ASYNC_COMMIT_SQL if self.connection.get_autocommit() \
            else TAKE_RATE_TOKENS_SQL
        rows = self.connector.execute_bound(sql, params, fetch=True, prepare=True)
        if not rows:
            self.connector.execute_bound(NEW_RATE_BUCKET_SQL, [task_name])
            rows = self.connector.execute_bound(sql, params, fetch=True, prepare=True)
        return rows[0]

    @contextmanager
    def slot_transaction(self, task_name, key):
        with transaction.atomic(using=self.alias):
            self.connector.execute_bound(LOCK_SLOTS_SQL, [task_name, key])
            yield

    def take_slots(self, worker_id, groups):
        groups = list(groups)
        with transaction.atomic(using=self.alias):
            held = {tuple(row) for row in self.connector.execute_bound(
                TRY_LOCK_SLOTS_SQL, [[g[0] for g in groups], [g[1] for g in groups]],
                fetch=True)}
            admitted = self._take_slots_locked(
                worker_id, [g for g in groups if (g[0], g[1]) not in held])
        for group in groups:
            if (group[0], group[1]) in held:
                with self.slot_transaction(group[0], group[1]):
                    admitted |= self._take_slots_locked(worker_id, [group])
        return admitted

    def _take_slots_locked(self, worker_id, groups):
        if not groups:
            return set()
        ids, tasks, keys, limits = [], [], [], []
        for task_name, key, group_ids, group_limits in groups:
            ids += group_ids
            limits += group_limits
            tasks += [task_name] * len(group_ids)
            keys += [key] * len(group_ids)
        rows = self.connector.execute_bound(TAKE_SLOTS_SQL, {
            "ids": ids, "tasks": tasks, "keys": keys, "limits": limits,
            "worker": str(worker_id), "parked": PARKED}, fetch=True)
        return {pk for pk, admitted in rows if admitted}

    # -- results ------------------------------------------------------------

    def get_result(self, task_id):
        return self._one_by_task_id(TaskResult, RESULT_BY_TASK_ID_SQL, RESULT_COLUMNS, task_id)

    def get_message(self, task_id):
        # Binary results: headers come decoded, as the ORM gives them.
        return self._one_by_task_id(QueuedMessage, MESSAGE_BY_TASK_ID_SQL, MESSAGE_FIELDS,
                                    task_id)

    def _one_by_task_id(self, model, sql, fields, task_id):
        task_id = str(task_id)
        if not is_task_id(task_id):  # never sent: no row holds it
            return None
        rows = self.connector.execute_bound(sql, [task_id], fetch=True, binary=True)
        return model.from_db(self.alias, fields, rows[0]) if rows else None

    def estimated_row_count(self, model):
        # What ANALYZE (or autovacuum) last counted: free, and close enough
        # for a paginator. -1 means never analyzed.
        rows = self.connector.execute(ESTIMATED_ROWS_SQL, [model._meta.db_table], fetch=True)
        return rows[0][0] if rows and rows[0][0] >= 0 else None

    # -- workers and housekeeping ---------------------------------------------

    def orphaned_messages(self, cutoff, limit):
        rows = self.connector.execute_bound(ORPHANED_SQL, [cutoff, limit], fetch=True,
                                            binary=True, messages=True)
        messages = self._messages_from_rows([row[:-1] for row in rows])
        for message, row in zip(messages, rows, strict=True):
            message.claimed_by = row[-1]
        return messages

    def expired_waiting(self, now, limit):
        return self._read_messages(EXPIRED_WAITING_SQL, [now, limit])

    def vacuum_queue(self):
        # Every claimed and every acknowledged message leaves a dead row; the
        # claim index scan must step over the dead entries at its head until
        # they are vacuumed. Do not rely on autovacuum's pace (or on it being
        # on). But a VACUUM that has more than a few dead rows to remove
        # reads every index of the table whole: its cost grows with the
        # waiting messages, not with the work done since the last one. So it
        # runs once the dead rows reach a fraction of the live ones: its cost
        # per message handled stays the same at any depth, and the dead
        # entries a claim steps over stay that fraction of the index. VACUUM
        # cannot run inside a transaction. True if it ran.
        if self.connection.in_atomic_block:
            return False
        if not vacuum_due(self.vacuum_stats()):
            return False
        self.connector.execute(VACUUM_QUEUE_SQL)
        return True

    def vacuum_stats(self):
        """``(dead rows, live rows)`` of the queue table, as the statistics
        last counted them; None where they do not count (``track_counts``
        off)."""
        rows = self.connector.execute(VACUUM_STATS_SQL, [TABLE], fetch=True)
        return tuple(rows[0]) if rows else None


def vacuum_due(stats):
    """Whether the queue table, with ``stats`` (``vacuum_stats()``), needs a
    VACUUM: when the statistics do not count, on every turn of the job."""
    if stats is None:
        return True
    dead, live = stats
    return dead >= max(VACUUM_DEAD_FLOOR, VACUUM_DEAD_FRACTION * live)
