#!/usr/bin/env python
"""Benchmark django_tasks against Celery 5 + Redis and django-tasks-db, in one run.

    python bench/run.py            # default sizes (~5-10 minutes)
    python bench/run.py --quick    # smoke run with small counts (~2 minutes)

Every system runs the same workloads one after the other in this run, on this
machine, so the ratios are what to read (the machine is shared and noisy).
Celery and django-tasks-db live in virtualenvs this script creates under
bench/.venvs/ (the main environment stays clean). See bench/README.rst.
"""

import argparse
import atexit
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROJECTS = HERE / "projects"
VENVS = HERE / ".venvs"
RESULTS_FILE = HERE / "last_results.txt"
LOG_DIR = HERE / ".logs"

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
# Every PostgreSQL database the bench creates is named after this prefix, so
# that two bench runs on one server (two checkouts) do not drop each other's.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench")
OURS_DB = f"{DB_PREFIX}_ours"
DTDB_DB = f"{DB_PREFIX}_dtdb"
GRAPHILE_DB = f"{DB_PREFIX}_graphile"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BROKER_DB, RESULT_DB = 12, 13  # Redis databases of the bench only (FLUSHDB'd per run)

CELERY_REQS = ["celery[redis]>=5.4,<6"]
DTDB_REQS = ["django>=6.0,<6.1", "psycopg[binary]>=3.1", "django-tasks-db==0.13.0"]
GRAPHILE_PACKAGE = "graphile-worker@0.18.0"
NODE_DIR = HERE / ".node"
# graphile-worker's drain: its concurrency (jobs in flight in its one Node
# process) as measured before, and with its local queue (one query fetches up
# to this many jobs) and batched completions, its fastest configuration.
GRAPHILE_CONCURRENCY = 8
GRAPHILE_LOCAL_QUEUE = 500

OURS_TABLES = ["django_tasks_queuedmessage", "django_tasks_taskresult", "django_tasks_taskgroup",
               "django_tasks_ratebucket", "django_tasks_uniquelock"]
DTDB_TABLE = "django_tasks_database_dbtaskresult"

# The one-by-one enqueue row is the median of this many rounds, the systems
# taking turns (this machine's speed drifts by 10-20% within minutes).
ENQUEUE_ROUNDS = 3
# Concurrent producers (web processes calling .delay() at once): how many, how
# long their start waits for all of them to be imported and warmed up.
PRODUCERS = 8
PRODUCERS_START_DELAY = 15.0
CONCURRENT_ROUNDS = 2

# The rate-limited drain row: tasks/s (bench_ours.tasks.noop_rated's, set
# through BENCH_RATE_LIMIT; --rate-limit).
RATE_LIMIT = 5000

# The deep-queue drain row: ours with many messages per claim, against
# graphile-worker's local queue (500 jobs per fetch, also not its default).
DEEP_PREFETCH = 128

SIZES = {
    "default": {"enqueue": 20_000, "sleep": 2_000, "latency": 200, "latency_dtdb": 50},
    "quick": {"enqueue": 4_000, "sleep": 500, "latency": 50, "latency_dtdb": 20},
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- processes: every worker in its own process group, all killed on exit ----

class Processes:
    def __init__(self):
        self.running = []  # (Popen, log file)

    def start(self, cmd, env, cwd, name):
        LOG_DIR.mkdir(exist_ok=True)
        logfile = open(LOG_DIR / f"{name}.log", "ab")
        logfile.write(f"\n=== {time.ctime()} {' '.join(map(str, cmd))}\n".encode())
        logfile.flush()
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=logfile,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.running.append((proc, logfile))
        return proc

    def stop(self, procs, grace=15.0):
        """SIGTERM each group (warm shutdown), then SIGKILL whatever is left."""
        tree = set()
        for proc in procs:
            tree |= _tree_pids(proc.pid)
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} ignored SIGTERM for {grace}s: SIGKILL")
        for proc in procs:
            _killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for pid in tree:  # children that left the group
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        for proc, logfile in list(self.running):
            if proc in procs:
                logfile.close()
                self.running.remove((proc, logfile))

    def stop_all(self):
        if self.running:
            self.stop([p for p, _ in self.running], grace=5.0)


def _killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tree_pids(pid):
    try:
        parent = psutil.Process(pid)
        return {pid, *(c.pid for c in parent.children(recursive=True))}
    except psutil.Error:
        return set()


PROCS = Processes()


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_json(cmd, env, cwd, timeout):
    """Run a driver; it prints one JSON object."""
    proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"timed out after {timeout}s: {' '.join(map(str, cmd))}")
    except BaseException:
        _killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


# -- Redis without redis-py (the main env stays clean) ----------------------

class Redis:
    def __init__(self, db):
        self.sock = socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=10)
        self.buf = b""
        self.call("SELECT", db)

    def call(self, *args):
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            a = str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def close(self):
        self.sock.close()


