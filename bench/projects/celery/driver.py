"""Client side of the bench for Celery + Redis (run by bench/run.py in bench/.venvs/celery).

Prints one JSON object on stdout.
"""

import argparse
import json
import sys
import time
from datetime import datetime

import bench_celery
import celery
import redis

WARMUP = 10


def _warm_up(task):
    for _ in range(WARMUP):
        task.apply_async(queue="bench_warmup")


def _wait_for(start_at):
    """Sleep until ``start_at`` (time.time()), so that producers run together;
    returns when this one started."""
    if start_at:
        time.sleep(max(0.0, start_at - time.time()))
    return time.time()


def cmd_enqueue(args):
    task = getattr(bench_celery, args.task)
    _warm_up(task)
    n = args.n
    if args.mode != "single":
        raise SystemExit("celery: only --mode single")
    started = _wait_for(args.start_at)
    t0 = time.perf_counter()
    for _ in range(n):
        task.delay()
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "started": started, "ended": time.time()}


def cmd_latency(args):
    task = bench_celery.stamp
    start, result = [], []
    for i in range(args.warmup + args.n):
        time.sleep(args.gap)
        t0 = time.time()
        r = task.delay()
        started = r.get(timeout=args.timeout)
        t2 = time.time()
        if i >= args.warmup:
            start.append(started - t0)
            result.append(t2 - t0)
    return {"start": start, "result": result}


def cmd_lastdone(args):
    """The latest date_done among stored results (exact end of a drain)."""
    client = redis.Redis.from_url(f"{bench_celery.REDIS}/{bench_celery.RESULT_DB}")
    keys = list(client.scan_iter(match="celery-task-meta-*", count=5000))
    last, count = None, 0
    for start in range(0, len(keys), 5000):
        for raw in client.mget(keys[start:start + 5000]):
            if raw is None:
                continue
            meta = json.loads(raw)
            if meta.get("status") != "SUCCESS":
                continue
            count += 1
            done = datetime.fromisoformat(meta["date_done"]).timestamp()
            last = done if last is None else max(last, done)
    return {"t_end": last, "count": count}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("enqueue")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--mode", default="single")
    p.add_argument("--task", default="noop")
    p.add_argument("--start-at", type=float, default=None,
                   help="time.time() to start at, after the warm-up (concurrent producers)")
    p = sub.add_parser("latency")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--gap", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=30.0)
    sub.add_parser("lastdone")
    args = parser.parse_args()
    out = globals()[f"cmd_{args.cmd}"](args)
    out["versions"] = {"celery": celery.__version__, "redis-py": redis.__version__}
    out["python"] = sys.version.split()[0]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
