"""The database queue: domain operations over one connector per database.

Everything else in the app talks to ``get_backend()`` (see base.py for the
shape: the connector, and the operations by topic above it); all
vendor-specific SQL lives in ``postgresql.py`` and ``sqlite.py``.
"""

from django.db import connections, transaction

from .. import signals
from ..aio import call_outside_event_loop, in_event_loop
from ..conf import settings

_VENDORS = {
    "postgresql": "django_tasks.queue.postgresql.PostgreSQLQueue",
    "sqlite": "django_tasks.queue.sqlite.SQLiteQueue",
}
_backends = {}


def get_backend(alias=None):
    alias = alias or settings.DATABASE
    backend = _backends.get(alias)
    if backend is None:
        from django.utils.module_loading import import_string

        vendor = connections[alias].vendor
        if vendor not in _VENDORS:
            raise NotImplementedError(
                f"django_tasks supports PostgreSQL and SQLite; database {alias!r} is {vendor}")
        backend = _backends[alias] = import_string(_VENDORS[vendor])(alias)
    return backend


def enqueue(messages):
    """Write ``messages`` to the queue (inside the caller's transaction, if any)."""
    if in_event_loop():  # an async view's .delay(): see aio.py
        return call_outside_event_loop(enqueue, messages)
    get_backend().enqueue(messages)
    if signals.after_task_publish.receivers:
        from ..publishing import after

        after(messages)


def enqueue_given_id(message):
    """``enqueue([message])`` of a message whose task id the caller chose.

    Inside a transaction it is written behind a savepoint: a repeated id
    (the queue's unique task_id refuses it, IntegrityError) is rolled back
    alone, and the caller's transaction stays usable. Sends with ids made
    here (every ``.delay()``) never pay for the savepoint.
    """
    if in_event_loop():
        return call_outside_event_loop(enqueue_given_id, message)
    alias = get_backend().alias
    if not connections[alias].in_atomic_block:
        return enqueue([message])
    with transaction.atomic(using=alias):
        return enqueue([message])


def enqueue_unique(message, key, unique_for, given_id=False, before_write=None):
    """Write ``message`` unless a message of its task holds ``key`` (see unique.py).

    Returns the task id of the holder: ``message``'s own when it was written.
    ``before_write``: called once the key is taken, before the write
    (``publishing.before_write``).
    """
    if in_event_loop():
        return call_outside_event_loop(enqueue_unique, message, key, unique_for, given_id,
                                       before_write)
    holder = get_backend().hold_unique_key(message, key, unique_for, given_id, before_write)
    if holder == message.task_id and signals.after_task_publish.receivers:
        from ..publishing import after

        after([message])
    return holder
