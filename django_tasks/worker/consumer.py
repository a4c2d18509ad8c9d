"""The consumer loop: claim messages, run them, store outcomes, repeat.

    claim (one statement) -> run in a pool slot -> finish (one transaction)

Database outages are ridden out: the loop logs them, reconnects with
backoff, and retries storing outcomes it already has, so claimed work is
never dropped.
"""

import logging
import os
import time

from django.db import InterfaceError, OperationalError, connections, transaction

from .. import signals, states
from ..conf import settings
from ..queue import get_backend
from ..registry import tasks as registry
from .execution import execute
from .heartbeat import Heartbeat
from .shutdown import ColdShutdown, ShutdownState

logger = logging.getLogger("django_tasks.worker")

DB_ERRORS = (OperationalError, InterfaceError)
MAX_BACKOFF = 30.0


class Consumer:
    def __init__(self, queues, hostname, concurrency=1, pool="solo", prefetch_multiplier=1,
                 install_signals=True):
        self.queues = list(queues)
        self.hostname = hostname
        self.concurrency = concurrency
        self.pool = pool
        self.claim_limit = max(1, concurrency * prefetch_multiplier)
        self.backend = get_backend()
        self.shutdown = ShutdownState()
        self.install_signals = install_signals
        self.worker_id = None
        self.processed = 0
        self.failed = 0

    # -- life cycle -------------------------------------------------------

    def start(self):
        row = self.backend.register_worker(
            hostname=self.hostname, pid=os.getpid(), queues=self.queues, pool=self.pool,
            concurrency=self.concurrency)
        self.worker_id = row.id
        self.heartbeat = Heartbeat(self.backend, self.worker_id, settings.HEARTBEAT_INTERVAL,
                                   lambda: (self.processed, self.failed))
        self.heartbeat.start()
        if self.install_signals:
            self.shutdown.install()
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self)

    def run(self):
        """Run until a stop signal; returns the process exit code."""
        self.start()
        try:
            while not self.shutdown.warm:
                self.run_once()
        except ColdShutdown:
            logger.warning("Cold shutdown: running task handed back to the queue")
        finally:
            self.stop()
        return 0

    def stop(self):
        self.heartbeat.stop()
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

    # -- the loop ---------------------------------------------------------

    def run_once(self):
        """Claim a batch and run it, or wait for a wake-up when there is none."""
        batch = self._with_reconnect(self._claim)
        if not batch:
            self._with_reconnect(lambda: self.backend.wait_for_messages(
                min(settings.POLL_INTERVAL, 1.0)))
            return
        for position, message in enumerate(batch):
            if self.shutdown.warm:
                rest = [m.id for m in batch[position:]]
                count = self._with_reconnect(
                    lambda rest=rest: self.backend.release(self.worker_id, rest))
                logger.info("Warm shutdown: handed %d unstarted message(s) back", count)
                return
            self.process(message)

    def _claim(self):
        self.backend.prepare_wait_for_messages()
        return self.backend.claim(self.worker_id, self.queues, self.claim_limit)

    def process(self, message):
        logger.info("Received task: %s[%s]", message.task_name, message.task_id)
        task = registry.get(message.task_name)
        if task is not None and task.atomic:
            outcome = self._run_atomic(message)
        else:
            if task is not None and task.track_started:
                self._with_reconnect(lambda: self.backend.mark_started([message.id]))
            outcome = execute(message, self.hostname)
            self._with_reconnect(lambda: self.backend.finish([outcome], self.worker_id))
        self._count_and_log(outcome)
        return outcome

    def _run_atomic(self, message):
        # The task's writes, its result and its acknowledgement commit
        # together: killed halfway, none of them happened.
        with transaction.atomic(using=self.backend.alias):
            outcome = execute(message, self.hostname)
            self.backend.finish_in_transaction([outcome], self.worker_id)
        return outcome

    def _count_and_log(self, outcome):
        self.processed += 1
        message = outcome.message
        name = f"{message.task_name}[{message.task_id}]"
        if outcome.state == states.SUCCESS:
            logger.info("Task %s succeeded in %.4fs: %s", name, outcome.runtime,
                        _short(outcome.value))
        elif outcome.state == states.RETRY:
            logger.info("Task %s retry: Retry at %s: %r", name,
                        outcome.retry_at.isoformat(), outcome.value)
        elif outcome.state == states.REVOKED:
            logger.info("Task %s revoked: %s", name, outcome.value)
        else:
            self.failed += 1
            logger.error("Task %s raised unexpected: %r\n%s", name, outcome.value,
                         outcome.traceback or "(no traceback)")

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


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
