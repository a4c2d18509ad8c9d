"""Real ``runworker`` processes for the tests, and ways to wait on them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def worker_env(extra=None, database=None):
    """The environment of a worker that uses the test database (or ``database``)."""
    if database is None:
        settings_dict = connection.settings_dict
        database = {key: settings_dict[key] for key in
                    ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")}
        database["NAME"] = str(database["NAME"])
    env = dict(os.environ)
    # A worker runs with Django's check for ORM calls from an event loop, as
    # in production, even when started while a browser test turns it off.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TESTS_DATABASE_JSON": json.dumps(database),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


class WorkerProcess:
    def __init__(self, *args, env=None, database=None, command="runworker"):
        command = [sys.executable, str(ROOT / "manage.py"), command, *args]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=worker_env(env, database), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True)  # its own process group, as under a terminal
        self.lines = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def output(self):
        with self._changed:
            return "\n".join(self.lines)

    def count(self, text):
        with self._changed:
            return sum(text in line for line in self.lines)

    def wait_for(self, text, timeout=30.0, times=1):
        """Block until ``text`` has appeared in ``times`` lines of output."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(text in line for line in self.lines) < times:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"worker output never showed {text!r} x{times} within {timeout}s "
                        f"(exit code {self.proc.poll()}):\n" + "\n".join(self.lines[-60:]))
                self._changed.wait(min(remaining, 0.5))

    def wait_ready(self, timeout=60.0):
        self.wait_for(" ready.", timeout)
        return self

    def send(self, signum):
        self.proc.send_signal(signum)

    def wait_exit(self, timeout=60.0):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit within {timeout}s:\n{self.output}") from None
        self._reader.join(5)
        return code

    def stop(self, timeout=30.0):
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


def wait_until(predicate, timeout=30.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it is true; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def stop_processes(pids, attempts=100):
    """SIGSTOP ``pids``. On SQLite, at a moment none of them holds the
    database's write lock: a process stopped inside a write transaction
    would block every other process's writes (the one-writer lock is the
    file's, not a session the server could end), which a stall of a real
    worker does too, but is not what the tests of stalled workers test."""
    for _ in range(attempts):
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if connection.vendor != "sqlite" or _sqlite_writable():
            return
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)  # let the writer finish its transaction
    raise AssertionError(f"processes {pids} held SQLite's write lock at every try")


def _sqlite_writable():
    import sqlite3

    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=1.0,
                            isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # "database is locked": a writer is inside
        return False
    finally:
        probe.close()


@contextmanager
def listening():
    """A PostgreSQL session of its own that LISTENs on the queue channel, as
    a worker does."""
    from django_tasks.queue.postgresql import QUEUE_CHANNEL

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {QUEUE_CHANNEL}")
        yield listener


def live_worker(worker_id=None):
    """The id of a live worker row (claims take nothing for an unknown or
    stopped one), registered now if needed."""
    import uuid

    from django_tasks.models import Worker

    row, _ = Worker.objects.update_or_create(
        id=worker_id or uuid.uuid4(),
        defaults={"hostname": "test", "pid": os.getpid(), "queues": [], "pool": "solo",
                  "concurrency": 1, "stopped_at": None})
    return row.id
