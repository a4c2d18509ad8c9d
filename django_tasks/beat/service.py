"""The beat loop, as a thread: inside ``runworker --beat`` or alone in ``runbeat``.

It owns its database connection (Django's are per thread), rides out
database outages with backoff, and stops within one wait when asked.
"""

import logging
import threading

from django.db import DatabaseError, connections

from .. import signals, task_signals
from ..forking import database_work
from .scheduler import Scheduler

logger = logging.getLogger("django_tasks.beat")

MAX_BACKOFF = 30.0


class Beat(threading.Thread):
    def __init__(self, alias=None):
        super().__init__(name="django_tasks-beat", daemon=True)
        self.scheduler = Scheduler(alias)
        self._stop_event = threading.Event()

    @classmethod
    def started(cls, alias=None):
        beat = cls(alias)
        beat.start()
        return beat

    def run(self):
        try:
            logger.info("beat: Starting...")
            task_signals.send(signals.beat_init, sender=self)
            if self._retrying(lambda: self.scheduler.sync() or True) is None:
                return
            while not self._stop_event.is_set():
                outcome = self._retrying(self.scheduler.run_pass)
                if outcome is None:
                    return
                _sent, wait = outcome
                self._stop_event.wait(wait)
        finally:
            logger.info("beat: Stopped.")
            connections.close_all()

    def _retrying(self, operation):
        """Run ``operation`` until it succeeds (its result) or beat is stopped (None)."""
        delay = 0.5
        while not self._stop_event.is_set():
            try:
                with database_work:
                    return operation()
            except DatabaseError as exc:
                logger.error("beat: database error (%s); retrying in %.1fs",
                             str(exc).strip() or type(exc).__name__, delay)
                connections[self.scheduler.alias].close()
                self._stop_event.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        return None

    def stop(self, timeout=10.0):
        self._stop_event.set()
        self.join(timeout)
