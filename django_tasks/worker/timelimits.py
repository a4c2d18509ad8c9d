"""Time limits: which apply to a message, and how they interrupt a task.

The soft limit raises ``SoftTimeLimitExceeded`` inside the task, which may
catch it and clean up. The hard limit cannot be caught in prefork: the pool
kills the child process. Where the task runs in the worker's own main
thread (solo, and inside each prefork child) an interval timer (SIGALRM)
interrupts even a blocking call; in the threads pool an exception is
injected into the thread, which takes effect when the thread next runs
Python code (a blocking C call finishes first).
"""

import ctypes
import os
import signal
import threading
from contextlib import contextmanager

from ..conf import settings
from ..exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded


def limits_for(message, task):
    """(soft, hard) seconds for this call: call options > task options > settings."""
    headers = message.headers
    soft = headers.get("soft_time_limit")
    hard = headers.get("time_limit")
    if task is not None:
        soft = soft if soft is not None else task.soft_time_limit
        hard = hard if hard is not None else task.time_limit
    soft = soft if soft is not None else settings.SOFT_TIME_LIMIT
    hard = hard if hard is not None else settings.TIME_LIMIT
    return soft, hard


class _Alarm:
    """Raises the soft limit, then re-arms for the hard one."""

    def __init__(self, soft, hard):
        self.soft = soft
        self.hard = hard
        self.soft_fired = False

    def __call__(self, signum, frame):
        if self.soft and not self.soft_fired:
            self.soft_fired = True
            if self.hard and self.hard > self.soft:
                signal.setitimer(signal.ITIMER_REAL, self.hard - self.soft)
            raise SoftTimeLimitExceeded(f"soft time limit ({self.soft}s) exceeded")
        raise TimeLimitExceeded(f"time limit ({self.hard}s) exceeded")


@contextmanager
def main_thread_limits(soft, hard):
    """Enforce both limits in the main thread of this process with SIGALRM."""
    first = min(x for x in (soft, hard) if x) if (soft or hard) else None
    if first is None:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _Alarm(soft, hard))
    signal.setitimer(signal.ITIMER_REAL, first)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def raise_in_thread(thread_ident, exc_type):
    """Make ``exc_type`` raise in another thread at its next Python bytecode."""
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_ident), ctypes.py_object(exc_type))
    return changed == 1


class MainThreadTask:
    """Which task the main thread runs, so SIGUSR1 stops only that one."""

    running = None      # task id being executed in the main thread
    to_terminate = set()

    @classmethod
    def handle(cls, signum, frame):
        # A signal that arrives after the task ended must not hit the loop.
        if cls.running is not None and cls.running in cls.to_terminate:
            cls.to_terminate.discard(cls.running)
            raise TaskRevokedError("terminated: revoked while running")

    @classmethod
    def request_terminate(cls, task_id):
        cls.to_terminate.add(str(task_id))
        os.kill(os.getpid(), signal.SIGUSR1)


def install_terminate_handler():
    """SIGUSR1 stops the task running in the main thread: revoke(terminate=True)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, MainThreadTask.handle)
