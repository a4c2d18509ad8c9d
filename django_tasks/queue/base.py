"""The queue: domain operations over one small connector per database.

Two layers:

- the **connector** (connector.py; PostgreSQL's in postgresql.py) runs
  statements, waits for and sends wake-ups, and holds the vendor's
  shortcut for a lone statement outside a transaction. It is the only
  code that touches the database driver.
- the **domain operations**, grouped by topic in mixins, each written once
  with the ORM and the connector:

  ============  =========================================================
  producer.py   enqueue, the canvas batch writer, unique keys
  consumer.py   claim, start, finish (results + acknowledgement), the
                one hand-back (``hand_back``), revoking
  flow.py       concurrency slots and rate tokens
  results.py    results and groups by task id, purges, the admin's lists
  workers.py    worker rows, lost-worker recovery, housekeeping turns
  ============  =========================================================

``BaseQueue`` is all of them on a connector; ``PostgreSQLQueue`` and
``SQLiteQueue`` override the operations that need their own statements,
which live in their module alone. Callers keep one object per database
(``queue.get_backend()``) and the methods named as before; the waiting and
waking methods pass through to the connector.
"""

import threading

from django.db import connections

from .connector import Connector
from .consumer import (  # noqa: F401 (the names callers import from here)
    CLAIM_COLUMNS,
    FINISH_HOOKS,
    UNCLAIMED,
    Consumer,
    sort_claimed,
)
from .flow import PARKED, FlowControl  # noqa: F401
from .producer import (  # noqa: F401
    REPEATED_TASK_ID_HINT,
    UNIQUE_ATTEMPTS,
    BatchWriter,
    Producer,
    UniqueHolder,
)
from .results import Results
from .workers import Workers


class BaseQueue(Producer, Consumer, FlowControl, Results, Workers):
    """The queue of one database: its domain operations on its connector.

    Subclasses set ``connector_class`` and supply ``enqueue``, ``claim``,
    ``try_unique_key``, ``slot_transaction`` and ``take_rate_tokens``; the
    rest is plain ORM and the same on every database.
    """

    connector_class = Connector
    #: True where store_and_acknowledge() also notifies, in one statement.
    single_statement_finish = False

    def __init__(self, alias):
        self.alias = alias
        self.connector = self.connector_class(alias)
        self._enqueued_in_transaction = threading.local()

    @property
    def connection(self):
        """Django's connection: for its transaction state and ``ops``, never
        for a cursor (that is the connector's)."""
        return connections[self.alias]

    # -- waking: the connector's ---------------------------------------

    @property
    def wakes_up(self):
        """True where waiting is woken by the database (LISTEN/NOTIFY)."""
        return self.connector.wakes_up

    def notify_queue(self):
        self.connector.notify_queue()

    def notify_results(self, task_ids):
        self.connector.notify_results(task_ids)

    def prepare_wait_for_messages(self):
        self.connector.prepare_wait_for_messages()

    def prepare_wait_for_results(self):
        self.connector.prepare_wait_for_results()

    def wait_for_messages(self, timeout):
        return self.connector.wait_for_messages(timeout)

    def wait_for_results(self, timeout):
        return self.connector.wait_for_results(timeout)

    def result_notifications(self):
        return self.connector.result_notifications()

    def queue_listener_fileno(self):
        return self.connector.queue_listener_fileno()

    def drain_queue_notifications(self):
        return self.connector.drain_queue_notifications()

    def close_listener(self):
        self.connector.close_listener()