def ensure_redis():
    try:
        Redis(0).close()
        return
    except OSError:
        pass
    log("Redis is not running: starting it")
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
                    "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
                    "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"], check=True)
    for _ in range(50):
        try:
            Redis(0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("Redis did not come up on 127.0.0.1:6379")


def flush_redis():
    for db in (BROKER_DB, RESULT_DB):
        r = Redis(db)
        r.call("FLUSHDB")
        r.close()


# -- PostgreSQL ---------------------------------------------------------------

def pg(dbname="postgres"):
    return psycopg.connect(f"{PG_URL}/{dbname}", autocommit=True)


def recreate_db(name):
    with pg() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def scalar(dbname, sql):
    with pg(dbname) as conn:
        return conn.execute(sql).fetchone()[0]


# -- environments -------------------------------------------------------------

def find_python312():
    for name in ("python3.13", "python3.12"):
        path = shutil.which(name)
        if path and _runs(path):
            return path
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in roots:
        for pattern in ("3.13*", "3.12*"):
            for path in sorted(glob.glob(f"{root}/versions/{pattern}/bin/python"), reverse=True):
                if _runs(path):
                    return path
    raise RuntimeError("django-tasks-db needs Django 6, which needs Python >= 3.12: none found "
                       "(pass --dtdb-python)")


def _runs(path):
    try:
        return subprocess.run([path, "-c", "import sys; assert sys.version_info >= (3, 12)"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_venv(name, python, requirements, check_import):
    venv = VENVS / name
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", check_import],
                                      capture_output=True).returncode == 0:
        return py
    log(f"creating {venv} ({' '.join(requirements)})")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", venv], check=True, timeout=300)
    subprocess.run([py, "-m", "pip", "install", "-q", *requirements], check=True, timeout=900)
    return py


class System:
    """What run.py needs to drive one system."""

    key = name = ""

    def __init__(self, python, cwd, env):
        self.python, self.cwd, self.env = python, cwd, env

    def driver(self, *args, timeout=600):
        return run_json([self.python, self.cwd / "driver.py", *args], self.env, self.cwd, timeout)


class Ours(System):
    key, name = "ours", "django_tasks"

    def __init__(self):
        env = dict(os.environ)
        env.update(DJANGO_SETTINGS_MODULE="bench_ours_settings",
                   DATABASE_URL=f"{PG_URL}/{OURS_DB}",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(PROJECTS / "ours")]),
                   BENCH_RATE_LIMIT=str(RATE_LIMIT))
        super().__init__(sys.executable, PROJECTS / "ours", env)

    def reset(self):
        recreate_db(OURS_DB)
        subprocess.run([self.python, ROOT / "manage.py", "migrate", "-v0"], env=self.env,
                       cwd=ROOT, check=True, timeout=300)

    def truncate(self):
        with pg(OURS_DB) as conn:
            conn.execute(f"TRUNCATE {', '.join(OURS_TABLES)}")

    def analyze(self):
        with pg(OURS_DB) as conn:
            conn.execute("ANALYZE django_tasks_queuedmessage")

    def start_workers(self, tag, ready_dir, pool, concurrency, prefetch=4):
        env = dict(self.env, BENCH_READY_FILE=str(ready_dir / "ready-0"))
        cmd = [self.python, ROOT / "manage.py", "runworker", "-P", pool, "-c", concurrency,
               "--prefetch-multiplier", prefetch, "-l", "WARNING", "--no-banner",
               "-n", f"bench-{tag}@localhost"]
        return [PROCS.start(cmd, env, ROOT, f"ours-{tag}")]

    def done(self):
        return scalar(OURS_DB, "SELECT count(*) FROM django_tasks_taskresult WHERE state='SUCCESS'")

    def last_done(self):
        return scalar(OURS_DB, "SELECT extract(epoch FROM max(date_done))::float8 "
                               "FROM django_tasks_taskresult WHERE state='SUCCESS'")


class OursStoringNothing(Ours):
    """Ours draining ``ignore_result=True`` tasks: no result rows, so done is
    "acknowledged" (the message deleted), timed by a statement trigger that
    notes when each acknowledging statement ran (an append-only table: the
    children's acknowledgements never wait on one another for it)."""

    ACKS = "bench_acks"

    def __init__(self, expected):
        super().__init__()
        self.expected = expected

    def __enter__(self):
        with pg(OURS_DB) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.ACKS} (at timestamptz)")
            conn.execute(f"TRUNCATE {self.ACKS}")
            conn.execute(f"CREATE OR REPLACE FUNCTION bench_note_ack() RETURNS trigger "
                         f"LANGUAGE plpgsql AS $$ BEGIN INSERT INTO {self.ACKS} "
                         "VALUES (clock_timestamp()); RETURN NULL; END $$")
            conn.execute("CREATE TRIGGER bench_note_ack AFTER DELETE ON "
                         "django_tasks_queuedmessage FOR EACH STATEMENT "
                         "EXECUTE FUNCTION bench_note_ack()")
        return self

    def __exit__(self, *exc):
        with pg(OURS_DB) as conn:
            conn.execute("DROP TRIGGER IF EXISTS bench_note_ack ON django_tasks_queuedmessage")
            conn.execute(f"DROP TABLE IF EXISTS {self.ACKS}")

    def done(self):
        # The driver's warm-up messages wait in a queue no worker reads.
        return self.expected - scalar(OURS_DB, "SELECT count(*) FROM django_tasks_queuedmessage "
                                               "WHERE queue <> 'bench_warmup'")

    def last_done(self):
        return scalar(OURS_DB, f"SELECT extract(epoch FROM max(at))::float8 FROM {self.ACKS}")


class CeleryRedis(System):
    key, name = "celery", "celery+redis"

    def __init__(self, python):
        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(PYTHONPATH=str(PROJECTS / "celery"), BENCH_BROKER_DB=str(BROKER_DB),
                   BENCH_RESULT_DB=str(RESULT_DB),
                   BENCH_REDIS=f"redis://{REDIS_HOST}:{REDIS_PORT}")
        super().__init__(python, PROJECTS / "celery", env)
        self.results = None

    def reset(self):
        flush_redis()

    truncate = reset

    def analyze(self):
        pass

    def start_workers(self, tag, ready_dir, pool, concurrency, prefetch=None):
        env = dict(self.env, BENCH_READY_FILE=str(ready_dir / "ready-0"))
        cmd = [self.python, "-m", "celery", "-A", "bench_celery", "worker", "-P", pool,
               "-c", concurrency, "-l", "WARNING", "-n", f"bench-{tag}@localhost"]
        if prefetch is not None:
            cmd += ["--prefetch-multiplier", prefetch]
        return [PROCS.start(cmd, env, self.cwd, f"celery-{tag}")]

    def done(self):
        if self.results is None:
            self.results = Redis(RESULT_DB)
        return self.results.call("DBSIZE")

    def last_done(self):
        return self.driver("lastdone", timeout=120)["t_end"]


