"""A prefork child: a consumer of its own, supervised by the worker process.

Each child claims, runs and stores for itself, on its own database
connections, so no task crosses a pipe and the parent is off the path of
every task. The child claims under its worker's id and its own pid, so the
parent can tell exactly what a dead child held. What the parent must see
while the child is busy (the task it runs, since when, under which hard
limit; its counters; whether it waits for work) is in a small block of
shared memory, ``SlotState``.

Signals: SIGINT and SIGTERM are ignored (the parent decides when children
stop: a Ctrl-C sent to the whole process group must not cut tasks short);
SIGUSR1 stops the running task if the parent marked it for termination;
SIGUSR2 is the cold shutdown. The parent's end of a pipe says the rest:
``n`` new work, ``w`` warm shutdown (end of file too: the parent is gone).
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import time

from django.db import connections

from .. import signals, task_signals
from ..exceptions import TaskRevokedError
from .consumer import Consumer
from .shutdown import ColdShutdown

logger = logging.getLogger("django_tasks.worker")

# How long prefetched messages wait behind a running task while a sibling
# has nothing to do (they go back to the queue for it).
SIBLING_PATIENCE = 0.1
NEW_WORK = b"n"
WARM_SHUTDOWN = b"w"


FIELDS = 10


def _field(index, kind=float):
    def get(self):
        return kind(self._block[self._base + index])

    def set(self, value):
        self._block[self._base + index] = value

    return property(get, set)


class SlotState:
    """One child's fields in a block of shared memory every child of the
    worker can read. Lock-free: each field is one aligned double, written by
    one side."""

    running = _field(0, int)      # id of the message being run, 0 between tasks
    started = _field(1)           # time.monotonic() it started (the same clock everywhere)
    hard_limit = _field(2)        # its hard time limit in seconds, 0 for none
    terminate = _field(3, int)    # message id the parent wants stopped (revoke)
    processed = _field(4, int)
    failed = _field(5, int)
    idle = _field(6, int)         # 1 while it may be waiting for work: wake it on NOTIFY
    waiting = _field(7, int)      # 1 while it waits, having found nothing to claim
    exiting = _field(8, int)      # 1 once it handed back what it held and is leaving
    wakeups_read = _field(9, int)  # how many NEW_WORK it has read from its pipe

    def __init__(self, block, slot):
        self._block = block
        self._base = slot * FIELDS

    @classmethod
    def block(cls, slots):
        """Shared memory for ``slots`` children (allocated before forking them)."""
        return multiprocessing.RawArray(ctypes.c_double, slots * FIELDS)

    def reset(self):
        for index in range(FIELDS):
            self._block[self._base + index] = 0.0

    def task_started(self, message_id, hard_limit):
        self.started = time.monotonic()
        self.hard_limit = hard_limit or 0.0
        self.running = message_id  # last: the parent reads it first

    def task_ended(self):
        self.running = 0


class ChildConsumer(Consumer):
    """The claim-run-store loop of one child, with the solo pool."""

    def __init__(self, queues, hostname, prefetch_multiplier, worker_id, state, siblings,
                 control, max_tasks):
        super().__init__(queues, hostname, concurrency=1, pool="solo",
                         prefetch_multiplier=prefetch_multiplier, install_signals=False)
        self.worker_id = worker_id
        self.claim_pid = os.getpid()
        self.state = state
        self.siblings = siblings
        self.control = control
        self.max_tasks = max_tasks
        self.pool_options = {"slot_state": state}

    def _register(self):
        """The parent registered the worker; children share its row."""

    def _start_services(self):
        signal.signal(signal.SIGUSR1, self._terminate_running_task)
        signal.signal(signal.SIGUSR2, _cold_shutdown)

    def _stop_services(self):
        """Heartbeat and housekeeping are the parent's."""

    def _housekeeping(self):
        """The parent's."""

    def _unregister(self):
        self.state.exiting = 1  # a clean exit: what it held is handed back

    def _claim(self):
        # Idle before the claim, not after: a NOTIFY the parent reads while
        # this claim finds nothing still wakes this child.
        self.state.idle = 1
        claimed = super()._claim()
        if claimed:
            self.state.idle = 0
        return claimed

    def _wait_for_work(self):
        self.state.waiting = 1
        try:
            readable = self._wait([self.control], self._poll_timeout())
        finally:
            self.state.waiting = 0
        if self.control in readable:
            self._read_control()

    def _prefetch_patience(self):
        # A sibling that found nothing to claim is idle right now.
        if any(sibling.waiting for sibling in self.siblings):
            return SIBLING_PATIENCE
        return super()._prefetch_patience()

    def _dispatch(self):
        # What this child prefetched would wait behind its task while a
        # sibling found nothing: hand it back for the sibling to claim.
        if len(self.buffer) > 1 and any(sibling.waiting for sibling in self.siblings):
            shared = self._take_prefetched(keep=1)
            self._with_reconnect(
                lambda: self.backend.hand_back(shared, self.worker_id, undeliver=True))
        super()._dispatch()

    def _read_control(self):
        try:
            data = os.read(self.control, 512)
        except BlockingIOError:
            return
        self.state.wakeups_read += data.count(NEW_WORK)
        if not data or WARM_SHUTDOWN in data:  # end of file: the parent is gone
            self.shutdown.warm = True

    def _count_and_log(self, outcome):
        super()._count_and_log(outcome)
        self.state.processed = self.processed
        self.state.failed = self.failed
        if self.max_tasks and self.processed >= self.max_tasks:
            self.shutdown.warm = True  # retire: the parent starts a fresh child

    def step(self):
        super().step()
        # Under load the loop never waits: look at the pipe between tasks too.
        self._read_control()

    def _terminate_running_task(self, signum, frame):
        state = self.state
        if state.terminate and state.terminate == state.running:
            state.terminate = 0
            raise TaskRevokedError("terminated: revoked while running")


def _cold_shutdown(signum, frame):
    raise ColdShutdown.on_signal("SIGUSR2")


def child_main(control, inherited, queues, hostname, prefetch_multiplier, worker_id, states,
               slot, max_tasks):
    _die_with_parent()
    # Pipe ends the fork copied from the parent: holding them open would hide
    # the parent's death (no end of file) from the other children.
    for other in inherited:
        os.close(other)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    os.set_blocking(control, False)
    code = 0
    try:
        # Resources that must not cross a fork are opened again here.
        task_signals.send(signals.worker_process_init, sender=None)
        state = SlotState(states, slot)
        siblings = [SlotState(states, other) for other in range(len(states) // FIELDS)
                    if other != slot]
        consumer = ChildConsumer(queues, hostname, prefetch_multiplier, worker_id, state,
                                 siblings, control, max_tasks)
        code = consumer.run()
    except BaseException:
        logger.exception("prefork child %s failed", os.getpid())
        code = 1
    finally:
        try:
            task_signals.send(signals.worker_process_shutdown, sender=None, pid=os.getpid(),
                              exitcode=code)
        finally:
            connections.close_all()
    # Skip interpreter clean-up: objects inherited from the parent (its
    # threads' state) must not be finalized here.
    os._exit(code)


def _die_with_parent():
    """Ask Linux to SIGKILL this child when the worker process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return  # not Linux/glibc: children notice the closed pipe instead
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
