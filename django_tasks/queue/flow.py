"""Flow control: concurrency slots and rate tokens (worker/flow_gate.py).

``FlowControl`` is one of the topic mixins ``BaseQueue`` (base.py) is made
of. A message a gate refuses goes back with ``Consumer.hand_back``: parked
(concurrency) or due at its turn (rate). The vendor queue classes supply
``slot_transaction`` and ``take_rate_tokens``, which need each database's
own locking; PostgreSQL also takes slots in one statement.
"""

from django.db.models import F, Q
from django.utils import timezone

from ..models import QueuedMessage
from ..timestamps import HIGHEST
from .consumer import UNCLAIMED

# The available_at of a message waiting for a concurrency slot: beyond the
# claim's reach until a freed slot makes it due (the triggers of migration
# 0012 write it as text; worker/concurrency_gate.py).
PARKED = HIGHEST


class FlowControl:
    """Concurrency slots and rate tokens."""

    # -- concurrency slots (worker/concurrency_gate.py) ---------------------

    def take_slots(self, worker_id, groups):
        """Give claimed messages the free slots of their keys, in order, and
        park the rest until a slot frees (unclaimed, their delivery not
        counted). ``groups``: ``(task_name, key, ids, limits)``, the ids of
        one key in run order, each with its limit. Returns the ids
        admitted; ids no longer claimed by ``worker_id`` are in neither.
        Serialized per key against other gates and the wakers."""
        with self.slot_transaction(None, None):
            admitted = set()
            for task_name, key, ids, limits in groups:
                admitted |= self._take_slots(worker_id, task_name, key, ids, limits)
            return admitted

    def slot_transaction(self, task_name, key):
        """A transaction in which no slot of ``task_name``'s ``key`` is taken
        or freed by another (None: of any key)."""
        raise NotImplementedError

    def _take_slots(self, worker_id, task_name, key, ids, limits):
        rows = QueuedMessage.objects.using(self.alias)
        holders = rows.filter(holds_slot=True, task_name=task_name, concurrency_key=key)
        ours = set(rows.filter(id__in=ids, claimed_by=worker_id).values_list("id", flat=True))
        # One that holds its slot already (the gate run again after its first
        # run's admission committed) keeps it, without taking another: the
        # others fill what the other rows and it leave.
        held = set(holders.filter(id__in=ours).values_list("id", flat=True))
        taken = holders.count()
        admitted = [message_id for message_id in ids if message_id in held]
        parked = []
        for message_id, limit in zip(ids, limits, strict=True):
            if message_id not in ours or message_id in held:
                continue
            if taken < limit:
                admitted.append(message_id)
                taken += 1
            else:
                parked.append(message_id)
        if admitted:
            rows.filter(id__in=admitted).update(concurrency_key=key, holds_slot=True)
        if parked:
            rows.filter(id__in=parked).update(
                concurrency_key=key, holds_slot=False, available_at=PARKED, **UNCLAIMED,
                deliveries=F("deliveries") - 1)
        return set(admitted)

    def wake_for_free_slots(self, limit):
        """Make due the parked messages of keys with free slots, up to
        ``limit``; the housekeeping net under the triggers. Returns how many."""
        rows = QueuedMessage.objects.using(self.alias)
        keys = (rows.filter(available_at=PARKED, claimed_by__isnull=True,
                            concurrency_key__isnull=False)
                .values_list("task_name", "concurrency_key").distinct()[:limit])
        woken = 0
        for task_name, key in keys:
            with self.slot_transaction(task_name, key):
                key_rows = rows.filter(task_name=task_name, concurrency_key=key)
                # Every message of the key that is due or running counts:
                # woken ones are on their way to a slot.
                busy = key_rows.exclude(available_at=PARKED, claimed_by__isnull=True).filter(
                    Q(holds_slot=True) | Q(available_at__lte=timezone.now())).count()
                parked = list(key_rows.filter(available_at=PARKED, claimed_by__isnull=True)
                              .order_by("-priority", "id").values_list("id", "headers"))
                free = _limit_of(parked) - busy
                if free > 0:
                    ids = [pk for pk, _ in parked[:free]]
                    woken += rows.filter(id__in=ids, available_at=PARKED).update(
                        available_at=timezone.now())
        if woken:
            self.notify_queue()
        return woken

    def take_rate_tokens(self, task_name, count, step, tolerance):
        """Atomically, on the database's clock, take the start of ``count``
        messages of ``task_name`` one ``step`` (seconds) apart from its rate
        bucket (``rate_limits.take_tokens``): how many start now, when the
        first of the others may (they follow one ``step`` apart), and the
        database's time now."""
        raise NotImplementedError


def _limit_of(parked):
    """The concurrency limit the first of ``parked`` (id, headers) carries."""
    for _, headers in parked:
        limited = headers.get("concurrency") if isinstance(headers, dict) else None
        if isinstance(limited, list) and len(limited) == 2 and isinstance(limited[1], int):
            return limited[1]
    return 0

