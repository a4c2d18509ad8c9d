"""``run.py --scale``: the worker's drain with a deep queue and a large result table.

Each case has a database of its own (``bench_scale_w<waiting>_r<results>``,
``bench`` being ``BENCH_DB_PREFIX``), filled once with ``generate_series``
and kept for every round, so that the rounds can take turns between the
cases (this machine's speed drifts by 10-20% within minutes; a case measured
in a slow minute would look slower).

A round of a case: ``n`` no-op tasks bulk-enqueued by the bench's client
(``enqueue()``, real ids and headers), then ``runworker -P prefork -c 2``
(prefetch 4, as run.py's drain row) timed from its ready signal to the last
of those ``n`` results stored, while ``waiting`` other messages wait in the
same queue behind them, and the result table holds ``results`` results
from the last day.

Behind them, by default (``behind="priority"``), is a backlog of a lower
priority: the common way a site keeps a bulk job (a reindex, a mailing)
from delaying its regular tasks, and what the regular tasks must still be
claimed past at full speed. ``behind="fifo"``: the backlog has the same
priority and a later ``available_at`` than the drained tasks, which are
the head of one long queue.
"""

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import run as bench

QUEUE_TABLE = "django_tasks_queuedmessage"
RESULTS_TABLE = "django_tasks_taskresult"
DRAINED = "bench_ours.tasks.noop"
# The backlog runs a task of its own, so that the drain's results can be
# told apart when the worker reaches the backlog at the drain's end.
BACKLOG = "bench_ours.tasks.stamp"
BEHIND = {
    # (the backlog's priority, its available_at; the drained tasks' shift back)
    "priority": (-1, "now() - interval '1 hour'", None),
    "fifo": (0, "now() - interval '1 hour'", "interval '1 day'"),
}

# The backlog: copies of one drained message (its body and headers as the
# client wrote them), random ids.
FILL_BACKLOG = f"""
INSERT INTO {QUEUE_TABLE} (task_id, task_name, queue, priority, available_at, expires,
                           content_type, body, headers, deliveries, created_at)
SELECT gen_random_uuid(), '{BACKLOG}', t.queue, %(priority)s, {{available_at}}, NULL,
       t.content_type, t.body, t.headers, 0, now()
FROM (SELECT * FROM {QUEUE_TABLE} WHERE task_name = '{DRAINED}' LIMIT 1) AS t,
     generate_series(1, %(count)s)
"""

# Results of the last day, as a site keeps them (RESULT_EXPIRES, a day by
# default): one every 8 ms from 23 hours ago, none expired (housekeeping's
# purge finds nothing), each with a time-ordered id of its date_done as
# django_tasks' own ids are (new_task_id: UUID version 7), so that the
# drain's new ids land at the right edge of the primary key as on a site.
FILL_RESULTS = f"""
INSERT INTO {RESULTS_TABLE} (task_id, task_name, state, content_type, result, queue, worker,
                             retries, deliveries, date_created, date_started, date_done)
SELECT regexp_replace(lpad(to_hex(ms), 12, '0') || '7' || substr(md5(i::text), 1, 19),
                      '(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})', '\\1-\\2-\\3-\\4-\\5'),
       '{DRAINED}', 'SUCCESS', 'json', 'null', 'default', 'bench@localhost', 0, 1,
       to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)
FROM (SELECT i, (extract(epoch FROM now() - interval '23 hours') * 1000)::bigint + i * 8 AS ms
      FROM generate_series(1, %(count)s) AS i) AS s
"""


DRAINED_SINCE = (f"SELECT count(*), extract(epoch FROM max(date_done))::float8 "
                 f"FROM {RESULTS_TABLE} WHERE task_name = %s AND state = 'SUCCESS' "
                 "AND date_done >= to_timestamp(%s)")


def db_name(waiting, results):
    return f"{bench.DB_PREFIX}_scale_w{waiting}_r{results}"


def sql(db, statement, params=None):
    with bench.pg(db) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


