"""Storing outcomes on a thread of its own, so the consumer never waits for it.

Outcomes that arrive while a flush is under way are stored together by the
next one, and under load (the last flush stored more than one) a flush
lingers a moment for more: every flush is a statement the database must run,
and at a few thousand tasks a second that cost is most of its work. An idle
worker's single result is stored at once. On a database outage the thread keeps its
outcomes and retries with backoff until they are stored.
"""

import logging
import queue
import threading
import time

from django.db import connections

from ..forking import database_work
from ..limits import FLUSH_CHARS, outcome_chars
from . import storing
from .reconnect import DB_ERRORS

logger = logging.getLogger("django_tasks.worker")

BATCH = 1000
#: How long a flush under load waits for more outcomes to store with it.
LINGER = 0.002
IDLE_TICK = 0.2
MAX_BACKOFF = 30.0
#: Put in the inbox by stop(), after every outcome: ends a wait at once.
_STOP = object()


class Flusher(threading.Thread):
    def __init__(self, backend, worker_id, on_idle=None):
        super().__init__(name="django_tasks-flusher", daemon=True)
        self.backend = backend
        self.worker_id = worker_id
        # Called about every IDLE_TICK seconds while nothing arrives to store.
        self.on_idle = on_idle
        self._inbox = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()
        self._last_batch = 0

    def store(self, outcomes):
        if not outcomes:
            return
        with self._lock:
            self._pending += len(outcomes)
            self._idle.clear()
        for outcome in outcomes:
            self._inbox.put(outcome)

    def run(self):
        try:
            while not (self._stopping.is_set() and self._inbox.empty()):
                try:
                    first = self._inbox.get(timeout=IDLE_TICK)
                except queue.Empty:
                    self._idle_tick()
                    continue
                if first is _STOP:
                    continue
                batch = self._gather(first)
                self._last_batch = len(batch)
                self._flush(batch)
        finally:
            connections.close_all()

    def _gather(self, first):
        batch = [first]
        if self._last_batch > 1 and not self._stopping.is_set():
            # One sleep, not a wait per outcome: a waiting thread is woken by
            # every put(), and each wake-up takes the GIL from the task loop.
            time.sleep(LINGER)
        # Large results are stored a few at a time: one statement must stay
        # far under PostgreSQL's 1 GB message limit.
        chars = outcome_chars(first)
        while len(batch) < BATCH and chars < FLUSH_CHARS:
            try:
                outcome = self._inbox.get_nowait()
            except queue.Empty:
                break
            if outcome is _STOP:
                break
            batch.append(outcome)
            chars += outcome_chars(batch[-1])
        return batch

    def _idle_tick(self):
        if self.on_idle is None:
            return
        try:
            with database_work:
                self.on_idle()
        except DB_ERRORS as exc:
            logger.error("Database unavailable (%s); trying again in %ss",
                         str(exc).strip() or type(exc).__name__, IDLE_TICK)
            connections[self.backend.alias].close()

    def _flush(self, batch):
        delay = 0.5
        count = len(batch)
        while True:
            try:
                with database_work:
                    self._finish(batch)
                break
            except DB_ERRORS as exc:
                logger.error("Database unavailable (%s); storing %d outcome(s) again in %.1fs",
                             str(exc).strip() or type(exc).__name__, len(batch), delay)
                connections[self.backend.alias].close()
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        with self._lock:
            self._pending -= count
            if not self._pending:
                self._idle.set()

    def _finish(self, batch):
        storing.store(self.backend, batch, self.worker_id)

    def wait_idle(self, timeout=None):
        """Block until everything handed over so far is stored."""
        return self._idle.wait(timeout)

    def stop(self):
        """Store what is left, then end the thread."""
        self._stopping.set()
        self._inbox.put(_STOP)
        self.join()
