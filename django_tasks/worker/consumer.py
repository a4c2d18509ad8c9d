"""The consumer loop: claim messages, hand them to pool slots, store outcomes.

    claim (one statement for many) -> pool slot -> flush (one transaction for many)

Messages are claimed only for free slots (plus a small prefetch shared by
all slots of this worker, never tied to one busy slot), so a long task
never holds back work an idle slot could run. Outcomes that arrive
together are stored together. Database outages are ridden out: the loop
logs them, reconnects with backoff, and keeps the outcomes it has until
they are stored, so claimed work is never dropped.
"""

import collections
import logging
import os
import select
import threading
import time

from django.db import InterfaceError, OperationalError, connections
from django.db.backends.signals import connection_created

from .. import signals, states
from ..conf import settings
from ..exceptions import TimeLimitExceeded
from ..queue import get_backend
from . import housekeeping
from .execution import interrupted_outcome
from .flusher import Flusher
from .heartbeat import Heartbeat
from .pools import create_pool
from .shutdown import ColdShutdown, ShutdownState

logger = logging.getLogger("django_tasks.worker")

DB_ERRORS = (OperationalError, InterfaceError)
MAX_BACKOFF = 30.0
# A prefetched message waiting longer than this for a free slot goes back to
# the queue, where another worker may be idle.
PREFETCH_PATIENCE = 1.0



