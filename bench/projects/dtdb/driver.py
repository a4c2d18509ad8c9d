"""Client side of the bench for django-tasks-db (run by bench/run.py in bench/.venvs/dtdb).

Prints one JSON object on stdout.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_dtdb.settings")
import django  # noqa: E402

django.setup()

from bench_dtdb import tasks  # noqa: E402
from django.db import connection  # noqa: E402
from django.tasks import TaskResultStatus  # noqa: E402

WARMUP = 10
FINISHED = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}


def _warm_up(task):
    connection.ensure_connection()
    for _ in range(WARMUP):
        task.using(queue_name="bench_warmup").enqueue()


def cmd_enqueue(args):
    task = getattr(tasks, args.task)
    _warm_up(task)
    n = args.n
    if args.mode != "single":
        raise SystemExit("django-tasks-db: only --mode single")
    t0 = time.perf_counter()
    for _ in range(n):
        task.enqueue()
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds}


def cmd_latency(args):
    """django.tasks has no blocking get(): poll the result every --poll seconds."""
    task = tasks.stamp
    start, result = [], []
    for i in range(args.warmup + args.n):
        time.sleep(args.gap)
        t0 = time.time()
        r = task.enqueue()
        deadline = t0 + args.timeout
        while r.status not in FINISHED:
            if time.time() > deadline:
                raise SystemExit(f"task {r.id} not finished after {args.timeout}s")
            time.sleep(args.poll)
            r.refresh()
        t2 = time.time()
        if r.status != TaskResultStatus.SUCCESSFUL:
            raise SystemExit(f"task {r.id} ended {r.status}")
        if i >= args.warmup:
            start.append(r.return_value - t0)
            result.append(t2 - t0)
    return {"start": start, "result": result}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("enqueue")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--mode", default="single")
    p.add_argument("--task", default="noop")
    p = sub.add_parser("latency")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--gap", type=float, default=0.02)
    p.add_argument("--poll", type=float, default=0.002)
    p.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    out = globals()[f"cmd_{args.cmd}"](args)
    out["versions"] = {"django": django.__version__}
    out["python"] = sys.version.split()[0]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