class DjangoTasksDB(System):
    key, name = "dtdb", "django-tasks-db"

    def __init__(self, python):
        env = dict(os.environ)
        env.update(DJANGO_SETTINGS_MODULE="bench_dtdb.settings",
                   DATABASE_URL=f"{PG_URL}/{DTDB_DB}", PYTHONPATH=str(PROJECTS / "dtdb"))
        super().__init__(python, PROJECTS / "dtdb", env)

    def reset(self):
        recreate_db(DTDB_DB)
        subprocess.run([self.python, self.cwd / "manage.py", "migrate", "-v0"], env=self.env,
                       cwd=self.cwd, check=True, timeout=300)

    def truncate(self):
        with pg(DTDB_DB) as conn:
            conn.execute(f"TRUNCATE {DTDB_TABLE}")

    def analyze(self):
        with pg(DTDB_DB) as conn:
            conn.execute(f"ANALYZE {DTDB_TABLE}")

    def start_workers(self, tag, ready_dir, pool, concurrency, prefetch=None):
        """db_worker runs one task at a time: one process per slot."""
        procs = []
        for i in range(concurrency):
            env = dict(self.env, BENCH_READY_FILE=str(ready_dir / f"ready-{i}"))
            cmd = [self.python, self.cwd / "manage.py", "bench_db_worker", "--verbosity", "0",
                   "--no-startup-delay", "--worker-id", f"bench-{tag}-{i}"]
            procs.append(PROCS.start(cmd, env, self.cwd, f"dtdb-{tag}"))
        return procs

    def done(self):
        return scalar(DTDB_DB, f"SELECT count(*) FROM {DTDB_TABLE} WHERE status='SUCCESSFUL'")

    def last_done(self):
        return scalar(DTDB_DB, f"SELECT extract(epoch FROM max(finished_at))::float8 "
                               f"FROM {DTDB_TABLE} WHERE status='SUCCESSFUL'")


class Graphile(System):
    """graphile-worker (Node.js): stores no results; a job is deleted when done."""

    key, name = "graphile", "graphile-worker"

    def __init__(self, node):
        env = dict(os.environ, BENCH_DATABASE_URL=f"{PG_URL}/{GRAPHILE_DB}",
                   NODE_PATH=str(NODE_DIR / "node_modules"))
        super().__init__(node, PROJECTS / "graphile", env)
        self.local_queue = GRAPHILE_LOCAL_QUEUE
        self.expected = 0
        self.done_file = None

    def driver(self, command, *args, timeout=600):
        options = dict(zip(args[::2], args[1::2], strict=True))
        self.expected = int(options["--n"])
        node_command = "enqueue" if options.get("--mode", "single") == "single" else "bulk"
        out = run_json([self.python, self.cwd / "bench.js", node_command, "--n", self.expected,
                        "--task", options.get("--task", "noop")], self.env, self.cwd, timeout)
        return out

    def reset(self):
        recreate_db(GRAPHILE_DB)
        run_json([self.python, self.cwd / "bench.js", "migrate"], self.env, self.cwd, 120)

    def truncate(self):
        with pg(GRAPHILE_DB) as conn:
            conn.execute("TRUNCATE graphile_worker._private_jobs, "
                         "graphile_worker._private_job_queues CASCADE")

    def analyze(self):
        with pg(GRAPHILE_DB) as conn:
            conn.execute("ANALYZE graphile_worker._private_jobs")

    def start_workers(self, tag, ready_dir, pool, concurrency, prefetch=None):
        """One Node process, GRAPHILE_CONCURRENCY jobs at a time (the 8-thread
        rows: 8), whatever the pool of the others' row."""
        self.done_file = ready_dir / "done"
        env = dict(self.env, BENCH_READY_FILE=str(ready_dir / "ready-0"),
                   BENCH_DONE_FILE=str(self.done_file), BENCH_EXPECTED=str(self.expected))
        cmd = [self.python, self.cwd / "bench.js", "work",
               "--concurrency", max(concurrency, GRAPHILE_CONCURRENCY),
               "--local-queue", self.local_queue]
        return [PROCS.start(cmd, env, self.cwd, f"graphile-{tag}")]

    def done(self):
        waiting = scalar(GRAPHILE_DB, "SELECT count(*) FROM graphile_worker._private_jobs")
        return self.expected - waiting

    def last_done(self):
        # Written by the worker at the expected-th completion; the jobs table
        # may empty a moment before (completions are batched after the delete
        # is sent), so wait for it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.done_file.exists() and self.done_file.read_text().strip():
                return float(self.done_file.read_text())
            time.sleep(0.01)
        return None


def ensure_node_packages():
    """graphile-worker from the npm registry into bench/.node/ (first use only)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("graphile-worker needs Node.js (node) on PATH")
    if not (NODE_DIR / "node_modules" / "graphile-worker").exists():
        log(f"installing {GRAPHILE_PACKAGE} into {NODE_DIR}")
        NODE_DIR.mkdir(exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", NODE_DIR, "--no-audit", "--no-fund",
                        "--silent", GRAPHILE_PACKAGE], check=True, timeout=600)
    return node


# -- measurements -------------------------------------------------------------

def wait_ready(procs, ready_dir, count, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        files = [ready_dir / f"ready-{i}" for i in range(count)]
        if all(f.exists() and f.read_text().strip() for f in files):
            return max(float(f.read_text()) for f in files)
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker pid {proc.pid} exited with {proc.returncode} before "
                                   f"it was ready (see {LOG_DIR})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready after {timeout}s (see {LOG_DIR})")
        time.sleep(0.02)


def tree_memory(procs):
    """RSS and PSS (MB) of the worker process trees: parents plus children."""
    rss = pss = 0
    for proc in procs:
        for pid in _tree_pids(proc.pid):
            try:
                info = psutil.Process(pid).memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20


def drain(system, tag, expected, pool, concurrency, prefetch=None, timeout=None):
    """Start workers on a full queue; time from ready to the last result stored."""
    system.analyze()
    ready_dir = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    kwargs = {} if prefetch is None else {"prefetch": prefetch}
    procs = system.start_workers(tag, ready_dir, pool, concurrency, **kwargs)
    try:
        t_ready = wait_ready(procs, ready_dir, len(procs))
        rss_peak = pss_peak = 0.0
        timeout = timeout or max(120.0, expected / 40)
        deadline = time.monotonic() + timeout
        done = 0
        while True:
            rss, pss = tree_memory(procs)
            rss_peak, pss_peak = max(rss_peak, rss), max(pss_peak, pss)
            done = system.done()
            if done >= expected:
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{system.name} worker exited ({proc.returncode}) "
                                       f"after {done}/{expected} tasks")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.name}: only {done}/{expected} tasks done after "
                                   f"{timeout:.0f}s")
            time.sleep(0.2)
        t_end = system.last_done() or time.time()
    finally:
        PROCS.stop(procs)
        shutil.rmtree(ready_dir, ignore_errors=True)
    seconds = t_end - t_ready
    return {"rate": expected / seconds, "seconds": seconds, "rss": rss_peak, "pss": pss_peak}


def latency(system, n, pool, concurrency):
    ready_dir = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    procs = system.start_workers("latency", ready_dir, pool, concurrency)
    try:
        wait_ready(procs, ready_dir, len(procs))
        time.sleep(0.5)  # let it settle: idle, waiting for work
        out = system.driver("latency", "--n", n, timeout=60 + n * 3)
    finally:
        PROCS.stop(procs)
        shutil.rmtree(ready_dir, ignore_errors=True)
    return {"start_p50": pct(out["start"], 50), "start_p99": pct(out["start"], 99),
            "result_p50": pct(out["result"], 50), "result_p99": pct(out["result"], 99)}


def pct(values, p):
    values = sorted(values)
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000


def enqueue(system, n, mode="single", task="noop"):
    out = system.driver("enqueue", "--n", n, "--mode", mode, "--task", task, timeout=600)
    return {"rate": out["n"] / out["seconds"], "seconds": out["seconds"], "info": out}


def concurrent_enqueue(system, n, producers, mode="single"):
    """``n`` calls from ``producers`` client processes starting at one moment;
    the rate is over the span from that moment to the last one's end."""
    from concurrent.futures import ThreadPoolExecutor

    start_at = time.time() + PRODUCERS_START_DELAY
    share = n // producers
    with ThreadPoolExecutor(producers) as pool:
        outs = list(pool.map(lambda _: system.driver(
            "enqueue", "--n", share, "--mode", mode, "--start-at", f"{start_at:.3f}",
            timeout=600), range(producers)))
    late = max(out["started"] for out in outs) - start_at
    if late > 0.5:
        raise RuntimeError(f"a producer started {late:.1f}s late: raise PRODUCERS_START_DELAY")
    return {"rate": share * producers / (max(out["ended"] for out in outs) - start_at)}


