"""Riding out database outages: retry an operation on a fresh connection, with backoff."""

import logging
import time

from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger("django_tasks.worker")

DB_ERRORS = (OperationalError, InterfaceError)
MAX_BACKOFF = 30.0


def with_reconnect(backend, operation, attempts=None):
    """Run ``operation()`` until it gets through, or ``attempts`` times."""
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
            connections[backend.alias].close()
            backend.close_listener()
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
