"""The prefork pool: N child processes, each running one task at a time.

Children are forked with no database connection open in the parent, so no
connection is ever shared across a fork; each child opens its own. A child
that dies (segfault, ``os._exit``, OOM kill) or is killed at its hard time
limit is replaced, and its job is reported lost so the consumer can deliver
it again or fail it.
"""

import ctypes
import logging
import multiprocessing
import os
import select
import signal
import time

from django.db import connections

from ...exceptions import TaskRevokedError
from ..forking import database_work
from ..slot import run_message
from ..timelimits import MainThreadTask
from .base import Lost, Pool

logger = logging.getLogger("django_tasks.worker")

_fork = multiprocessing.get_context("fork")
KILL_GRACE = 1.0  # seconds past the hard limit before the child is killed


def _child_main(conn, inherited, hostname, backend, worker_id, max_tasks):
    _die_with_parent()
    # Pipe ends the fork copied from the parent: holding them open would hide
    # the parent's death (no EOF) from this and the other children.
    for other in inherited:
        other.close()
    # The parent decides when children stop: a Ctrl-C sent to the whole
    # process group must not kill tasks mid-way (warm shutdown finishes them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _raise_terminated)
    done = 0
    try:
        while True:
            message = conn.recv()
            if message is None:
                break
            outcome = run_message(message, hostname, backend, worker_id, in_main_thread=True)
            conn.send(outcome.for_transfer())
            done += 1
            if max_tasks and done >= max_tasks:
                break
    except (EOFError, KeyboardInterrupt):
        pass  # the parent went away: nothing left to report to
    finally:
        connections.close_all()
        conn.close()
    # Skip interpreter clean-up: objects inherited from the parent (its
    # threads' state) must not be finalized here.
    os._exit(0)


def _die_with_parent():
    """Ask Linux to SIGKILL this child when the worker process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return  # not Linux/glibc: children notice the closed pipe instead
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _raise_terminated(signum, frame):
    if MainThreadTask.running is not None:
        raise TaskRevokedError("terminated: revoked while running")


class Child:
    def __init__(self, slot, hostname, backend, worker_id, max_tasks, siblings):
        self.slot = slot
        self.conn, child_conn = _fork.Pipe()
        inherited = [self.conn, *(sibling.conn for sibling in siblings)]
        self.process = _fork.Process(
            target=_child_main,
            args=(child_conn, inherited, hostname, backend, worker_id, max_tasks),
            name=f"ForkPoolWorker-{slot + 1}", daemon=True)
        self.process.start()
        child_conn.close()
        self.completed = 0  # tasks it reported done; at max_tasks it exits by itself


class PreforkPool(Pool):
    name = "prefork"

    def __init__(self, concurrency, **options):
        super().__init__(concurrency, **options)
        self.children = {}

    def start(self):
        self._before_fork()
        for slot in range(self.concurrency):
            self._spawn(slot)

    def _before_fork(self):
        connections.close_all()
        self.backend.close_listener()

    def _spawn(self, slot):
        siblings = [child for other, child in self.children.items() if other != slot]
        with database_work:  # see forking.py: never fork mid-transaction
            self.children[slot] = Child(slot, self.hostname, self.backend, self.worker_id,
                                        self.max_tasks_per_child, siblings)

    def _replace(self, slot):
        self._before_fork()
        self._spawn(slot)

    @property
    def free_slots(self):
        return sum(1 for slot in self.children if slot not in self.jobs)

    def _free_slot(self):
        for slot in self.children:
            if slot not in self.jobs:
                return slot
        raise RuntimeError("no free slot")

    def submit(self, message):
        slot = self._free_slot()
        self._new_job(message, slot)
        try:
            self.children[slot].conn.send(message)
        except (BrokenPipeError, OSError):
            # Died while idle: collect() reports the job lost and replaces it.
            logger.warning("child %d was gone when given a task", slot + 1)

    def wait_fds(self):
        fds = []
        for child in self.children.values():
            fds.append(child.conn.fileno())
            fds.append(child.process.sentinel)
        return fds

    def collect(self):
        outcomes, lost = [], []
        # One look at every child's pipe and exit sentinel: a Connection.poll()
        # and an is_alive() per child and step cost more than a no-op task.
        readable = set(select.select(self.wait_fds(), [], [], 0)[0])
        for slot, child in list(self.children.items()):
            if child.conn.fileno() in readable:
                self._receive(slot, child, outcomes)
            # A child that has done its --max-tasks-per-child is exiting: replace
            # it now, before it is handed a task it will never read.
            retiring = bool(self.max_tasks_per_child) and \
                child.completed >= self.max_tasks_per_child
            if retiring or child.process.sentinel in readable:
                child.process.join()
                # What it sent between the first look and its exit.
                while child.conn.poll() and self._receive(slot, child, outcomes):
                    pass
                job = self.jobs.pop(slot, None)
                if job is not None:
                    reason = (f"child process {child.process.pid} exited with code "
                              f"{_describe_exit(child.process.exitcode)} while running the task")
                    lost.append(Lost(job=job, reason=reason))
                    logger.error("Process %s (pid %s) died running %s[%s]: %s",
                                 child.process.name, child.process.pid,
                                 job.message.task_name, job.message.task_id, reason)
                child.conn.close()
                self._replace(slot)
        return outcomes, lost

    def _receive(self, slot, child, outcomes):
        """Take one outcome from a readable pipe; False at its end (the child exited).

        A child runs one task at a time, so a readable pipe holds one outcome.
        """
        try:
            outcome = child.conn.recv()
        except (EOFError, OSError):
            return False
        job = self.jobs.pop(slot, None)
        if job is None:
            logger.error("child %d reported a task it was not given; ignored", slot + 1)
            return True
        outcome.message = job.message
        outcomes.append(outcome)
        child.completed += 1
        return True

    def enforce_time_limits(self):
        # The child's own alarm raises both limits inside the task; the
        # parent kills it if the task swallowed them and is still running
        # a moment after its hard limit.
        now = time.monotonic() - KILL_GRACE
        lost = []
        for slot, job in list(self.jobs.items()):
            child = self.children[slot]
            if job.past_hard_limit(now):
                job.hard_sent = True
                child.process.kill()
                child.process.join()
                del self.jobs[slot]
                child.conn.close()
                logger.error("Hard time limit (%ss) exceeded for %s[%s]: child killed",
                             job.hard_limit, job.message.task_name, job.message.task_id)
                lost.append(Lost(job=job, reason=f"time limit ({job.hard_limit}s) exceeded",
                                 time_limit=True))
                self._replace(slot)
        return lost

    def terminate(self, task_id):
        job = self._job_of(task_id)
        if job is None:
            return False
        _signal(self.children[job.slot], signal.SIGUSR1)
        return True

    def stop(self, cold):
        if cold:
            for child in self.children.values():
                child.process.kill()
            for child in self.children.values():
                child.process.join()
            self.jobs.clear()
            return
        for child in self.children.values():
            try:
                child.conn.send(None)
            except (BrokenPipeError, OSError):
                continue  # already gone

    def join(self, timeout=None):
        for child in self.children.values():
            child.process.join(timeout)


def _signal(child, signum):
    try:
        os.kill(child.process.pid, signum)
    except ProcessLookupError:
        pass  # it just exited; collect() will notice


def _describe_exit(code):
    if code is not None and code < 0:
        return f"{code} (signal {signal.Signals(-code).name})"
    return str(code)

