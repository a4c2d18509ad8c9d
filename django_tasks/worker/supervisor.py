"""The prefork worker process: children do the work, this process keeps them going.

Each child is a consumer of its own (``child.py``). This process registers
the worker, beats its heart for all of them, runs the housekeeping, listens
for NOTIFY and wakes idle children, and replaces a child that exits:

- a child that reached ``--max-tasks-per-child`` hands back what it held and
  exits; a fresh one takes its place;
- a child that dies (segfault, ``os._exit``, OOM kill) is replaced, and the
  messages it held are dealt with here: the one it was running is delivered
  again (``MAX_DELIVERIES``, then ``WorkerLostError``), the prefetched ones go
  back to the queue uncounted;
- a child still running its task a moment past the task's hard time limit
  (it swallowed ``TimeLimitExceeded``) is killed, and the task ends
  ``FAILURE`` with ``TimeLimitExceeded``.

Children are forked with no database connection open here, so no
connection is ever shared across a fork.
"""

import logging
import multiprocessing
import os
import select
import signal
import time

from django.db import connections

from .. import signals, task_signals
from ..conf import settings
from ..exceptions import TimeLimitExceeded
from ..execution import interrupted_outcome
from ..forking import database_work
from ..queue import get_backend
from . import at_most_once, housekeeping, storing
from .child import NEW_WORK, WARM_SHUTDOWN, SlotState, child_main
from .heartbeat import Heartbeat
from .reconnect import with_reconnect
from .shutdown import ColdShutdown, ShutdownState

logger = logging.getLogger("django_tasks.worker")

_fork = multiprocessing.get_context("fork")
KILL_GRACE = 1.0     # seconds past the hard limit before the child is killed
COLD_GRACE = 10.0    # seconds children get to hand back their tasks on cold shutdown
TICK = 0.25          # hard limits are checked this often


class Child:
    def __init__(self, slot, process, control, state):
        self.slot = slot
        self.process = process
        self.control = control  # write end of the child's pipe
        self.state = state
        self.wakeups_sent = 0

    @property
    def pid(self):
        return self.process.pid

    @property
    def about_to_claim(self):
        """Idle but already on its way to a claim: a wake-up it has not read
        yet, or out of its wait (claiming now)."""
        return self.wakeups_sent > self.state.wakeups_read or not self.state.waiting

    def tell(self, what):
        try:
            os.write(self.control, what)
        except (BrokenPipeError, BlockingIOError):
            return  # gone (reaped soon), or its pipe is full of wake-ups already
        if what == NEW_WORK:
            self.wakeups_sent += 1


