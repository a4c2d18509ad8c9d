"""The consumer loop: claim messages, hand them to pool slots, store outcomes.

    claim (one statement for many) -> pool slot -> flush (one transaction for many)

The loop of a threads or solo worker, and of each prefork child (see
``child.py``). Messages are claimed only for free slots, plus a small
prefetch never tied to one busy slot (threads: shared by all slots; a
task running on the loop's own thread, solo: handed back by the results
thread once the task runs long), so a long task never holds back work an
idle slot could run. Outcomes that arrive together are stored together.
Database outages are ridden out: the loop logs them, reconnects with
backoff, and keeps the outcomes it has until they are stored, so claimed
work is never dropped.
"""

import collections
import logging
import os
import select
import threading
import time

from .. import signals, states, task_signals
from ..conf import settings
from ..queue import get_backend
from ..serialization import short_repr
from . import at_most_once, flow_gate, housekeeping
from .flusher import Flusher
from .heartbeat import Heartbeat
from .pools import create_pool
from .reconnect import with_reconnect
from .shutdown import ColdShutdown, ShutdownState

logger = logging.getLogger("django_tasks.worker")

# A prefetched message waiting longer than this for a free slot goes back to
# the queue, where another worker may be idle.
PREFETCH_PATIENCE = 1.0
# The ends logged at INFO; any other is a failure, logged at ERROR and counted.
QUIET_ENDS = frozenset((states.SUCCESS, states.RETRY, states.REVOKED, states.IGNORED))



def _exc_info(value):
    return value if isinstance(value, BaseException) else None


