#!/usr/bin/env python
"""Where a no-op drain spends its CPU: the bench's drain, for django_tasks only.

    python bench/drain_cpu.py [--n 20000] [--pool prefork] [--prefetch 4] [--runs 2]

Bulk-enqueues ``--n`` no-op tasks into the bench database (as ``run.py``
does), starts ``runworker -c 2``, and prints the drain rate with the CPU
seconds each worker process and PostgreSQL spent on it. Run it at two
commits to compare a change (``run.py`` needs to have set up the database
once: ``python bench/run.py --systems ours --quick``).
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def postgres_cpu():
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if (proc.info["name"] or "").startswith("postgres"):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def drain_once(ours, n, pool, prefetch):
    ours.truncate()
    bench.enqueue(ours, n, "bulk")
    ours.analyze()
    ready_dir = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    procs = ours.start_workers("cpu", ready_dir, pool, 2, prefetch=prefetch)
    try:
        bench.wait_ready(procs, ready_dir, 1)
        started, pg_before = time.time(), postgres_cpu()
        cpu = {}
        while ours.done() < n:
            tree = psutil.Process(procs[0].pid)
            for proc in [tree, *tree.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                role = "parent" if proc.pid == tree.pid else f"child {proc.pid}"
                cpu[role] = times.user + times.system
            time.sleep(0.2)
        seconds = ours.last_done() - started
        pg = postgres_cpu() - pg_before
    finally:
        bench.PROCS.stop(procs)
        shutil.rmtree(ready_dir, ignore_errors=True)
    parts = ", ".join(f"{role} {value:.2f}s" for role, value in cpu.items())
    print(f"{n / seconds:,.0f} tasks/s ({seconds:.2f}s); CPU: {parts}, PostgreSQL {pg:.2f}s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    ours = bench.Ours()
    for _ in range(args.runs):
        drain_once(ours, args.n, args.pool, args.prefetch)


if __name__ == "__main__":
    main()
