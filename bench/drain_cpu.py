#!/usr/bin/env python
"""Where a no-op drain spends its CPU: the bench's drain, for django_tasks only.

    python bench/drain_cpu.py [--n 20000] [--pool prefork] [--prefetch 4] [--runs 2]
                              [--stored-results 5000000]

Bulk-enqueues ``--n`` no-op tasks into the bench database (as ``run.py``
does), starts ``runworker -c 2``, and prints the drain rate with the CPU
seconds each worker process and PostgreSQL spent on it. Run it at two
commits to compare a change (``run.py`` needs to have set up the database
once: ``python bench/run.py --systems ours --quick``).

``--stored-results N`` drains into a result table already holding ``N``
results of a day ago (filled once, kept from run to run; results are kept
for ``RESULT_EXPIRES``, a day by default): what inserting into a large
primary key costs.
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


def backends_cpu():
    """CPU of the server processes serving the bench database (the worker's
    connections, since they opened): unlike ``postgres_cpu``, not counting
    what other databases on a shared server cost meanwhile."""
    with bench.pg(bench.OURS_DB) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


# Results stored before the drain are a day old; the drain's are newer.
RECENT = "date_done > now() - interval '1 hour'"


def fill_stored_results(count):
    """Make the result table hold ``count`` results of a day ago, as a busy
    site's does: random ids (before django_tasks' time-ordered ones), one
    row each."""
    with bench.pg(bench.OURS_DB) as conn:
        have = conn.execute("SELECT count(*) FROM django_tasks_taskresult "
                            f"WHERE NOT ({RECENT})").fetchone()[0]
        if have >= count:
            return
        conn.execute(f"""
            INSERT INTO django_tasks_taskresult (task_id, task_name, state, content_type,
                result, queue, worker, retries, deliveries, date_created, date_done)
            SELECT gen_random_uuid(), 'bench_ours.tasks.noop', 'SUCCESS', 'json', 'null',
                   'default', 'bench@localhost', 0, 1, now() - interval '1 day',
                   now() - interval '1 day'
            FROM generate_series(1, {count - have})""")
        conn.execute("VACUUM ANALYZE django_tasks_taskresult")


def clear_for_drain(ours, keep_stored):
    if not keep_stored:
        ours.truncate()
        return
    with bench.pg(bench.OURS_DB) as conn:
        conn.execute("TRUNCATE django_tasks_queuedmessage, django_tasks_taskgroup")
        conn.execute(f"DELETE FROM django_tasks_taskresult WHERE {RECENT}")
        conn.execute("VACUUM django_tasks_taskresult")


def drained(n):
    """Whether the drain's ``n`` results are stored, and when the last was."""
    with bench.pg(bench.OURS_DB) as conn:
        count, last = conn.execute(
            "SELECT count(*), extract(epoch FROM max(date_done))::float8 "
            f"FROM django_tasks_taskresult WHERE state = 'SUCCESS' AND {RECENT}").fetchone()
    return count >= n, last


def drain_once(ours, n, pool, prefetch, keep_stored=False):
    clear_for_drain(ours, keep_stored)
    bench.enqueue(ours, n, "bulk")
    ours.analyze()
    ready_dir = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    procs = ours.start_workers("cpu", ready_dir, pool, 2, prefetch=prefetch)
    try:
        bench.wait_ready(procs, ready_dir, 1)
        started, pg_before = time.time(), postgres_cpu()
        cpu = {}
        while not (finished := drained(n))[0]:
            tree = psutil.Process(procs[0].pid)
            for proc in [tree, *tree.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                role = "parent" if proc.pid == tree.pid else f"child {proc.pid}"
                cpu[role] = times.user + times.system
            time.sleep(0.2)
        seconds = finished[1] - started
        pg = postgres_cpu() - pg_before
        backends = backends_cpu()
    finally:
        bench.PROCS.stop(procs)
        shutil.rmtree(ready_dir, ignore_errors=True)
    parts = ", ".join(f"{role} {value:.2f}s" for role, value in cpu.items())
    print(f"{n / seconds:,.0f} tasks/s ({seconds:.2f}s); CPU: {parts}, PostgreSQL {pg:.2f}s "
          f"(the worker's backends {backends:.2f}s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--stored-results", type=int, default=0, metavar="N",
                        help="results of a day ago in the table while draining (filled once)")
    args = parser.parse_args()
    ours = bench.Ours()
    if args.stored_results:
        fill_stored_results(args.stored_results)
    for _ in range(args.runs):
        drain_once(ours, args.n, args.pool, args.prefetch, keep_stored=args.stored_results > 0)


if __name__ == "__main__":
    main()
