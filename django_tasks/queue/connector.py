"""The connector: the one part of the queue that talks to the database driver.

A connector runs statements (``execute``), waits for wake-ups and sends
them (LISTEN/NOTIFY where the database has them, sleeping where it polls),
and offers the vendor's shortcut for a lone statement outside a
transaction (``run_directly``). The domain operations above it (base.py
and its topic mixins) say what to do; they never open a cursor or touch
the driver's connection themselves.

``Connector`` here is the polling one, with Django's cursor: what SQLite
uses as it is, and what PostgreSQL's connector (postgresql.py) builds on.
"""

import time

from django.db import connections

# What run_directly() returns where the shortcut is not taken: the caller
# runs its statement the ordinary way.
NOT_RUN = (False, None)


class Connector:
    #: True where waiting is woken by the database (LISTEN/NOTIFY).
    wakes_up = False

    def __init__(self, alias):
        self.alias = alias

    @property
    def connection(self):
        return connections[self.alias]

    # -- statements -----------------------------------------------------

    def execute(self, sql, params=None, fetch=False):
        """Run ``sql`` on Django's cursor (the caller's transaction, if any):
        its rows if ``fetch``, else how many rows it changed."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if fetch else cursor.rowcount

    def run_directly(self, sql, params, then=None):
        """Run ``sql`` (with ``params`` as text) as a transaction of its own
        by the vendor's shortcut past the driver's cursor, where it can now;
        with ``then``, a statement the vendor prepared and its parameters,
        that statement after its commit in the same round trip. Returns
        (whether it ran, the failure of ``then`` or None); (False, None):
        not run, the caller takes the ordinary way."""
        return NOT_RUN

    # -- waking -----------------------------------------------------------

    def notify_queue(self):
        """Wake idle workers (no-op where waking is by polling)."""

    def notify_results(self, task_ids):
        """Wake ``AsyncResult.get()`` callers (no-op where they poll)."""

    def prepare_wait_for_messages(self):
        """Subscribe to wake-ups before looking at the queue (no-op when polling)."""

    def prepare_wait_for_results(self):
        """Subscribe to result wake-ups before looking (no-op when polling)."""

    def wait_for_messages(self, timeout):
        """Block until new work may be there or ``timeout`` seconds pass."""
        time.sleep(timeout)

    def wait_for_results(self, timeout):
        """Block until some result may have been stored or ``timeout`` passes."""
        time.sleep(timeout)

    def result_notifications(self):
        """An async iterator of batches of result notification payloads, the
        first batch (empty) once subscribed; only where ``wakes_up``."""
        raise NotImplementedError

    def queue_listener_fileno(self):
        """A socket that turns readable on a queue wake-up, or None (polling)."""
        return None

    def drain_queue_notifications(self):
        """Consume pending queue wake-ups after the socket turned readable;
        returns how many new messages they announce (None: unknown, any)."""

    def close_listener(self):
        """Drop any connection kept for waiting (before fork, at shutdown)."""