class Consumer:
    def __init__(self, queues, hostname, concurrency=1, pool="solo", prefetch_multiplier=1,
                 install_signals=True):
        self.queues = list(queues)
        self.hostname = hostname
        self.concurrency = concurrency
        self.pool_name = pool
        self.prefetch = max(0, concurrency * (prefetch_multiplier - 1))
        self.backend = get_backend()
        self.shutdown = ShutdownState()
        self.install_signals = install_signals
        self.worker_id = None
        self.pool = None
        self.buffer = collections.deque()  # (claimed_at monotonic, message)
        # When a message a flow gate handed back may be admitted (monotonic).
        self.flow_wake_at = None
        # The results thread may empty the buffer (solo: see start()).
        self.buffer_lock = threading.Lock()
        self.task_started = 0.0  # time.monotonic() of the last dispatch
        # The claiming process: prefork children share their worker's id.
        self.claim_pid = None
        self.pool_options = {}
        self.flusher = None
        self.processed = 0
        self.failed = 0
        # Messages handed to the pool whose outcomes are not with the
        # results thread yet: what a crash of this loop leaves undone.
        self.dispatched = {}  # message id -> Message
        # Set by the heartbeat thread: the id this worker was declared lost under.
        self.lost_id = None
        # Messages of an identity declared lost, still running: their
        # outcomes are not this worker's to store.
        self.disowned = set()
        # Why an at-most-once task still held at the end did not finish.
        self.stop_reason = "the worker stopped while it ran"

    # -- life cycle -------------------------------------------------------

    def start(self):
        task_signals.current["consumer"] = self
        self._register()
        self.pool = create_pool(self.pool_name, self.concurrency, hostname=self.hostname,
                                backend=self.backend, worker_id=self.worker_id,
                                **self.pool_options)
        self.pool.start()
        # Where the task runs on the loop's own thread, the loop cannot hand a
        # long task's prefetched messages back: the results thread does.
        on_idle = self._return_prefetch_held_by_a_long_task if self.pool_name == "solo" \
            else None
        self.flusher = Flusher(self.backend, self.worker_id, on_idle=on_idle)
        self.flusher.start()
        self._start_services()

    def _register(self):
        row = self.backend.register_worker(
            hostname=self.hostname, pid=os.getpid(), queues=self.queues, pool=self.pool_name,
            concurrency=self.concurrency)
        self.worker_id = row.id

    def _start_services(self):
        """What a whole worker runs besides its loop (not a prefork child)."""
        self.housekeeper = housekeeping.Housekeeper(self.backend)
        if self.install_signals:
            self.shutdown.install()
        self.heartbeat = Heartbeat(self.backend, self.worker_id, settings.HEARTBEAT_INTERVAL,
                                   lambda: (self.processed, self.failed), self._terminate,
                                   on_lost=self._on_lost)
        self.heartbeat.start()
        if self.pool_name == "solo":
            # As Celery's solo pool: this process is the one running tasks.
            task_signals.send(signals.worker_process_init, sender=None)
        logger.info("%s ready.", self.hostname)
        task_signals.send(signals.worker_ready, sender=self)

    def run(self):
        """Run until a stop signal; returns the process exit code."""
        self.start()
        try:
            while not self.shutdown.warm:
                self.step()
            self._shutting_down("Warm", self.shutdown.signal_name)
            self._warm_shutdown()
        except ColdShutdown as shutdown:
            self._shutting_down("Cold", shutdown.args[0] if shutdown.args else None)
            logger.warning("Cold shutdown: stopping %d running task(s); their messages go "
                           "back to the queue", len(self.pool.jobs))
            self.stop_reason = "a cold shutdown stopped it"
            self.pool.stop(cold=True)
        except BaseException as exc:
            self._account_for_crash(exc)
            raise
        finally:
            self.stop()
        return 0

    def _account_for_crash(self, exc):
        """The loop itself failed (a bug, not a task's error): what it was
        running counts a delivery, as if its process had died (so a message
        that keeps doing this ends FAILURE after MAX_DELIVERIES), and what
        it had only prefetched goes back uncounted."""
        reason = f"the worker's loop failed ({type(exc).__name__}: {short_repr(exc, 200)})"
        self.stop_reason = reason
        logger.critical("%s; handing back what it held", reason, exc_info=exc)
        prefetched = self._take_prefetched()
        if prefetched:
            self._with_reconnect(
                lambda: self.backend.hand_back(prefetched, self.worker_id, undeliver=True),
                attempts=5)
        for message in list(self.dispatched.values()):
            self._with_reconnect(lambda message=message: housekeeping.deliver_again_or_fail(
                self.backend, message, f"{reason} while running it", self.hostname,
                self.worker_id), attempts=5)

    def _shutting_down(self, how, sig):
        """worker_shutting_down, for a stop signal sent to this worker."""
        if self.install_signals and sig is not None:
            task_signals.send(signals.worker_shutting_down, sender=self.hostname, sig=sig,
                              how=how, exitcode=0)

    def _warm_shutdown(self):
        ids = self._take_prefetched()
        if ids:
            count = self._with_reconnect(
                lambda: self.backend.hand_back(ids, self.worker_id, undeliver=True))
            logger.info("Warm shutdown: handed %d unstarted message(s) back", count)
        if self.pool.jobs:
            logger.info("Warm shutdown: waiting for %d running task(s)", len(self.pool.jobs))
        self._collect_and_store()  # solo has just finished its task inline
        while self.pool.jobs:
            self._wait(self.pool.wait_fds(), 1.0)
            self._collect_and_store()
        self.pool.stop(cold=False)

    def stop(self):
        self._stop_services()
        # Everything finished is stored before anything still claimed is
        # handed back, so no finished task runs again.
        self.flusher.stop()
        released = self._with_reconnect(lambda: at_most_once.hand_back(
            self.backend, self.worker_id, self.claim_pid, self.hostname, self.stop_reason),
            attempts=5)
        if released:
            logger.info("Handed %d claimed message(s) back to the queue", released)
        self._unregister()
        self.backend.close_listener()

    def _stop_services(self):
        self.heartbeat.stop()

    def _unregister(self):
        self._with_reconnect(lambda: self.backend.stop_worker(
            self.worker_id, self.processed, self.failed), attempts=5)
        task_signals.send(signals.worker_shutdown, sender=self)
        logger.info("%s stopped (%d processed, %d failed).", self.hostname,
                    self.processed, self.failed)

    # -- the loop ---------------------------------------------------------

    def step(self):
        if self.lost_id == self.worker_id:
            self._rejoin()
        if not self.flusher.is_alive():
            # Without it nothing finished would ever be stored: stop, and let
            # the supervisor restart the worker (claimed work is redelivered).
            raise RuntimeError("the thread storing results died; see the error above")
        self._collect_and_store()
        self._housekeeping()
        self._return_stale_prefetch()
        if self.pool.free_slots and not self.buffer:
            claimed = self._with_reconnect(self._claim)
            with self.buffer_lock:
                self.buffer.extend((time.monotonic(), m) for m in claimed)
        if self.pool.free_slots and self.buffer:
            self._dispatch()
            return
        self._wait_for_work()

    def _housekeeping(self):
        self._with_reconnect(self.housekeeper.run_due)

    def _claim(self):
        # Prefetched messages are marked started too: they start within
        # moments, or go back to the queue (unstarted) after PREFETCH_PATIENCE.
        limit = self.pool.free_slots + self.prefetch
        claimed = self.backend.claim(self.worker_id, self.queues, limit, start=limit,
                                     pid=self.claim_pid)
        # Outside the claim's retry (flow_gate retries each gate): the claim
        # has committed, and claiming again would leave these messages
        # claimed by this live worker, never run.
        admitted, self.flow_wake_at = flow_gate.admit(self.backend, claimed, self.worker_id,
                                                      self._with_reconnect)
        return admitted

    def _dispatch(self):
        while self.pool.free_slots:
            with self.buffer_lock:
                if not self.buffer:
                    return
                _, message = self.buffer.popleft()
                self.task_started = time.monotonic()
            logger.info("Received task: %s[%s]", message.task_name, message.task_id)
            task_signals.received(message, self.hostname)
            self.dispatched[message.id] = message
            self.pool.submit(message)
            if self.pool.runs_inline:
                return  # the next step stores its result before another task starts

    def _wait_for_work(self):
        fds = list(self.pool.wait_fds())
        listener = None
        if self.pool.free_slots:
            listener = self._with_reconnect(self.backend.queue_listener_fileno)
            if listener is not None:
                fds.append(listener)
        readable = self._wait(fds, self._poll_timeout())
        if listener is not None and listener in readable:
            # Only when a wake-up came: reading the socket costs more than a
            # no-op task, and under load the wait ends on a child instead.
            self._with_reconnect(self.backend.drain_queue_notifications)

    def _poll_timeout(self):
        timeout = settings.POLL_INTERVAL
        if self.pool.jobs:
            # Hard time limits are checked between waits.
            timeout = min(timeout, 0.25)
        if self.buffer:
            timeout = min(timeout, PREFETCH_PATIENCE)
        if self.flow_wake_at is not None:
            timeout = max(0.0, min(timeout, self.flow_wake_at - time.monotonic()))
        return timeout

    def _wait(self, fds, timeout):
        """Wait for one of ``fds``, a signal or ``timeout``; returns the readable fds."""
        if self.shutdown.wakeup_fd is not None:
            fds = [*fds, self.shutdown.wakeup_fd]
        if not fds:
            time.sleep(timeout)
            return set()
        readable = set(select.select(fds, [], [], timeout)[0])
        if self.shutdown.wakeup_fd in readable:
            self.shutdown.drain()
        return readable

    def _return_stale_prefetch(self):
        if not self.buffer or self.pool.free_slots:
            return
        limit = time.monotonic() - PREFETCH_PATIENCE
        with self.buffer_lock:
            stale = [m.id for claimed, m in self.buffer if claimed < limit]
            if stale:
                kept = [(c, m) for c, m in self.buffer if m.id not in stale]
                self.buffer.clear()
                self.buffer.extend(kept)
        if stale:
            self._with_reconnect(
                lambda: self.backend.hand_back(stale, self.worker_id, undeliver=True))

    def _return_prefetch_held_by_a_long_task(self):
        """On the results thread while the loop's thread runs a task (solo)."""
        patience = self._prefetch_patience()
        with self.buffer_lock:
            if not self.buffer or not self.pool.jobs \
                    or time.monotonic() - self.task_started < patience:
                return
            held = [m.id for _, m in self.buffer]
            self.buffer.clear()
        self.backend.hand_back(held, self.worker_id, undeliver=True)
        logger.info("Handed %d prefetched message(s) back to the queue: the running task "
                    "takes over %ss", len(held), patience)

    def _prefetch_patience(self):
        return PREFETCH_PATIENCE

    def _take_prefetched(self, keep=0):
        """Empty the buffer but for its first ``keep`` messages; returns the ids taken."""
        with self.buffer_lock:
            kept = [self.buffer.popleft() for _ in range(min(keep, len(self.buffer)))]
            taken = [m.id for _, m in self.buffer]
            self.buffer.clear()
            self.buffer.extend(kept)
        return taken

    # -- outcomes ---------------------------------------------------------

    def _collect_and_store(self):
        collected = self.pool.collect()
        if self.disowned:
            collected = self._drop_disowned(collected)
        outcomes = [o for o in collected if not (o.redeliver and self._deliver_again(o))]
        self.pool.enforce_time_limits()
        for outcome in outcomes:
            self._count_and_log(outcome)
        self.flusher.store([o for o in outcomes if not o.stored])
        for outcome in collected:
            self.dispatched.pop(outcome.message.id, None)

    def _deliver_again(self, outcome):
        message = outcome.message
        if message.deliveries >= settings.MAX_DELIVERIES or message.acked:
            # Store the failure: it keeps happening, or its at-most-once
            # task began (acks_late=False) and must not run again.
            return False
        logger.warning("Task %s[%s] lost its database connection (%s); delivering it again",
                       message.task_name, message.task_id, outcome.describe())
        self._with_reconnect(lambda: self.backend.hand_back([message.id], self.worker_id))
        return True

    def _count_and_log(self, outcome):
        self.processed += 1
        message = outcome.message
        failed = outcome.state not in QUIET_ENDS and not outcome.requeue
        if not failed and not logger.isEnabledFor(logging.INFO):
            return  # the line's arguments (the result's repr) cost more than a no-op task
        name = f"{message.task_name}[{message.task_id}]"
        if outcome.state == states.SUCCESS:
            logger.info("Task %s succeeded in %.4fs: %s", name, outcome.runtime,
                        outcome.describe())
        elif outcome.state == states.RETRY:
            logger.info("Task %s retry: Retry at %s: %s", name,
                        outcome.retry_at.isoformat(), outcome.describe())
        elif outcome.state == states.REVOKED:
            logger.info("Task %s revoked: %s", name, outcome.describe())
        elif outcome.state == states.IGNORED:
            logger.info("Task %s ignored: %s", name, outcome.describe())
        elif outcome.requeue:
            logger.info("Task %s rejected, requeued: %s", name, outcome.describe())
        else:
            self.failed += 1
            # exc_info: the exception itself reaches the project's handlers
            # (an error tracker's too), its traceback printed by the formatter.
            logger.error("Task %s raised unexpected: %s", name, outcome.describe(),
                         exc_info=_exc_info(outcome.value),
                         extra={"task_id": message.task_id, "task_name": message.task_name})

    # -- declared lost -----------------------------------------------------

    def _on_lost(self, worker_id):
        """From the heartbeat thread: this worker was declared lost under
        ``worker_id``. What it runs is being delivered elsewhere: stop it now."""
        if worker_id != self.worker_id or self.lost_id == worker_id:
            return
        self.lost_id = worker_id
        for message in self.pool.running():
            self.pool.terminate(message.task_id)

    def _rejoin(self):
        """Go on under a new identity, without what the lost one held."""
        lost = self.worker_id
        dropped = self._take_prefetched()  # not handed back: no longer ours to hand
        self.disowned.update(self.dispatched)
        self._with_reconnect(self._register)
        self.pool.worker_id = self.flusher.worker_id = self.heartbeat.worker_id = self.worker_id
        logger.warning("Going on as worker %s (declared lost as %s): %d prefetched message(s) "
                       "dropped and %d running task(s) stopped; the worker that recovers them "
                       "delivers them again", self.worker_id, lost, len(dropped),
                       len(self.disowned))

    def _drop_disowned(self, outcomes):
        kept = []
        for outcome in outcomes:
            message = outcome.message
            if message.id not in self.disowned:
                kept.append(outcome)
                continue
            self.disowned.discard(message.id)
            self.dispatched.pop(message.id, None)
            logger.warning("Task %s[%s] ended (%s) under an identity declared lost: its "
                           "outcome is not stored (the worker that recovers it delivers it "
                           "again, or fails it if it began at most once)", message.task_name,
                           message.task_id, outcome.state)
        return kept

    # -- control ----------------------------------------------------------

    def _terminate(self, requests):
        """Called from the heartbeat thread with tasks revoked with terminate=True."""
        for task_id in requests:
            if self.pool.terminate(task_id):
                logger.warning("Terminating task %s (revoked)", task_id)

    def _with_reconnect(self, operation, attempts=None):
        return with_reconnect(self.backend, operation, attempts)