# -- the run ------------------------------------------------------------------

class Results:
    def __init__(self):
        self.values = {}   # (row, system key) -> number or text
        self.errors = []
        self.enqueue_rounds = {}  # system key -> one-by-one enqueue rates, in order
        self.concurrent_rounds = {}  # label -> concurrent producers' rates, in order
        self.unique_written = "(not run)"  # what the unique sends wrote

    def set(self, row, key, value):
        self.values[(row, key)] = value

    def attempt(self, what, row_keys, function):
        """Run one measurement; a failure is reported in its cells, the run goes on."""
        log(what)
        t0 = time.monotonic()
        try:
            result = function()
            log(f"  ... {time.monotonic() - t0:.1f}s")
            return result
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            self.errors.append(f"{what}: {exc}")
            log(f"  FAILED: {exc}")
            for row, key in row_keys:
                self.values[(row, key)] = "failed"
            return None


def run_system_workloads(system, sizes, res, rows):
    n, n_sleep, n_lat = sizes["enqueue"], sizes["sleep"], sizes["latency"]  # noqa: F841
    key = system.key
    system.reset()

    # 1 + 2: enqueue one by one, then drain those with 2 slots.
    r = res.attempt(f"{system.name}: enqueue {n} one by one", [(rows["enq"], key)],
                    lambda: enqueue(system, n))
    if r:
        res.set(rows["enq"], key, r["rate"])
        res.enqueue_rounds.setdefault(key, []).append(r["rate"])
        d = res.attempt(f"{system.name}: drain {n} no-op tasks, prefork/2 slots",
                        [(rows["drain"], key), (rows["rss"], key), (rows["pss"], key)],
                        lambda: drain(system, "drain", n, "prefork", 2))
        if d:
            res.set(rows["drain"], key, d["rate"])
            res.set(rows["rss"], key, d["rss"])
            res.set(rows["pss"], key, d["pss"])

    if key == "ours":
        # .delay() committing without the WAL flush (SYNCHRONOUS_ENQUEUE off).
        system.truncate()
        r = res.attempt(f"{system.name}: enqueue {n} one by one, SYNCHRONOUS_ENQUEUE off",
                        [(rows["enq_relaxed"], key)],
                        lambda: enqueue(system, n, "single-relaxed"))
        if r:
            res.set(rows["enq_relaxed"], key, r["rate"])
            # Those drained as graphile-worker's local queue drains: many
            # messages per claim (an opt-in there too).
            d = res.attempt(f"{system.name}: drain {n} no-op tasks, prefork/2, "
                            f"prefetch {DEEP_PREFETCH}", [(rows["drain_deep"], key)],
                            lambda: drain(system, "drain_deep", n, "prefork", 2,
                                          prefetch=DEEP_PREFETCH))
            if d:
                res.set(rows["drain_deep"], key, d["rate"])
        # The same, storing no results (ignore_result=True): what
        # graphile-worker's drain does, which keeps none.
        system.truncate()
        r = res.attempt(f"{system.name}: enqueue() of {n} ignore_result messages",
                        [(rows["drain_nothing"], key)],
                        lambda: enqueue(system, n, "bulk", "noop_ignored"))
        if r:
            def drain_storing_nothing():
                with OursStoringNothing(n) as storing_nothing:
                    return drain(storing_nothing, "drain_nothing", n, "prefork", 2,
                                 prefetch=DEEP_PREFETCH)

            d = res.attempt(f"{system.name}: drain {n} ignore_result no-op tasks, prefork/2, "
                            f"prefetch {DEEP_PREFETCH}", [(rows["drain_nothing"], key)],
                            drain_storing_nothing)
            if d:
                res.set(rows["drain_nothing"], key, d["rate"])
        # Unique sends: n over 1,000 keys, one by one (issue 19).
        system.truncate()
        r = res.attempt(f"{system.name}: {n} unique sends over 1,000 keys",
                        [(rows["unique"], key)], lambda: enqueue(system, n, "unique"))
        if r:
            res.set(rows["unique"], key, r["rate"])
            written = r["info"]["written"]
            res.unique_written = (f"{r['info']['distinct_ids']:,} messages enqueued; rows "
                                  "written (inserted+updated+deleted): queue "
                                  f"{written.get('django_tasks_queuedmessage', 0):,}, locks "
                                  f"{written.get('django_tasks_uniquelock', 0):,}")
        # The bulk paths: group() (the canvas API), and one enqueue() of
        # build_message()s; the latter's tasks are drained with prefetch 1.
        system.truncate()
        r = res.attempt(f"{system.name}: group of {n} apply_async()", [(rows["group"], key)],
                        lambda: enqueue(system, n, "group"))
        if r:
            res.set(rows["group"], key, r["rate"])
        system.truncate()
        r = res.attempt(f"{system.name}: enqueue() of {n} messages in one statement",
                        [(rows["bulk"], key)], lambda: enqueue(system, n, "bulk"))
        if r:
            res.set(rows["bulk"], key, r["rate"])
            d = res.attempt(f"{system.name}: drain {n} no-op tasks, prefork/2, prefetch 1",
                            [(rows["drain4"], key)],
                            lambda: drain(system, "drain4", n, "prefork", 2, prefetch=1))
            if d:
                res.set(rows["drain4"], key, d["rate"])
        # The same drain under a global rate limit: how close to it.
        system.truncate()
        r = res.attempt(f"{system.name}: enqueue() of {n} rate-limited messages",
                        [(rows["rated"], key), (rows["rated_ratio"], key)],
                        lambda: enqueue(system, n, "bulk", "noop_rated"))
        if r:
            d = res.attempt(f"{system.name}: drain {n} no-op tasks at rate_limit={RATE_LIMIT}/s",
                            [(rows["rated"], key), (rows["rated_ratio"], key)],
                            lambda: drain(system, "rated", n, "prefork", 2))
            if d:
                res.set(rows["rated"], key, d["rate"])
                res.set(rows["rated_ratio"], key, d["rate"] / RATE_LIMIT)

    # 3: sleeping tasks on 8 threads.
    system.truncate()
    mode = "bulk" if key == "ours" else "single"
    r = res.attempt(f"{system.name}: enqueue {n_sleep} sleep10 tasks", [(rows["sleep"], key)],
                    lambda: enqueue(system, n_sleep, mode, "sleep10"))
    if r:
        d = res.attempt(f"{system.name}: drain {n_sleep} sleep10 tasks, 8 threads",
                        [(rows["sleep"], key)],
                        lambda: drain(system, "threads", n_sleep, "threads", 8))
        if d:
            res.set(rows["sleep"], key, d["rate"])
    if key == "ours":
        limited_sleep(system, n_sleep, res, rows["sleep_limited"])

    # 4: latency, one task at a time to an idle worker. db_worker polls once a
    # second, so each of its tasks takes ~1 s: fewer of them keep the run short.
    if key == "dtdb":
        n_lat = min(n_lat, sizes["latency_dtdb"])
    system.truncate()
    lat = res.attempt(f"{system.name}: latency of {n_lat} single tasks",
                      [(rows[k], key) for k in ("s50", "s99", "r50", "r99")],
                      lambda: latency(system, n_lat, "prefork", 2))
    if lat:
        for k, v in (("s50", "start_p50"), ("s99", "start_p99"), ("r50", "result_p50"),
                     ("r99", "result_p99")):
            res.set(rows[k], key, lat[v])
    system.truncate()


