"""A thread that keeps the worker's row fresh, so others can tell it is alive."""

import logging
import threading

from django.db import DatabaseError, connections

from .. import signals, task_signals
from ..conf import settings
from ..forking import database_work

logger = logging.getLogger("django_tasks.worker")


class Heartbeat(threading.Thread):
    def __init__(self, backend, worker_id, interval, counters, on_terminate=None, on_lost=None):
        super().__init__(name="django_tasks-heartbeat", daemon=True)
        self.backend = backend
        # Replaced (by the worker's loop) when the worker goes on under a new identity.
        self.worker_id = worker_id
        self.interval = interval
        self.counters = counters  # callable -> (processed, failed)
        # Called with {task id: (message id, pid)} of running tasks revoked
        # with terminate=True.
        self.on_terminate = on_terminate
        # Called once a beat finds the worker's row declared lost (it was
        # stalled past WORKER_LOST_TIMEOUT): its messages are no longer its own.
        self.on_lost = on_lost
        self._terminated = set()
        self._stop_event = threading.Event()

    def run(self):
        try:
            while not self._stop_event.wait(self.interval):
                self.beat()
        finally:
            connections.close_all()

    def beat(self):
        with database_work:
            self._beat()

    def _beat(self):
        processed, failed = self.counters()
        worker_id = self.worker_id
        try:
            if not self.backend.heartbeat(worker_id, processed, failed):
                logger.error("This worker was declared lost (no heartbeat for over %ss: "
                             "stopped, or starved); its messages are delivered elsewhere",
                             settings.WORKER_LOST_TIMEOUT)
                if self.on_lost is not None:
                    self.on_lost(worker_id)
                return
            task_signals.send(signals.heartbeat_sent, sender=self)
            if self.on_terminate is not None:
                requested = self.backend.terminate_requests(self.worker_id)
                new = {task_id: held for task_id, held in requested.items()
                       if task_id not in self._terminated}
                self._terminated = set(requested)
                if new:
                    self.on_terminate(new)
        except DatabaseError as exc:
            # The next beat retries on a fresh connection; being late a few
            # times is exactly what WORKER_LOST_TIMEOUT allows for.
            logger.warning("heartbeat failed: %s", exc)
            connections[self.backend.alias].close()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=self.interval + 5)
