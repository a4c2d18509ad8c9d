"""``run.py --workers``: one PostgreSQL drained by 1, 2, 4, 8 worker processes.

Issue 20 asks that the drain scale with the number of worker processes until
PostgreSQL's commit rate stops it, not before. A round of a count: ``n``
no-op tasks bulk-enqueued, then that many ``runworker -P solo`` processes
(each one consumer: it claims ``--prefetch`` messages at a time and stores
its results in batches) timed from the last one's ready signal to the last
result stored.

Beside the rate, the round reports the transactions PostgreSQL committed
for the drain (``pg_stat_database.xact_commit``, the bench's own polling
taken out), and the ceiling: how many transactions that same number of
clients commits per second when all each one does is insert a row and
commit (``pgbench``, committing as the worker does by default: without
waiting for the WAL flush, ``SYNCHRONOUS_ACKS`` off). "of ceiling" is the
drain's commits/s over that: near 1, the drain is held by PostgreSQL's
commits; far below 1, by something else (on a 2-core machine, the CPU the
workers and the server share).

The counts take turns round by round (this machine's speed drifts within
minutes). The database is ``<BENCH_DB_PREFIX>_ours_workers`` (the bench's
own database name with ``_workers`` appended), kept between runs.
"""

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import run as bench

DRAINED = "bench_ours.tasks.noop"
PROBE_TABLE = "bench_commit_probe"
PGBENCH_SECONDS = 5
# The bench's poller commits one transaction per poll: taken out of the count.
POLL_INTERVAL = 0.2


class Workers:
    """The drain database, and the worker processes of one round."""

    def __init__(self, prefetch):
        self.db = f"{bench.OURS_DB}_workers"
        self.prefetch = prefetch
        self.ours = bench.Ours()
        self.ours.env = dict(self.ours.env, DATABASE_URL=f"{bench.PG_URL}/{self.db}")

    def create(self):
        bench.recreate_db(self.db)
        subprocess.run([self.ours.python, bench.ROOT / "manage.py", "migrate", "-v0"],
                       env=self.ours.env, cwd=bench.ROOT, check=True, timeout=300)
        with bench.pg(self.db) as conn:
            conn.execute(f"CREATE TABLE {PROBE_TABLE} (n int)")

    def prepare_round(self, n):
        with bench.pg(self.db) as conn:
            conn.execute(f"TRUNCATE {', '.join(bench.OURS_TABLES)}")
        bench.enqueue(self.ours, n, "bulk")
        with bench.pg(self.db) as conn:
            conn.execute("VACUUM ANALYZE django_tasks_queuedmessage")

    def start(self, count, ready_dir):
        procs = []
        for index in range(count):
            env = dict(self.ours.env, BENCH_READY_FILE=str(ready_dir / f"ready-{index}"))
            cmd = [self.ours.python, bench.ROOT / "manage.py", "runworker", "-P", "solo",
                   "--prefetch-multiplier", self.prefetch, "-l", "WARNING", "--no-banner",
                   "-n", f"bench-w{index}@localhost"]
            procs.append(bench.PROCS.start(cmd, env, bench.ROOT, f"ours-workers-{index}"))
        return procs

    def drain(self, count, n, timeout):
        """(tasks/s, transactions committed per task) of one round."""
        ready_dir = Path(tempfile.mkdtemp(prefix="bench-ready-"))
        procs = self.start(count, ready_dir)
        polls = 0
        try:
            t_ready = bench.wait_ready(procs, ready_dir, count)
            commits_before = self.commits()
            deadline = time.monotonic() + timeout
            with bench.pg(self.db) as poller:
                poller.autocommit = True
                while True:
                    done, last = poller.execute(
                        "SELECT count(*), extract(epoch FROM max(date_done))::float8 "
                        "FROM django_tasks_taskresult WHERE state = 'SUCCESS'").fetchone()
                    polls += 1
                    if done >= n:
                        break
                    for proc in procs:
                        if proc.poll() is not None:
                            raise RuntimeError(f"a worker exited ({proc.returncode}) after "
                                               f"{done}/{n} tasks")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {done}/{n} tasks done after {timeout:.0f}s")
                    time.sleep(POLL_INTERVAL)
        finally:
            bench.PROCS.stop(procs)
            shutil.rmtree(ready_dir, ignore_errors=True)
        # A backend reports its commits to the statistics when it exits, at
        # the latest: the workers' have just been stopped.
        commits = self.settled_commits() - commits_before - polls
        return n / (last - t_ready), commits / n

    def commits(self):
        return bench.scalar(self.db, "SELECT xact_commit FROM pg_stat_database "
                                     "WHERE datname = current_database()")

    def settled_commits(self, timeout=10.0):
        """The commit count once the stopped workers' statistics are in."""
        deadline = time.monotonic() + timeout
        previous = self.commits()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            current = self.commits()
            # Each look is a transaction of its own: one more is "no change".
            if current <= previous + 1:
                return previous
            previous = current
        return previous

    def commit_ceiling(self, clients):
        """Transactions per second ``clients`` pgbench clients commit, each
        inserting one row."""
        # With the worker's durability: its claims and acknowledgements do
        # not wait for the WAL flush unless SYNCHRONOUS_ACKS is on (it is off
        # in the bench's settings, as by default).
        env = dict(os.environ, PGOPTIONS="-c synchronous_commit=off")
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write(f"INSERT INTO {PROBE_TABLE} VALUES (1);\n")
        try:
            host, port = _host_port(bench.PG_URL)
            out = subprocess.run(
                ["pgbench", "-n", "-h", host, "-p", port, "-U", "postgres", "-c", str(clients),
                 "-j", str(min(clients, 2)), "-T", str(PGBENCH_SECONDS), "-f", script.name,
                 self.db], capture_output=True, text=True, check=True, timeout=120,
                env=env).stdout
        finally:
            Path(script.name).unlink()
        with bench.pg(self.db) as conn:
            conn.execute(f"TRUNCATE {PROBE_TABLE}")
        found = re.search(r"tps = ([\d.]+) \(without initial connection", out)
        if not found:
            raise RuntimeError(f"could not read pgbench's tps from: {out!r}")
        return float(found.group(1))