def run_graphile_workloads(system, sizes, res, rows):
    """graphile-worker's rows: the one-by-one enqueue (addJob), the bulk one
    (addJobs, in the group row), the drain with its local queue and with its
    defaults, and the 10 ms tasks. It has no result to wait on: no latency."""
    n, n_sleep = sizes["enqueue"], sizes["sleep"]
    key = system.key
    system.reset()
    r = res.attempt(f"{system.name}: addJob() {n} one by one", [(rows["enq"], key)],
                    lambda: enqueue(system, n))
    if r:
        res.set(rows["enq"], key, r["rate"])
        res.enqueue_rounds.setdefault(key, []).append(r["rate"])
        system.local_queue = GRAPHILE_LOCAL_QUEUE
        d = res.attempt(f"{system.name}: drain {n} no-op jobs, local queue "
                        f"{GRAPHILE_LOCAL_QUEUE}",
                        [(rows["drain"], key), (rows["rss"], key), (rows["pss"], key)],
                        lambda: drain(system, "drain", n, "prefork", 2))
        if d:
            res.set(rows["drain"], key, d["rate"])
            res.set(rows["rss"], key, d["rss"])
            res.set(rows["pss"], key, d["pss"])
    system.truncate()
    r = res.attempt(f"{system.name}: addJobs() of {n}", [(rows["group"], key)],
                    lambda: enqueue(system, n, "bulk"))
    if r:
        res.set(rows["group"], key, r["rate"])
        system.local_queue = 0
        d = res.attempt(f"{system.name}: drain {n} no-op jobs, its defaults",
                        [(rows["drain_defaults"], key)],
                        lambda: drain(system, "drain-defaults", n, "prefork", 2))
        if d:
            res.set(rows["drain_defaults"], key, d["rate"])
    system.truncate()
    r = res.attempt(f"{system.name}: addJobs() of {n_sleep} sleep10 jobs", [(rows["sleep"], key)],
                    lambda: enqueue(system, n_sleep, "bulk", "sleep10"))
    if r:
        d = res.attempt(f"{system.name}: drain {n_sleep} sleep10 jobs, concurrency 8",
                        [(rows["sleep"], key)],
                        lambda: drain(system, "sleep", n_sleep, "threads", 8))
        if d:
            res.set(rows["sleep"], key, d["rate"])
    system.truncate()


def limited_sleep(system, n_sleep, res, row):
    """The sleep row under concurrency_limit=2 over 20 keys (ours only): 40
    slots, so the 8 threads bound it as in the sleep row."""
    system.truncate()
    r = res.attempt(f"{system.name}: enqueue {n_sleep} sleep10_limited tasks", [(row, "ours")],
                    lambda: enqueue(system, n_sleep, "limited", "sleep10_limited"))
    if r:
        d = res.attempt(f"{system.name}: drain {n_sleep} sleep10_limited tasks, 8 threads",
                        [(row, "ours")],
                        lambda: drain(system, "limited", n_sleep, "threads", 8))
        if d:
            res.set(row, "ours", d["rate"])


