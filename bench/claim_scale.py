#!/usr/bin/env python
"""Claim, expiry sweep and dashboard with deep queues: django_tasks alone.

    python bench/claim_scale.py [--waiting 1000,100000,1000000] [--future 1000000]
                                [--seconds 2] [--db bench_scale]

For each number of waiting (due) messages, first alone and then behind
``--future`` messages of a higher priority that are not due for a day,
prints: the claim rate (one message a claim, each acknowledged, as a
worker with prefetch 1 does, for ``--seconds``), one claim's plan under
``EXPLAIN (ANALYZE, BUFFERS)`` (time, buffers), the expiry sweep (a tenth
of the messages expire tomorrow, none has expired: what housekeeping finds
about once a second), and the admin dashboard's figures.

Fills its own database (``--db``, dropped and migrated with this
checkout's migrations) with ``generate_series``: about a minute at the
default sizes. Run it at two commits to compare.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import run as bench  # noqa: E402
from drain_scale import insert_live_worker  # noqa: E402

TABLE = "django_tasks_queuedmessage"
QUEUE = "default"
# A tenth of the waiting messages expire tomorrow (the sweep finds none).
FILL = f"""
INSERT INTO {TABLE} (task_id, task_name, queue, priority, available_at, expires,
                     content_type, body, headers, deliveries, created_at)
SELECT gen_random_uuid(), 'bench.noop', '{QUEUE}', %s,
       now() + %s::interval + i * interval '1 ms',
       CASE WHEN i %% 10 = 0 THEN now() + interval '1 day' END,
       'json', '{{"args":[],"kwargs":{{}}}}', '{{"retries":0}}', 0, now()
FROM generate_series(1, %s) AS i
"""
DUE, FUTURE = ("-1 hour", 0), ("1 day", 5)  # (available_at from now, priority)


def setup(db):
    os.environ["DATABASE_URL"] = f"{bench.PG_URL}/{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    bench.recreate_db(db)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def sql(db, statement, params=()):
    with bench.pg(db) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def count(db, priority):
    return sql(db, f"SELECT count(*) FROM {TABLE} WHERE priority = %s", [priority])[0][0]


def fill_to(db, kind, target):
    """Add or delete messages of ``kind`` (DUE or FUTURE) until there are ``target``."""
    offset, priority = kind
    have = count(db, priority)
    if have < target:
        sql(db, FILL, [priority, offset, target - have])
    elif have > target:
        sql(db, f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE priority = %s "
                "ORDER BY id DESC LIMIT %s)", [priority, have - target])
    sql(db, f"VACUUM ANALYZE {TABLE}")


def claim_rate(db, seconds):
    """Claims of one message, each acknowledged, for ``seconds``: claims/s."""
    from django.db import connection

    from django_tasks.queue import get_backend

    backend, worker = get_backend(), uuid.uuid4()
    with bench.pg(db) as conn:
        insert_live_worker(conn, worker)
    claimed, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        messages = backend.claim(worker, [QUEUE], 1, start=1, pid=os.getpid())
        if not messages:
            break
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [messages[0].id])
        claimed += 1
    return claimed / elapsed


def explain_claim(db):
    """One claim's execution time (ms) and buffers, rolled back."""
    from django_tasks.queue.postgresql import CLAIM_ONE_QUEUE_SQL

    params = _claim_params(CLAIM_ONE_QUEUE_SQL)
    with bench.pg(db) as conn, conn.transaction(force_rollback=True):
        insert_live_worker(conn, params["worker"] if isinstance(params, dict) else params[0])
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + CLAIM_ONE_QUEUE_SQL,
                            params).fetchone()[0][0]
    top = plan["Plan"]
    return plan["Execution Time"], top["Shared Hit Blocks"] + top["Shared Read Blocks"]


def _claim_params(statement):
    # The statement's placeholders are named (this checkout) or positional (before).
    if "%(worker)s" in statement:
        return {"worker": str(uuid.uuid4()), "pid": 1, "queue": QUEUE, "limit": 1}
    return [str(uuid.uuid4()), 1, QUEUE, 1]


def timed(function, repeat):
    """Median milliseconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def sweep():
    from django.utils import timezone

    from django_tasks.queue import get_backend

    assert get_backend().expired_waiting(timezone.now(), 1000) == []


def dashboard():
    from django_tasks.admin.dashboard import dashboard_figures

    dashboard_figures()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", default="1000,100000,1000000")
    parser.add_argument("--future", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--db", default=f"{bench.DB_PREFIX}_scale")
    args = parser.parse_args()
    sizes = [int(n) for n in args.waiting.split(",")]
    setup(args.db)
    print(f"{'waiting':>9} {'future':>9} | {'claims/s':>9} {'claim ms':>9} {'buffers':>8} | "
          f"{'sweep ms':>9} | {'dashboard ms':>12}")
    for future in (0, args.future):
        fill_to(args.db, FUTURE, future)
        for waiting in sizes if not future else sorted(sizes, reverse=True):
            fill_to(args.db, DUE, waiting)
            claim_ms, buffers = explain_claim(args.db)
            rate = claim_rate(args.db, args.seconds)
            print(f"{waiting:>9,} {future:>9,} | {rate:>9,.0f} {claim_ms:>9.2f} {buffers:>8} | "
                  f"{timed(sweep, 20):>9.2f} | {timed(dashboard, 5):>12.2f}", flush=True)


if __name__ == "__main__":
    main()
