"""The producer's operations: enqueue, the batch writer, unique keys.

``Producer`` is one of the topic mixins ``BaseQueue`` (base.py) is made of.
Its methods work on ``self.alias`` through the ORM, or ask the vendor's
connector (``self.connector``) for anything the ORM cannot say; the
statements they need are the vendor module's (postgresql.py, sqlite.py),
whose queue class overrides ``enqueue`` and ``try_unique_key``.
"""

from datetime import datetime, timedelta
from typing import NamedTuple

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..models import QueuedMessage, UniqueLock
from ..unique import FOR_HEADER, KEY_HEADER


class BatchWriter:
    """Each batch is one ``enqueue()``: databases that cannot stream rows.

    The protocol: ``write(messages)`` for each full batch, ``finish(messages)``
    once with the rest; used as a context manager, so that an error while
    planning interrupts what the writer holds open.
    """

    def __init__(self, queue):
        self.queue = queue

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def write(self, messages):
        self.queue.enqueue(messages)

    finish = write


class Producer:
    """Messages into the queue, and the unique keys that may keep them out."""

    def enqueue(self, messages):
        raise NotImplementedError

    def message_writer(self):
        """A writer for messages handed over in batches while a canvas is
        planned (``canvas.Plan``), inside the caller's transaction."""
        return BatchWriter(self)

    def remember_uncommitted(self, task_ids):
        """Note ids enqueued in a still-open transaction (``get()`` guard)."""
        if not self.connection.in_atomic_block:
            return
        pending = getattr(self._enqueued_in_transaction, "ids", None)
        if pending is None:
            pending = self._enqueued_in_transaction.ids = set()
        pending.update(task_ids)
        transaction.on_commit(lambda: pending.difference_update(task_ids), using=self.alias)

    def is_uncommitted(self, task_id):
        pending = getattr(self._enqueued_in_transaction, "ids", None)
        return bool(pending) and task_id in pending and self.connection.in_atomic_block

    # -- unique keys (unique.py) -----------------------------------------

    def hold_unique_key(self, message, key, unique_for, given_id=False, before_write=None):
        """Enqueue ``message`` if no live message of its task holds ``key``;
        the holder's task id (``message``'s own if it was written).

        Never raises for a held key: the lock's INSERT does nothing on a
        conflict, so the caller's transaction stays usable. A concurrent
        sender of the same key that has not committed makes this one wait
        for it (the unique index), then see its outcome. ``given_id``: the
        caller chose the task id, which a message without this key may
        already have: a savepoint keeps that IntegrityError to itself.
        ``before_write``: called once the key is taken, before the message
        is written; it may raise (the size limit, for headers its signal's
        receivers added): a savepoint then gives the key back and keeps
        the caller's transaction usable.
        """
        savepoint = given_id or before_write is not None
        with transaction.atomic(using=self.alias, savepoint=savepoint):
            for _ in range(UNIQUE_ATTEMPTS):
                now = timezone.now()
                taken, holder = self.try_unique_key(message, key, unique_for, now)
                if holder is not None:
                    if self._holds(holder, now):
                        return holder.task_id
                    taken = self._take_over(message, key, unique_for, holder, now)
                if taken:
                    if before_write is not None:
                        before_write()
                    self.enqueue([message])
                    return message.task_id
                # The row changed after this statement's snapshot was taken (a
                # concurrent sender committed, or a purge): look at it again.
        raise RuntimeError(f"{message.task_name}: unique_key {key!r} changed hands "
                           f"{UNIQUE_ATTEMPTS} times while this send looked at it")

    def try_unique_key(self, message, key, unique_for, now):
        """Insert the lock row of (task, key) for ``message`` unless one exists:
        (True, None) if inserted, else (False, the existing row's UniqueHolder,
        or None if this statement's snapshot does not show it)."""
        raise NotImplementedError

    def unique_holder(self, task_name, key):
        """The UniqueHolder of (task, key) in a fresh snapshot, or None."""
        queued = QueuedMessage.objects.using(self.alias).filter(task_id=OuterRef("task_id"))
        row = (UniqueLock.objects.using(self.alias).filter(task_name=task_name, key=key)
               .values_list("task_id", "created_at", "held_until")
               .annotate(queued=Exists(queued)).first())
        return None if row is None else UniqueHolder(*row)

    @staticmethod
    def _holds(holder, now):
        return holder.queued or (holder.held_until is not None and holder.held_until > now)

    def _take_over(self, message, key, unique_for, holder, now):
        """Hand a stale lock to ``message``, if nobody took it meanwhile: the
        compare (task id and time of the take) is on the row's own values,
        which an UPDATE re-reads after waiting for a concurrent one."""
        return bool(UniqueLock.objects.using(self.alias).filter(
            task_name=message.task_name, key=key, task_id=holder.task_id,
            created_at=holder.created_at).update(
            task_id=message.task_id, unique_for=unique_for, created_at=now, held_until=None))

    def record_unique_finishes(self, messages):
        """Hold the keys of these acknowledged messages ``unique_for`` longer."""
        now = timezone.now()
        locks = UniqueLock.objects.using(self.alias)
        for m in messages:
            locks.filter(task_name=m.task_name, key=m.headers[KEY_HEADER],
                         task_id=m.task_id).update(
                held_until=now + timedelta(seconds=m.headers[FOR_HEADER]))

    def live_unique_locks(self):
        """The lock rows whose key is held now (their message queued, or within unique_for)."""
        queued = QueuedMessage.objects.using(self.alias).filter(task_id=OuterRef("task_id"))
        return UniqueLock.objects.using(self.alias).filter(
            Q(Exists(queued)) | Q(held_until__gt=timezone.now()))

    def purge_unique_locks(self, older_than, batch_size):
        """Delete lock rows taken before ``older_than`` that hold nothing any
        more (keys used once). Each DELETE repeats the conditions: a row
        taken over meanwhile has a new ``created_at``, which the DELETE
        re-reads after waiting for that taker, and keeps."""
        queued = QueuedMessage.objects.using(self.alias).filter(task_id=OuterRef("task_id"))
        stale = UniqueLock.objects.using(self.alias).filter(
            ~Exists(queued), Q(held_until__isnull=True) | Q(held_until__lte=timezone.now()),
            created_at__lt=older_than)
        total = 0
        while True:
            keys = list(stale.order_by("id").values_list("pk", flat=True)[:batch_size])
            if not keys:
                return total
            total += stale.filter(pk__in=keys)._raw_delete(self.alias)


# the queue table refuses it).
REPEATED_TASK_ID_HINT = (
    "A task_id given to apply_async() is refused while a message with that id waits or "
    "runs; once it has finished, the id may be sent again (its new result replaces the "
    "old one).")

# A send looks again when the lock row changed under it (see hold_unique_key);
# each look follows a commit of another sender of the key, so this is never reached
# but by a pathological stream of takes of one key.
UNIQUE_ATTEMPTS = 100


class UniqueHolder(NamedTuple):
    """A lock row as a send sees it."""

    task_id: str
    created_at: datetime
    held_until: datetime | None
    queued: bool  # its message is in the queue