def more_enqueue_rounds(systems, n, res, row):
    """The one-by-one enqueue again, the systems in turn (order reversed every
    round); the row then shows each system's median."""
    for round_ in range(1, ENQUEUE_ROUNDS):
        for system in (reversed(systems) if round_ % 2 else systems):
            if system.key not in res.enqueue_rounds:  # its first round failed
                continue
            system.truncate()
            r = res.attempt(f"{system.name}: enqueue {n} one by one, round {round_ + 1}",
                            [(row, system.key)], lambda s=system: enqueue(s, n))
            if r is None:
                res.enqueue_rounds.pop(system.key)
                continue
            res.enqueue_rounds[system.key].append(r["rate"])
    for system in systems:
        system.truncate()
    for key, rates in res.enqueue_rounds.items():
        res.set(row, key, statistics.median(rates))


def concurrent_enqueue_rounds(systems, n, res, row, atomic_row):
    """PRODUCERS processes enqueueing at once, ours and Celery taking turns
    (django-tasks-db has no comparable fast path to load: left out); ours
    also with each call in its own transaction.atomic() (``atomic_row``)."""
    systems = [s for s in systems if s.key in ("ours", "celery")]
    # (system, driver mode, the label of its rounds in the notes, its cell)
    plain = [(s, "single", s.key, (row, s.key)) for s in systems]
    in_atomic = [(s, "single-atomic", f"{s.key} in atomic()", (atomic_row, s.key))
                 for s in systems if s.key == "ours"]
    runs = plain[:1] + in_atomic + plain[1:]
    for round_ in range(CONCURRENT_ROUNDS):
        for system, mode, label, cell in (reversed(runs) if round_ % 2 else runs):
            system.truncate()
            r = res.attempt(f"{label}: enqueue {n} from {PRODUCERS} processes at once, "
                            f"round {round_ + 1}", [cell],
                            lambda s=system, m=mode: concurrent_enqueue(s, n, PRODUCERS, m))
            if r is not None:
                res.concurrent_rounds.setdefault(label, []).append(r["rate"])
    for system in systems:
        system.truncate()
    for _, _, label, cell in runs:
        if label in res.concurrent_rounds:
            res.set(*cell, statistics.median(res.concurrent_rounds[label]))


def machine_info(celery_py, dtdb_py, node):
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    pg_version = scalar("postgres", "SHOW server_version")
    try:
        r = Redis(0)
    except OSError:  # --scale runs without Redis
        redis_version = "not running"
    else:
        info = r.call("INFO", "server")
        r.close()
        redis_version = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                              if line.startswith("redis_version:")), "unknown")

    def version(py, code):
        if py is None:
            return "n/a"
        return subprocess.run([py, "-c", code], capture_output=True, text=True).stdout.strip()

    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu, "cores": os.cpu_count(), "ram": ram,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "python_celery": version(celery_py, "import platform, celery, kombu, redis; print("
                                 "platform.python_version(), 'celery', celery.__version__, "
                                 "'kombu', kombu.__version__, 'redis-py', redis.__version__)"),
        "python_dtdb": version(dtdb_py, "import platform, django; from importlib.metadata import "
                               "version; print(platform.python_version(), 'Django', "
                               "django.__version__, 'django-tasks-db', "
                               "version('django-tasks-db'))"),
        "django_main": version(sys.executable, "import django; print(django.__version__)"),
        "graphile": ("n/a" if node is None else subprocess.run(
            [node, "-e", "console.log('Node', process.version, 'graphile-worker', "
             "require('graphile-worker/package.json').version)"], capture_output=True, text=True,
            env=dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))).stdout.strip()),
        "postgresql": pg_version, "redis": redis_version,
        "git": subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip() or "unknown",
        "tree": source_fingerprint(),
    }


def source_fingerprint():
    """A hash of django_tasks/**/*.py as run (the working tree may be uncommitted)."""
    import hashlib
    digest = hashlib.sha1()
    for path in sorted((ROOT / "django_tasks").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def fmt(value, digits):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.2f}x"
    return "-"