class Case:
    def __init__(self, waiting, results, behind):
        self.waiting, self.results, self.behind = waiting, results, behind
        self.db = db_name(waiting, results)
        self.ours = bench.Ours()
        self.ours.env = dict(self.ours.env, DATABASE_URL=f"{bench.PG_URL}/{self.db}")
        self.rates = []
        self.cpu = []  # per round: {"worker": s, "postgres": s}

    @property
    def label(self):
        return f"{self.waiting:,} waiting, {self.results:,} stored results"

    def create(self):
        bench.recreate_db(self.db)
        subprocess.run([self.ours.python, bench.ROOT / "manage.py", "migrate", "-v0"],
                       env=self.ours.env, cwd=bench.ROOT, check=True, timeout=300)
        if self.results:
            started = time.monotonic()
            sql(self.db, FILL_RESULTS, {"count": self.results})
            sql(self.db, f"VACUUM ANALYZE {RESULTS_TABLE}")
            bench.log(f"  {self.results:,} results stored in {time.monotonic() - started:.0f}s")

    def prepare_round(self, n):
        """``n`` drained tasks at the head, the backlog topped up to ``waiting``."""
        if not self.results:
            sql(self.db, f"TRUNCATE {RESULTS_TABLE}")
        sql(self.db, f"DELETE FROM {QUEUE_TABLE} WHERE task_name = %s", [DRAINED])
        bench.enqueue(self.ours, n, "bulk")
        priority, available_at, shift = BEHIND[self.behind]
        if shift:
            sql(self.db, f"UPDATE {QUEUE_TABLE} SET available_at = available_at - {shift} "
                         "WHERE task_name = %s", [DRAINED])
        have = sql(self.db, f"SELECT count(*) FROM {QUEUE_TABLE} WHERE task_name = %s",
                   [BACKLOG])[0][0]
        if have < self.waiting:
            sql(self.db, FILL_BACKLOG.format(available_at=available_at),
                {"priority": priority, "count": self.waiting - have})
        elif have > self.waiting:
            sql(self.db, f"DELETE FROM {QUEUE_TABLE} WHERE id IN (SELECT id FROM {QUEUE_TABLE} "
                         "WHERE task_name = %s ORDER BY id DESC LIMIT %s)",
                [BACKLOG, have - self.waiting])
        # The state a running site's queue is in: vacuumed (the worker does
        # it every few seconds) and analyzed.
        sql(self.db, f"VACUUM ANALYZE {QUEUE_TABLE}")

    def drain(self, n, timeout):
        """One timed drain of the ``n`` tasks: (tasks/s, CPU seconds of the
        worker's processes and of this database's server processes from the
        worker's ready signal to the end). The CPU a task costs is what a
        busy machine cannot hide: the rate depends on what else runs."""
        ready_dir = Path(tempfile.mkdtemp(prefix="bench-ready-"))
        since = time.time()
        procs = self.ours.start_workers("scale", ready_dir, "prefork", 2)
        try:
            with bench.pg(self.db) as poller:
                # The bench's own polling is not the drain's cost.
                mine = poller.info.backend_pid
                t_ready = bench.wait_ready(procs, ready_dir, 1)
                at_ready = self.cpu_times(procs[0].pid, mine)
                cpu = dict(at_ready)
                deadline = time.monotonic() + timeout
                while True:
                    cpu.update(self.cpu_times(procs[0].pid, mine))
                    count, last = poller.execute(DRAINED_SINCE, [DRAINED, since]).fetchone()
                    if count >= n:
                        break
                    if procs[0].poll() is not None:
                        raise RuntimeError(f"worker exited ({procs[0].returncode}) after "
                                           f"{count}/{n} tasks")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {count}/{n} tasks done after {timeout:.0f}s")
                    time.sleep(0.2)
        finally:
            bench.PROCS.stop(procs)
            shutil.rmtree(ready_dir, ignore_errors=True)
        used = {role: sum(seconds - at_ready.get((kind, pid), 0.0)
                          for (kind, pid), seconds in cpu.items() if kind == role)
                for role in ("worker", "postgres")}
        return n / (last - t_ready), used

    def cpu_times(self, worker_pid, exclude):
        """CPU seconds so far of each process of the worker's tree and of each
        server process connected to this case's database (but ``exclude``)."""
        found = {}
        try:
            tree = psutil.Process(worker_pid)
            workers = [tree, *tree.children(recursive=True)]
        except psutil.Error:
            workers = []
        for proc in workers:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                found[("worker", proc.pid)] = times.user + times.system
        # A backend's title: "postgres: <user> <database> <host>(<port>) <state>".
        marker = f" {self.db} "
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.pid == exclude or not (proc.info["name"] or "").startswith("postgres"):
                continue
            with contextlib.suppress(psutil.Error):
                if marker in " ".join(proc.info["cmdline"] or []) + " ":
                    times = proc.cpu_times()
                    found[("postgres", proc.pid)] = times.user + times.system
        return found

    def explain(self):
        """The worker's claim (one queue, limit 10: 2 free slots + prefetch 8) and
        one result's store and acknowledgement, under EXPLAIN (ANALYZE,
        BUFFERS), rolled back: (milliseconds, shared buffers hit+read,
        dirtied) of each."""
        from django_tasks.messages import new_task_id
        from django_tasks.outcomes import RESULT_COLUMNS
        from django_tasks.queue.postgresql import (
            CLAIM_ONE_QUEUE_SQL,
            STORE_AND_ACK_ONE_SQL,
            _written_in,
        )

        worker = str(uuid.uuid4())
        now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
        values = {"task_id": new_task_id(), "task_name": DRAINED, "state": "SUCCESS",
                  "content_type": "json", "result": "null", "queue": "default",
                  "worker": "bench@localhost", "retries": "0", "deliveries": "1",
                  "date_created": now, "date_started": now, "date_done": now}
        out = {}
        with bench.pg(self.db) as conn, conn.transaction(force_rollback=True):
            insert_live_worker(conn, worker)
            message_id = conn.execute(f"SELECT id FROM {QUEUE_TABLE} ORDER BY id LIMIT 1"
                                      ).fetchone()[0]
            for name, statement, params in (
                    ("claim", _written_in(CLAIM_ONE_QUEUE_SQL, 10),
                     {"worker": worker, "pid": 1, "queue": "default"}),
                    ("store+ack", STORE_AND_ACK_ONE_SQL,
                     [*(values.get(c) for c in RESULT_COLUMNS), message_id,
                      values["task_id"]])):
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement,
                                    params).fetchone()[0][0]
                hit, read, dirtied = _buffers(plan["Plan"])
                out[name] = (plan["Execution Time"], hit + read, read, dirtied)
        return out