def _host_port(url):
    found = re.match(r"postgres(?:ql)?://[^@]*@([^:/]+)(?::(\d+))?", url)
    if not found:
        raise RuntimeError(f"BENCH_PG_URL {url!r}: expected postgres://user@host[:port]")
    return found.group(1), found.group(2) or "5432"


def run_workers(counts, n, rounds, prefetch):
    """Every count's drain, the counts taking turns for ``rounds`` rounds, and
    the commit ceiling of each count; returns the text."""
    if not shutil.which("pgbench"):
        raise RuntimeError("pgbench is not installed (Debian: postgresql-client)")
    workers = Workers(prefetch)
    bench.log(f"creating {workers.db}")
    workers.create()
    rates = {count: [] for count in counts}
    commits = {count: [] for count in counts}
    ceilings = {count: [] for count in counts}
    try:
        for round_ in range(rounds):
            for count in (reversed(counts) if round_ % 2 else counts):
                bench.log(f"{count} worker(s): round {round_ + 1}")
                workers.prepare_round(n)
                rate, per_task = workers.drain(count, n, timeout=max(120.0, n / 40))
                rates[count].append(rate)
                commits[count].append(per_task)
                ceilings[count].append(workers.commit_ceiling(count))
                bench.log(f"  {rate:,.0f} tasks/s, {per_task:.3f} commits per task; "
                          f"pgbench ceiling {ceilings[count][-1]:,.0f} commits/s")
    finally:
        bench.PROCS.stop_all()
    return render(counts, rates, commits, ceilings, n, prefetch)


def render(counts, rates, commits, ceilings, n, prefetch):
    base = statistics.median(rates[counts[0]])
    lines = [f"Drain of {n:,} no-op tasks by N `runworker -P solo --prefetch-multiplier "
             f"{prefetch}` processes, results stored; medians of {len(rates[counts[0]])} "
             "rounds, the counts taking turns.",
             "commits/s = the drain's transactions per second; ceiling = pgbench, N clients "
             "each inserting a row per commit.",
             f"{'workers':>7} | {'tasks/s':>8} {'vs ' + str(counts[0]):>6} | {'commits/task':>12} "
             f"{'commits/s':>9} | {'ceiling':>8} {'of ceiling':>10} | tasks/s rounds"]
    for count in counts:
        rate = statistics.median(rates[count])
        per_task = statistics.median(commits[count])
        ceiling = statistics.median(ceilings[count])
        lines.append(f"{count:>7} | {rate:>8,.0f} {rate / base:>6.2f} | {per_task:>12.3f} "
                     f"{rate * per_task:>9,.0f} | {ceiling:>8,.0f} "
                     f"{rate * per_task / ceiling:>10.2f} | "
                     + " / ".join(f"{r:,.0f}" for r in rates[count]))
    return "\n".join(lines) + "\n"