def render(res, rows, order, info, sizes, elapsed, quick, keys):
    names = {"ours": "ours", "celery": "celery+redis", "dtdb": "django-tasks-db",
             "graphile": "graphile-worker"}
    others = [k for k in keys if k != "ours"]
    header = ["workload", *(names[k] for k in keys), *(f"ours/{k}" for k in others)]
    table = []
    for key in order:
        label, digits = rows[key]
        values = {k: res.values.get((label, k)) for k in keys}
        table.append([label, *(fmt(values[k], digits) for k in keys),
                      *(ratio(values.get("ours"), values[k]) for k in others)])
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in table]
    n, n_sleep, n_lat = sizes["enqueue"], sizes["sleep"], sizes["latency"]  # noqa: F841
    rounds = "\n".join(f"    {key}: " + " / ".join(f"{rate:,.0f}" for rate in rates)
                       for key, rates in res.enqueue_rounds.items())
    concurrent = "\n".join(f"    {key}: " + " / ".join(f"{rate:,.0f}" for rate in rates)
                           for key, rates in res.concurrent_rounds.items())
    notes = f"""
Run: {info['date']}{' (--quick)' if quick else ''}, {elapsed:.0f} s in all
Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM,
  load average at start {info['load']}
ours: Python {info['python']}, Django {info['django_main']},
  django_tasks from {ROOT} at {info['git']}
  (sources sha1 {info['tree']})
celery: Python {info['python_celery']}
django-tasks-db: Python {info['python_dtdb']}
graphile-worker: {info['graphile']}
PostgreSQL {info['postgresql']}, Redis {info['redis']} (loopback)

Ratios are ours/other: above 1x is better for ours in tasks/s rows, worse in ms and MB rows.
Enqueue: {n:,} calls in one client process, each its own transaction/round trip
  (ours .delay(), celery .delay(), dtdb .enqueue()); bulk rows: ours only, one transaction.
  One by one: {ENQUEUE_ROUNDS} rounds, the systems taking turns; the row is the median.
{rounds}
  {PRODUCERS} processes at once: {n:,} calls split among {PRODUCERS} client processes (as web
  workers would), started together after their warm-up; {CONCURRENT_ROUNDS} rounds, ours and
  Celery taking turns; the row is the median. Rounds:
{concurrent}
  "each in atomic()": every .delay() inside its own transaction.atomic(), as a view under
  ATOMIC_REQUESTS sends it (its NOTIFY in that transaction); ours only.
  "SYNCHRONOUS_ENQUEUE off": each .delay() commits without waiting for the WAL flush.
  Unique sends: apply_async(unique_key=...) one by one cycling over 1,000 keys, no worker
  running: the first send of each key writes, the rest return its AsyncResult.
  {res.unique_written}
Drain: {n:,} queued no-op tasks, results stored, timed from the worker's ready signal to the
  last stored result's timestamp. ours `runworker -P prefork -c 2` (prefetch 4 unless said);
  celery `worker -P prefork -c 2` (its default prefetch multiplier, 4); django-tasks-db:
  db_worker runs one task at a time, so 2 db_worker processes (8 for the threads row).
  The prefetch {DEEP_PREFETCH} row (`--prefetch-multiplier {DEEP_PREFETCH}`: each child claims up
  to {DEEP_PREFETCH} messages at a time) is ours' counterpart of graphile-worker's local queue.
  "ignore_result": tasks of @task(ignore_result=True), which store no result (as graphile-worker
  keeps none), timed to the last acknowledgement (a bench-only statement trigger notes each).
Rate limit: the drain of {n:,} no-op tasks of @task(rate_limit="{RATE_LIMIT}/s"), ours only
  (Celery's rate_limit is per worker process, not one limit for all of them).
Sleep: {n_sleep:,} tasks sleeping 10 ms, ours/celery `-P threads -c 8` (ideal: 800/s).
  concurrency_limit=2 over 20 keys: the same, at most 2 running per key (40 slots > 8
  threads, so the same ideal); Celery has no such limit.
Latency: {n_lat} tasks ({sizes['latency_dtdb']} for django-tasks-db, whose worker polls every
  second) one at a time, 20 ms apart, to an idle 2-slot worker; start = time.time() in the
  task minus time.time() just before .delay(); result = when get() returned (ours:
  LISTEN/NOTIFY, celery: Redis pub/sub; django.tasks has no blocking get, so the client
  polls every 2 ms; db_worker polls for work every --interval, default 1 s).
graphile-worker stores no results (a job is deleted when done): its drain is timed from its
  ready file to its expected-th completion; one Node process, concurrency
  {GRAPHILE_CONCURRENCY}; "drain" rows with its local queue ({GRAPHILE_LOCAL_QUEUE} jobs per
  fetch) and batched completions, "its defaults" without; the group row is addJobs() in
  batches of 5,000; the sleep row runs setTimeout(10 ms) jobs, concurrency 8.
Memory: peak sum over the worker process trees (parent + children) during the no-op drain;
  RSS counts pages shared by forked children once per process, PSS splits them.
"""
    text = "\n".join(out) + "\n" + notes
    if res.errors:
        text += "\nFailures:\n" + "\n".join(f"  - {e}" for e in res.errors) + "\n"
    return text


def run_scale(args):
    """``--scale``: the drain behind deep queues and many results (bench/drain_scale.py)."""
    # drain_scale imports this module as ``run``: the same one, not a second copy.
    sys.modules.setdefault("run", sys.modules[__name__])
    import drain_scale

    return _run_alone(lambda: drain_scale.run_scale(
        [int(w) for w in args.waiting.split(",")], [int(r) for r in args.results.split(",")],
        args.n, args.rounds, args.behind, args.explain, args.keep), "last_scale_results.txt")


def run_workers(args):
    """``--workers``: the drain by 1, 2, 4, 8 worker processes (bench/drain_workers.py)."""
    sys.modules.setdefault("run", sys.modules[__name__])
    import drain_workers

    return _run_alone(lambda: drain_workers.run_workers(
        [int(c) for c in args.workers.split(",")], args.n, args.rounds, args.prefetch),
        "last_workers_results.txt")


