"""Client side of the bench for django_tasks (run by bench/run.py in the main env).

Prints one JSON object on stdout.
"""

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_ours_settings")
import django  # noqa: E402

django.setup()

from bench_ours import tasks  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

import django_tasks  # noqa: E402
from django_tasks import group  # noqa: E402
from django_tasks.queue import enqueue  # noqa: E402

WARMUP = 10
LIMITED_KEYS = 20


def _warm_up(task):
    connection.ensure_connection()
    for _ in range(WARMUP):
        task.apply_async(("warm-up",) if task is tasks.sleep10_limited else (),
                         queue="bench_warmup")


def _wait_for(start_at):
    """Sleep until ``start_at`` (time.time()), so that producers run together;
    returns when this one started."""
    if start_at:
        time.sleep(max(0.0, start_at - time.time()))
    return time.time()


def _one_by_one(n, start_at, call):
    """``call()`` ``n`` times from ``start_at``, timed."""
    started = _wait_for(start_at)
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "started": started, "ended": time.time()}


def cmd_enqueue(args):
    task = getattr(tasks, args.task)
    _warm_up(task)
    n = args.n
    if args.mode in ("single", "single-relaxed"):
        relaxed = override_settings(DJANGO_TASKS={**getattr(settings, "DJANGO_TASKS", {}),
                                                  "SYNCHRONOUS_ENQUEUE": False})
        with relaxed if args.mode == "single-relaxed" else nullcontext():
            return _one_by_one(n, args.start_at, task.delay)
    elif args.mode == "single-atomic":
        def in_its_transaction():
            # As a view under ATOMIC_REQUESTS sends it: the NOTIFY in its transaction.
            with transaction.atomic():
                task.delay()

        return _one_by_one(n, args.start_at, in_its_transaction)
    elif args.mode == "bulk":
        t0 = time.perf_counter()
        with transaction.atomic():
            enqueue([task.build_message() for _ in range(n)])
        seconds = time.perf_counter() - t0
    elif args.mode == "limited":  # over LIMITED_KEYS keys, in one transaction
        t0 = time.perf_counter()
        with transaction.atomic():
            enqueue([task.build_message((f"key-{i % LIMITED_KEYS}",)) for i in range(n)])
        seconds = time.perf_counter() - t0
    elif args.mode == "unique":
        return _unique_sends(task, n)
    elif args.mode == "group":
        t0 = time.perf_counter()
        group(task.s() for _ in range(n)).apply_async()
        seconds = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown mode {args.mode}")
    return {"n": n, "seconds": seconds}


# unique mode: n sends over this many distinct unique keys.
UNIQUE_KEYS = 1_000
UNIQUE_TABLES = ("django_tasks_queuedmessage", "django_tasks_uniquelock")


def _unique_sends(task, n):
    """``n`` sends cycling over UNIQUE_KEYS keys (no worker runs): the first
    send of each key writes a message and a lock, the rest write nothing.
    Reports rows inserted/updated in both tables (the server's counters)."""
    before = _rows_written()
    keys = [f"key-{i % UNIQUE_KEYS}" for i in range(n)]
    t0 = time.perf_counter()
    ids = {task.apply_async(unique_key=key).id for key in keys}
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "distinct_ids": len(ids),
            "written": {table: after - before[table]
                        for table, after in _rows_written().items()}}


def _rows_written():
    """Rows inserted + updated + deleted so far, per table (flushed, as of now)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(1.5)  # backends flush their counters at most once a second
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del "
                       "FROM pg_stat_user_tables WHERE relname = ANY(%s)", [list(UNIQUE_TABLES)])
        return dict(cursor.fetchall())


def cmd_latency(args):
    task = tasks.stamp
    start, result = [], []
    for i in range(args.warmup + args.n):
        time.sleep(args.gap)  # the worker is idle again
        t0 = time.time()
        r = task.delay()
        started = r.get(timeout=args.timeout)
        t2 = time.time()
        if i >= args.warmup:
            start.append(started - t0)
            result.append(t2 - t0)
    return {"start": start, "result": result}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("enqueue")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--mode", default="single",
                   choices=["single", "single-relaxed", "single-atomic", "bulk", "group",
                            "limited", "unique"])
    p.add_argument("--task", default="noop")
    p.add_argument("--start-at", type=float, default=None,
                   help="time.time() to start at, after the warm-up (concurrent producers)")
    p = sub.add_parser("latency")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--gap", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    out = {"cmd_enqueue": cmd_enqueue, "cmd_latency": cmd_latency}[f"cmd_{args.cmd}"](args)
    out["module"] = django_tasks.__file__
    out["python"] = sys.version.split()[0]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