def _buffers(top):
    """A plan's shared buffers (hit, read, dirtied): the top node's figures
    include its children's, init plans under them too, but not those of the
    top's own init plans (the CTEs of the store, which nothing else reads)."""
    total = [top["Shared Hit Blocks"], top["Shared Read Blocks"], top["Shared Dirtied Blocks"]]
    for child in top.get("Plans", []):
        if child.get("Parent Relationship") == "InitPlan":
            total = [total[0] + child["Shared Hit Blocks"], total[1] + child["Shared Read Blocks"],
                     total[2] + child["Shared Dirtied Blocks"]]
    return tuple(total)


def insert_live_worker(conn, worker_id):
    """A live worker's row (psycopg ``conn``): a claim takes nothing for a
    worker that has none (LIVE_CLAIMANT in queue/postgresql.py)."""
    conn.execute("INSERT INTO django_tasks_worker (id, hostname, pid, queues, pool, concurrency, "
                 "started_at, last_heartbeat, processed, failed) "
                 "VALUES (%s, 'bench', 1, '[]', 'bench', 1, now(), now(), 0, 0)",
                 [str(worker_id)])


def run_scale(waiting_sizes, results_sizes, n, rounds, behind, explain, keep):
    """Every case's drain, the cases taking turns for ``rounds`` rounds; prints
    each case's median and its ratio to the smallest case. Returns the text."""
    import django

    # explain() imports the queue module's statements: Django's settings first
    # (the checkout's test project, importable whatever the current directory).
    sys.path.insert(0, str(bench.ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    django.setup()

    smallest_waiting, smallest_results = min(waiting_sizes), min(results_sizes)
    cases = [Case(w, smallest_results, behind) for w in sorted(waiting_sizes)]
    cases += [Case(smallest_waiting, r, behind) for r in sorted(results_sizes)
              if r != smallest_results]
    plans = {}
    try:
        for case in cases:
            bench.log(f"creating {case.db}")
            case.create()
        for round_ in range(rounds):
            for case in (reversed(cases) if round_ % 2 else cases):
                bench.log(f"{case.label}: round {round_ + 1}")
                case.prepare_round(n)
                if explain and round_ == rounds - 1:
                    # As the drain finds the tables (rolled back).
                    plans[case.db] = case.explain()
                rate, cpu = case.drain(n, timeout=max(120.0, n / 40))
                case.rates.append(rate)
                case.cpu.append(cpu)
                bench.log(f"  {rate:,.0f} tasks/s; CPU: worker {cpu['worker']:.2f} s, "
                          f"PostgreSQL {cpu['postgres']:.2f} s")
    finally:
        bench.PROCS.stop_all()
        if not keep:
            for case in cases:
                with bench.pg() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{case.db}" WITH (FORCE)')
    return render(cases, plans, n, behind, smallest_waiting, smallest_results)


def render(cases, plans, n, behind, smallest_waiting, smallest_results):
    base = next(c for c in cases if c.waiting == smallest_waiting
                and c.results == smallest_results)

    def per_task(case, role):
        """Median CPU microseconds per drained task."""
        return statistics.median(
            sum(c[r] for r in role) for c in case.cpu) / n * 1e6

    base_rate = statistics.median(base.rates)
    both = ("worker", "postgres")
    base_cpu = per_task(base, both)
    lines = [f"Drain of {n:,} no-op tasks, runworker -P prefork -c 2 (prefetch 4), results "
             f"stored; backlog behind them: {behind}. Medians of {len(base.rates)} rounds.",
             "CPU: µs per task from the worker's ready signal, its processes + this "
             "database's server processes.",
             f"{'waiting':>10} {'results':>11} | {'tasks/s':>8} {'ratio':>6} | "
             f"{'CPU µs/task':>11} {'ratio':>6} {'worker':>7} {'server':>7} | tasks/s rounds"]
    for case in cases:
        rate = statistics.median(case.rates)
        cpu = per_task(case, both)
        lines.append(f"{case.waiting:>10,} {case.results:>11,} | {rate:>8,.0f} "
                     f"{rate / base_rate:>6.2f} | {cpu:>11,.0f} {base_cpu / cpu:>6.2f} "
                     f"{per_task(case, ('worker',)):>7,.0f} {per_task(case, ('postgres',)):>7,.0f}"
                     " | " + " / ".join(f"{r:,.0f}" for r in case.rates))
    lines.append("Ratios vs the first row (above 1: faster / cheaper). Targets (issue 20): "
                 "across the backlogs 0.80-1.20, 10M results vs none 0.90-1.10.")
    if plans:
        lines.append("EXPLAIN (ANALYZE, BUFFERS) before the last round's drain, rolled back: "
                     "the claim (limit 10) and one result's store+ack; shared buffers "
                     "(hit+read, of which read from the OS, dirtied)")
        for case in cases:
            cells = "; ".join(f"{name} {ms:.3f} ms, {buffers} buffers ({read} read, "
                              f"{dirtied} dirtied)"
                              for name, (ms, buffers, read, dirtied) in plans[case.db].items())
            lines.append(f"  {case.label}: {cells}")
    return "\n".join(lines) + "\n"