def _run_alone(measure, results_name):
    """A measurement of ours alone: ``measure()``'s text, then the run's
    machine and load, printed and saved to ``bench/<results_name>``."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(PROCS.stop_all)
    started = time.monotonic()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = measure()
    info = machine_info(None, None, None)
    text += (f"\nRun: {info['date']}, {time.monotonic() - started:.0f} s in all; load average "
             f"at start {load}, at end {info['load']}\n"
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM; "
             f"PostgreSQL {info['postgresql']}\n"
             f"django_tasks at {info['git']} (sources sha1 {info['tree']})\n")
    print(text)
    (HERE / results_name).write_text(text)
    return 0


def main():
    global RATE_LIMIT
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (~2 minutes)")
    parser.add_argument("--systems", default="ours,celery,dtdb,graphile",
                        help="comma-separated subset of ours,celery,dtdb,graphile")
    parser.add_argument("--dtdb-python", default=None,
                        help="Python >= 3.12 for the django-tasks-db venv (default: found)")
    parser.add_argument("--rate-limit", type=int, default=RATE_LIMIT,
                        help=f"tasks/s of the rate-limited drain row (default {RATE_LIMIT}); "
                             "below the plain drain's rate on a loaded machine")
    scale = parser.add_argument_group(
        "--scale", "ours alone: the drain with a deep queue and a large result table "
        "(bench/drain_scale.py); the other options above do not apply")
    scale.add_argument("--scale", action="store_true",
                       help="the drain of --n tasks behind each --waiting backlog, and with "
                            "each --results count of stored results")
    scale.add_argument("--waiting", default="1000,100000,1000000",
                       help="backlog sizes, comma-separated (default 1000,100000,1000000)")
    scale.add_argument("--results", default="0,10000000",
                       help="stored results, comma-separated (default 0,10000000)")
    scale.add_argument("--n", type=int, default=20_000, help="tasks drained per round")
    scale.add_argument("--rounds", type=int, default=3,
                       help="rounds, the cases taking turns; each case's median is shown")
    scale.add_argument("--behind", choices=["priority", "fifo"], default="priority",
                       help="the backlog: a lower priority (default) or the same, sent later")
    scale.add_argument("--explain", action="store_true",
                       help="also the claim's and the store's EXPLAIN (ANALYZE, BUFFERS)")
    scale.add_argument("--keep", action="store_true",
                       help="keep the bench_scale_* databases (dropped by default)")
    workers = parser.add_argument_group(
        "--workers", "ours alone: the drain by several worker processes on one PostgreSQL, "
        "against its commit rate (bench/drain_workers.py); uses --n and --rounds too")
    workers.add_argument("--workers", default=None, metavar="COUNTS",
                         help="worker process counts, comma-separated (e.g. 1,2,4,8)")
    workers.add_argument("--prefetch", type=int, default=4,
                         help="each worker's --prefetch-multiplier (default 4)")
    args = parser.parse_args()
    if args.scale and args.workers:
        parser.error("--scale and --workers are separate runs: give one")
    if args.scale:
        return run_scale(args)
    if args.workers:
        return run_workers(args)
    RATE_LIMIT = args.rate_limit
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(PROCS.stop_all)
    started = time.monotonic()
    sizes = SIZES["quick" if args.quick else "default"]
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    n, n_sleep, n_lat = sizes["enqueue"], sizes["sleep"], sizes["latency"]  # noqa: F841

    ensure_redis()
    celery_py = dtdb_py = None
    if "celery" in wanted:
        celery_py = ensure_venv("celery", sys.executable, CELERY_REQS,
                                "import celery, redis")
    if "dtdb" in wanted:
        dtdb_py = ensure_venv("dtdb", args.dtdb_python or find_python312(), DTDB_REQS,
                              "import django, django_tasks_db; "
                              "assert django.VERSION[:2] == (6, 0)")
    node = ensure_node_packages() if "graphile" in wanted else None
    info = machine_info(celery_py, dtdb_py, node)

    rows = {
        "enq": (f"enqueue {n:,} one by one, median of {ENQUEUE_ROUNDS} (tasks/s)", 0),
        "enq_many": (f"enqueue {n:,}: {PRODUCERS} processes at once, .delay() (tasks/s)", 0),
        "enq_many_atomic": (f"enqueue {n:,}: {PRODUCERS} processes at once, ours each in "
                            "atomic() (tasks/s; others as above)", 0),
        "enq_relaxed": (f"enqueue {n:,} one by one, ours SYNCHRONOUS_ENQUEUE off "
                        "(tasks/s; others as above)", 0),
        "bulk": (f"enqueue {n:,} bulk: one enqueue() (tasks/s)", 0),
        "unique": (f"{n:,} sends of 1,000 distinct unique keys, ours (sends/s)", 0),
        "group": (f"enqueue {n:,} bulk: group().apply_async() (tasks/s)", 0),
        "drain": (f"drain {n:,} no-op, 2 slots (tasks/s)", 0),
        "drain4": (f"drain {n:,} no-op, 2 slots, ours prefetch 1 (tasks/s; others as above)", 0),
        "drain_deep": (f"drain {n:,} no-op, 2 slots, ours prefetch {DEEP_PREFETCH} (tasks/s; "
                       "others as the drain row)", 0),
        "drain_nothing": (f"drain {n:,} no-op, 2 slots, ours prefetch {DEEP_PREFETCH}, "
                          "ignore_result (tasks/s; others as the drain row)", 0),
        "drain_defaults": (f"drain {n:,} no-op, graphile-worker's defaults (tasks/s; "
                           "others as the drain row)", 0),
        "rated": (f"drain {n:,} no-op, 2 slots, rate_limit={RATE_LIMIT}/s (tasks/s; ours)", 0),
        "rated_ratio": ("  the same, achieved rate / rate_limit (target: 0.95-1.00)", 3),
        "sleep": (f"{n_sleep:,} x sleep 10 ms, 8 threads (tasks/s)", 0),
        "sleep_limited": (f"{n_sleep:,} x sleep 10 ms, 8 threads, ours concurrency_limit=2 "
                          "over 20 keys (tasks/s)", 0),
        "s50": ("latency enqueue->start p50 (ms)", 1),
        "s99": ("latency enqueue->start p99 (ms)", 1),
        "r50": ("latency enqueue->result p50 (ms)", 1),
        "r99": ("latency enqueue->result p99 (ms)", 1),
        "rss": ("worker RSS peak, no-op drain (MB)", 0),
        "pss": ("worker PSS peak, no-op drain (MB)", 0),
    }
    order = ["enq", "enq_many", "enq_many_atomic", "enq_relaxed", "unique", "bulk", "group",
             "drain", "drain4", "drain_deep", "drain_nothing", "drain_defaults", "rated",
             "rated_ratio", "sleep", "sleep_limited", "s50", "s99", "r50", "r99", "rss", "pss"]
    row_labels = {k: v[0] for k, v in rows.items()}

    res = Results()
    systems = []
    if "ours" in wanted:
        systems.append(Ours())
    if "celery" in wanted:
        systems.append(CeleryRedis(celery_py))
    if "dtdb" in wanted:
        systems.append(DjangoTasksDB(dtdb_py))
    if "graphile" in wanted:
        systems.append(Graphile(node))
    try:
        for system in systems:
            try:
                if system.key == "graphile":
                    run_graphile_workloads(system, sizes, res, row_labels)
                else:
                    run_system_workloads(system, sizes, res, row_labels)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # set-up of a whole system failed
                res.errors.append(f"{system.name}: {exc}")
                log(f"{system.name} FAILED: {exc}")
        more_enqueue_rounds(systems, n, res, row_labels["enq"])
        concurrent_enqueue_rounds(systems, n, res, row_labels["enq_many"],
                                  row_labels["enq_many_atomic"])
        # The others' drain row is the comparison for ours at prefetch 1.
        for key in ("celery", "dtdb", "graphile", "ours"):
            for row, same_as in (("drain4", "drain"), ("drain_deep", "drain"),
                                 ("drain_nothing", "drain"),
                                 ("enq_relaxed", "enq"),
                                 ("enq_many_atomic", "enq_many"), ("drain_defaults", "drain")):
                if key == "ours" and row != "drain_defaults" or \
                        key == "graphile" and row == "drain_defaults":
                    continue
                if (row_labels[same_as], key) in res.values:
                    res.values[(row_labels[row], key)] = res.values[(row_labels[same_as], key)]
    finally:
        PROCS.stop_all()
    text = render(res, rows, order, info, sizes, time.monotonic() - started, args.quick,
                  [s.key for s in systems])
    print(text)
    RESULTS_FILE.write_text(text)
    log(f"saved to {RESULTS_FILE}")
    return 1 if res.errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        PROCS.stop_all()
        log("interrupted; all workers stopped")
        sys.exit(130)