class Supervisor:
    def __init__(self, queues, hostname, concurrency, prefetch_multiplier=4,
                 max_tasks_per_child=None, install_signals=True):
        self.queues = list(queues)
        self.hostname = hostname
        self.concurrency = concurrency
        self.prefetch_multiplier = prefetch_multiplier
        self.max_tasks_per_child = max_tasks_per_child
        self.install_signals = install_signals
        self.backend = get_backend()
        self.shutdown = ShutdownState()
        self.worker_id = None
        self.children = {}  # slot -> Child
        self.states = SlotState.block(concurrency)
        self.retired = (0, 0)  # processed, failed by children no longer running
        # Set by the heartbeat thread: the id this worker was declared lost under.
        self.lost_id = None

    # -- life cycle -------------------------------------------------------

    def run(self):
        self.start()
        try:
            while not self.shutdown.warm:
                self.step()
            self._shutting_down("Warm", self.shutdown.signal_name)
            self._warm_shutdown()
        except ColdShutdown as shutdown:
            self._shutting_down("Cold", shutdown.args[0] if shutdown.args else None)
            self._cold_shutdown()
        except BaseException:
            # Children outliving this process would hold their messages
            # until the heartbeat goes stale: stop them as its death would.
            self._kill_children()
            raise
        finally:
            self.stop()
        return 0

    def _shutting_down(self, how, sig):
        if sig is not None:
            task_signals.send(signals.worker_shutting_down, sender=self.hostname, sig=sig,
                              how=how, exitcode=0)

    def start(self):
        self._register()
        self.housekeeper = housekeeping.Housekeeper(self.backend)
        if self.install_signals:
            self.shutdown.install()
        self.heartbeat = Heartbeat(self.backend, self.worker_id, settings.HEARTBEAT_INTERVAL,
                                   self.counters, self._terminate, on_lost=self._on_lost)
        self.heartbeat.start()
        for slot in range(self.concurrency):
            self._spawn(slot)
        logger.info("%s ready.", self.hostname)
        task_signals.send(signals.worker_ready, sender=self)

    def stop(self):
        self.heartbeat.stop()
        released = self._with_reconnect(lambda: at_most_once.hand_back(
            self.backend, self.worker_id, None, self.hostname,
            "the worker stopped while it ran"), attempts=5)
        if released:
            logger.info("Handed %d claimed message(s) back to the queue", released)
        processed, failed = self.counters()
        self._with_reconnect(lambda: self.backend.stop_worker(
            self.worker_id, processed, failed), attempts=5)
        self.backend.close_listener()
        task_signals.send(signals.worker_shutdown, sender=self)
        logger.info("%s stopped (%d processed, %d failed).", self.hostname, processed, failed)

    def _register(self):
        row = self.backend.register_worker(
            hostname=self.hostname, pid=os.getpid(), queues=self.queues, pool="prefork",
            concurrency=self.concurrency)
        self.worker_id = row.id

    def counters(self):
        processed, failed = self.retired
        for child in list(self.children.values()):
            processed += child.state.processed
            failed += child.state.failed
        return processed, failed

    # -- children ---------------------------------------------------------

    def _spawn(self, slot):
        task_signals.send(signals.worker_before_create_process, sender=self)
        connections.close_all()
        self.backend.close_listener()
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        state = SlotState(self.states, slot)
        state.reset()
        # The other children's pipe ends: a child must not hold them open.
        inherited = [write_end, *(child.control for child in self.children.values())]
        process = _fork.Process(
            target=child_main,
            args=(read_end, inherited, self.queues, self.hostname, self.prefetch_multiplier,
                  self.worker_id, self.states, slot, self.max_tasks_per_child),
            name=f"ForkPoolWorker-{slot + 1}", daemon=True)
        with database_work:  # see forking.py: never fork mid-transaction
            process.start()
        os.close(read_end)
        self.children[slot] = Child(slot, process, write_end, state)
        # Listen again at once, then make up for the NOTIFYs missed while the
        # listener was closed for the fork.
        self._with_reconnect(self.backend.queue_listener_fileno)
        self._wake_idle_children()

    def _forget(self, slot):
        child = self.children.pop(slot)
        child.process.join()
        os.close(child.control)
        processed, failed = self.retired
        self.retired = (processed + child.state.processed, failed + child.state.failed)
        return child

    def _exited(self):
        return [slot for slot, child in self.children.items()
                if child.process.exitcode is not None]

    # -- the loop ---------------------------------------------------------

    def step(self):
        if self.lost_id == self.worker_id:
            self._rejoin()
        for slot in self._exited():
            self._after_exit(self._forget(slot))
            self._spawn(slot)
        self._enforce_hard_limits()
        self._with_reconnect(self.housekeeper.run_due)
        self._wait(TICK)

    def _wait(self, timeout):
        fds = [child.process.sentinel for child in self.children.values()]
        if self.shutdown.wakeup_fd is not None:
            fds.append(self.shutdown.wakeup_fd)
        listener = None
        if not self.shutdown.warm:
            listener = self._with_reconnect(self.backend.queue_listener_fileno)
            if listener is not None:
                fds.append(listener)
        readable = select.select(fds, [], [], timeout)[0]
        if self.shutdown.wakeup_fd in readable:
            self.shutdown.drain()
        if listener is not None and listener in readable:
            self._wake_idle_children(
                self._with_reconnect(self.backend.drain_queue_notifications))

    def _wake_idle_children(self, wanted=None):
        """Wake ``wanted`` idle children (None: all) for new messages: one
        .delay() wakes one child, not every idle one into an empty claim."""
        idle = [child for child in self.children.values() if child.state.idle]
        # Those not already on their way to a claim first: a second message
        # right after the first goes to a second child.
        idle.sort(key=lambda child: child.about_to_claim)
        for child in idle[:wanted]:
            child.tell(NEW_WORK)

    def _after_exit(self, child):
        """Deal with what a child that exited held."""
        if child.state.exiting and child.process.exitcode == 0:
            # It handed back what it held; anything left is handed back too.
            self._with_reconnect(lambda: at_most_once.hand_back(
                self.backend, self.worker_id, child.pid, self.hostname,
                f"child process {child.pid} exited while it ran"))
            return
        reason = (f"child process {child.pid} exited with code "
                  f"{_describe_exit(child.process.exitcode)}")
        self._recover(child, reason)

    def _recover(self, child, reason, time_limit=None):
        held = self._with_reconnect(
            lambda: self.backend.claimed_messages(self.worker_id, child.pid))
        running = next((m for m in held if m.id == child.state.running), None)
        # At-most-once tasks that began (acks_late=False) never go back: the
        # running one fails below, any other here fails now.
        begun = [at_most_once.cut_short(m, f"{reason} while running the task", self.hostname)
                 for m in held if m.acked and m is not running]
        if begun:
            self._with_reconnect(lambda: storing.store(self.backend, begun, self.worker_id))
        prefetched = [m.id for m in held if m is not running and not m.acked]
        if prefetched:
            self._with_reconnect(
                lambda: self.backend.hand_back(prefetched, self.worker_id, undeliver=True))
        if running is None:
            if child.state.running:
                logger.error("Process %s (pid %s) died: %s", child.process.name, child.pid,
                             reason)
            return
        if time_limit is None:
            logger.error("Process %s (pid %s) died running %s[%s]: %s while running the task",
                         child.process.name, child.pid, running.task_name, running.task_id,
                         reason)
            self._with_reconnect(lambda: housekeeping.deliver_again_or_fail(
                self.backend, running, f"{reason} while running the task", self.hostname,
                self.worker_id))
            return
        logger.error("Hard %s for %s[%s]: child killed", time_limit, running.task_name,
                     running.task_id)
        outcome = interrupted_outcome(running, TimeLimitExceeded(time_limit), self.hostname)
        self._with_reconnect(lambda: storing.store(self.backend, [outcome], self.worker_id))
        logger.error("Task %s[%s] failed: %s", running.task_name, running.task_id,
                     outcome.describe(), exc_info=outcome.value,
                     extra={"task_id": running.task_id, "task_name": running.task_name})

    def _enforce_hard_limits(self):
        # The child's own alarm raises both limits inside the task; a task
        # that swallowed them and still runs a moment later loses its child.
        now = time.monotonic()
        for slot, child in list(self.children.items()):
            state = child.state
            if not state.running or not state.hard_limit \
                    or now - state.started <= state.hard_limit + KILL_GRACE:
                continue
            child.process.kill()
            self._forget(slot)
            self._recover(child, "killed at its task's hard time limit",
                          time_limit=f"time limit ({state.hard_limit:g}s) exceeded")
            self._spawn(slot)

    # -- shutdown ---------------------------------------------------------

    def _warm_shutdown(self):
        running = sum(1 for child in self.children.values() if child.state.running)
        if running:
            logger.info("Warm shutdown: waiting for %d running task(s)", running)
        for child in self.children.values():
            child.tell(WARM_SHUTDOWN)
        while self.children:
            for slot in self._exited():
                self._after_exit(self._forget(slot))
            if self.children:
                self._wait(TICK)

    def _cold_shutdown(self):
        logger.warning("Cold shutdown: stopping %d running task(s); their messages go "
                       "back to the queue",
                       sum(1 for child in self.children.values() if child.state.running))
        self._stop_children_now()

    def _stop_children_now(self):
        """Cold-stop every child: each hands back what it held."""
        for child in self.children.values():
            _signal(child, signal.SIGUSR2)
        deadline = time.monotonic() + COLD_GRACE
        while self.children and time.monotonic() < deadline:
            for slot in self._exited():
                child = self._forget(slot)
                self._with_reconnect(lambda child=child: at_most_once.hand_back(
                    self.backend, self.worker_id, child.pid, self.hostname,
                    "a cold shutdown stopped it"))
            if self.children:
                select.select([c.process.sentinel for c in self.children.values()], [], [],
                              TICK)
        self._kill_children()

    # -- declared lost ----------------------------------------------------

    def _on_lost(self, worker_id):
        """From the heartbeat thread (see Consumer._on_lost)."""
        if worker_id == self.worker_id:
            self.lost_id = worker_id

    def _rejoin(self):
        """Go on under a new identity: the children, which claim under the lost
        one, stop now (handing back what is still theirs) and fresh ones start."""
        lost = self.worker_id
        running = sum(1 for child in self.children.values() if child.state.running)
        self._stop_children_now()
        released = self._with_reconnect(lambda: at_most_once.hand_back(
            self.backend, lost, None, self.hostname, "its worker was declared lost"))
        self._with_reconnect(self._register)
        self.heartbeat.worker_id = self.worker_id
        logger.warning("Going on as worker %s (declared lost as %s): %d running task(s) "
                       "stopped, %d message(s) still held handed back; the worker that "
                       "recovers the rest delivers them again", self.worker_id, lost, running,
                       released or 0)
        for slot in range(self.concurrency):
            self._spawn(slot)

    def _kill_children(self):
        for slot in list(self.children):
            self.children[slot].process.kill()
            self._forget(slot)
        # stop() hands back whatever the killed ones held.

    # -- control ----------------------------------------------------------

    def _terminate(self, requests):
        """From the heartbeat thread: {task id: (message id, pid)} revoked with terminate."""
        by_pid = {child.pid: child for child in list(self.children.values())}
        for task_id, (message_id, pid) in requests.items():
            child = by_pid.get(pid)
            if child is None or child.state.running != message_id:
                continue
            child.state.terminate = message_id
            logger.warning("Terminating task %s (revoked)", task_id)
            _signal(child, signal.SIGUSR1)

    def _with_reconnect(self, operation, attempts=None):
        return with_reconnect(self.backend, operation, attempts)


def _signal(child, signum):
    try:
        os.kill(child.pid, signum)
    except ProcessLookupError:
        pass  # it just exited; the loop will notice


def _describe_exit(code):
    if code is not None and code < 0:
        return f"{code} (signal {signal.Signals(-code).name})"
    return str(code)