class Consumer:
    def __init__(self, queues, hostname, concurrency=1, pool="solo", prefetch_multiplier=1,
                 max_tasks_per_child=None, install_signals=True):
        self.queues = list(queues)
        self.hostname = hostname
        self.concurrency = concurrency
        self.pool_name = pool
        self.prefetch = max(0, concurrency * (prefetch_multiplier - 1))
        self.max_tasks_per_child = max_tasks_per_child
        self.backend = get_backend()
        self.shutdown = ShutdownState()
        self.install_signals = install_signals
        self.worker_id = None
        self.pid = os.getpid()
        self.pool = None
        self.buffer = collections.deque()  # (claimed_at monotonic, message)
        self.flusher = None
        self.processed = 0
        self.failed = 0

    # -- life cycle -------------------------------------------------------

    def start(self):
        if self.pool_name != "solo":  # solo runs task code on this connection too
            connection_created.connect(self._tune_connection, weak=False)
            connections[self.backend.alias].close()  # reopen with the tuning
        row = self.backend.register_worker(
            hostname=self.hostname, pid=os.getpid(), queues=self.queues, pool=self.pool_name,
            concurrency=self.concurrency)
        self.worker_id = row.id
        self.pool = create_pool(self.pool_name, self.concurrency, hostname=self.hostname,
                                backend=self.backend, worker_id=self.worker_id,
                                max_tasks_per_child=self.max_tasks_per_child)
        self.pool.start()
        self.flusher = Flusher(self.backend, self.worker_id)
        self.flusher.start()
        self.housekeeper = housekeeping.Housekeeper(self.backend)
        if self.install_signals:
            self.shutdown.install()
        self.heartbeat = Heartbeat(self.backend, self.worker_id, settings.HEARTBEAT_INTERVAL,
                                   lambda: (self.processed, self.failed), self._terminate)
        self.heartbeat.start()
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self)

    def run(self):
        """Run until a stop signal; returns the process exit code."""
        self.start()
        try:
            while not self.shutdown.warm:
                self.step()
            self._warm_shutdown()
        except ColdShutdown:
            logger.warning("Cold shutdown: stopping %d running task(s); their messages go "
                           "back to the queue", len(self.pool.jobs))
            self.pool.stop(cold=True)
        finally:
            self.stop()
        return 0

    def _warm_shutdown(self):
        if self.buffer:
            ids = [m.id for _, m in self.buffer]
            self.buffer.clear()
            count = self._with_reconnect(
                lambda: self.backend.release_messages(ids, undeliver=True))
            logger.info("Warm shutdown: handed %d unstarted message(s) back", count)
        if self.pool.jobs:
            logger.info("Warm shutdown: waiting for %d running task(s)", len(self.pool.jobs))
        self._collect_and_store()  # solo has just finished its task inline
        while self.pool.jobs:
            self._wait(self.pool.wait_fds(), 1.0)
            self._collect_and_store()
        self.pool.stop(cold=False)

    def stop(self):
        self.heartbeat.stop()
        # Everything finished is stored before anything still claimed is
        # handed back, so no finished task runs again.
        self.flusher.stop()
        released = self._with_reconnect(lambda: self.backend.release(self.worker_id),
                                        attempts=5)
        if released:
            logger.info("Handed %d claimed message(s) back to the queue", released)
        self._with_reconnect(lambda: self.backend.stop_worker(
            self.worker_id, self.processed, self.failed), attempts=5)
        self.backend.close_listener()
        signals.worker_shutdown.send(sender=self)
        logger.info("%s stopped (%d processed, %d failed).", self.hostname,
                    self.processed, self.failed)

    def _tune_connection(self, sender, connection, **kwargs):
        # Only this process's own threads: not prefork children, not pool threads.
        if (connection.alias == self.backend.alias and os.getpid() == self.pid
                and (threading.current_thread() is threading.main_thread()
                     or threading.current_thread() is self.flusher)):
            self.backend.tune_worker_session(connection)

    # -- the loop ---------------------------------------------------------

    def step(self):
        if not self.flusher.is_alive():
            # Without it nothing finished would ever be stored: stop, and let
            # the supervisor restart the worker (claimed work is redelivered).
            raise RuntimeError("the thread storing results died; see the error above")
        self._collect_and_store()
        self._with_reconnect(self.housekeeper.run_due)
        self._return_stale_prefetch()
        if self.pool.free_slots and not self.buffer:
            self.buffer.extend((time.monotonic(), m) for m in self._with_reconnect(self._claim))
        if self.pool.free_slots and self.buffer:
            self._dispatch()
            return
        self._wait_for_work()

    def _claim(self):
        # Prefetched messages are marked started too: they start within
        # moments, or go back to the queue (unstarted) after PREFETCH_PATIENCE.
        limit = self.pool.free_slots + self.prefetch
        return self.backend.claim(self.worker_id, self.queues, limit, start=limit)

    def _dispatch(self):
        while self.pool.free_slots and self.buffer:
            _, message = self.buffer.popleft()
            logger.info("Received task: %s[%s]", message.task_name, message.task_id)
            self.pool.submit(message)

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
        stale = [m.id for claimed, m in self.buffer if claimed < limit]
        if stale:
            self.buffer = collections.deque((c, m) for c, m in self.buffer if m.id not in stale)
            self._with_reconnect(lambda: self.backend.release_messages(stale, undeliver=True))

    # -- outcomes ---------------------------------------------------------

    def _collect_and_store(self):
        outcomes, lost = self.pool.collect()
        lost += self.pool.enforce_time_limits()
        for item in lost:
            outcome = self._outcome_of_lost(item)
            if outcome is not None:
                outcomes.append(outcome)
        outcomes = [o for o in outcomes if not (o.redeliver and self._deliver_again(o))]
        for outcome in outcomes:
            self._count_and_log(outcome)
        self.flusher.store([o for o in outcomes if not o.stored])

    def _outcome_of_lost(self, lost):
        message = lost.job.message
        if lost.time_limit:
            return interrupted_outcome(message, TimeLimitExceeded(lost.reason), self.hostname)
        outcome = housekeeping.lost_or_failed(message, lost.reason, settings.MAX_DELIVERIES)
        if outcome is None:
            logger.warning("Delivering %s[%s] again (delivery %d of at most %d)",
                           message.task_name, message.task_id, message.deliveries + 1,
                           settings.MAX_DELIVERIES)
            self._with_reconnect(lambda: self.backend.release_messages([message.id]))
        return outcome

    def _deliver_again(self, outcome):
        message = outcome.message
        if message.deliveries >= settings.MAX_DELIVERIES:
            return False  # store the failure: it keeps happening
        logger.warning("Task %s[%s] lost its database connection (%s); delivering it again",
                       message.task_name, message.task_id, outcome.describe())
        self._with_reconnect(lambda: self.backend.release_messages([message.id]))
        return True

    def _count_and_log(self, outcome):
        self.processed += 1
        message = outcome.message
        name = f"{message.task_name}[{message.task_id}]"
        if outcome.state == states.SUCCESS:
            logger.info("Task %s succeeded in %.4fs: %s", name, outcome.runtime,
                        outcome.describe())
        elif outcome.state == states.RETRY:
            logger.info("Task %s retry: Retry at %s: %s", name,
                        outcome.retry_at.isoformat(), outcome.describe())
        elif outcome.state == states.REVOKED:
            logger.info("Task %s revoked: %s", name, outcome.describe())
        else:
            self.failed += 1
            logger.error("Task %s raised unexpected: %s\n%s", name, outcome.describe(),
                         outcome.traceback or "(no traceback)")

    # -- control ----------------------------------------------------------

    def _terminate(self, task_ids):
        """Called from the heartbeat thread with tasks revoked with terminate=True."""
        for task_id in task_ids:
            if self.pool.terminate(task_id):
                logger.warning("Terminating task %s (revoked)", task_id)

    # -- riding out database outages ------------------------------------

    def _with_reconnect(self, operation, attempts=None):
        delay = 0.5
        tried = 0
        while True:
            try:
                return operation()
            except DB_ERRORS as exc:
                tried += 1
                if attempts is not None and tried >= attempts:
                    raise
                logger.error("Database unavailable (%s); retrying in %.1fs",
                             str(exc).strip() or type(exc).__name__, delay)
                connections[self.backend.alias].close()
                self.backend.close_listener()
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
