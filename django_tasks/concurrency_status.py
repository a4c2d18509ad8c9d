"""What waits for a concurrency slot: figures for ``tasks_status`` and the admin.

Read from the queue table's concurrency index (rows of limited messages
only): the parked messages of each key, its slot holders, and its limit
(carried by each message's ``concurrency`` header).
"""

import json
from dataclasses import dataclass

from django.db.models import Count, Q

from .concurrency import HEADER, describe_key
from .conf import settings
from .models import QueuedMessage
from .queue.base import PARKED

#: Keys listed at most, those with the most messages waiting first.
MAX_KEYS = 50

WAITING_FOR_SLOT = Q(available_at=PARKED, claimed_by__isnull=True)


@dataclass
class KeyFigures:
    task_name: str
    key: str
    waiting: int
    running: int
    limit: int | None

    @property
    def key_shown(self):
        return describe_key(self.key)

    @property
    def running_text(self):
        return f"{self.running}/{self.limit if self.limit is not None else '?'}"


def waiting_for_slots(limit=MAX_KEYS):
    """The keys with messages waiting for a slot, most waiting first."""
    rows = (QueuedMessage.objects.using(settings.DATABASE)
            .filter(concurrency_key__isnull=False)
            .values("task_name", "concurrency_key")
            .annotate(waiting=Count("id", filter=WAITING_FOR_SLOT),
                      running=Count("id", filter=Q(holds_slot=True)))
            .filter(waiting__gt=0).order_by("-waiting", "task_name", "concurrency_key")[:limit])
    return [KeyFigures(r["task_name"], r["concurrency_key"], r["waiting"], r["running"],
                       _limit(r["task_name"], r["concurrency_key"])) for r in rows]


def _limit(task_name, key):
    headers = (QueuedMessage.objects.using(settings.DATABASE)
               .filter(WAITING_FOR_SLOT, task_name=task_name, concurrency_key=key)
               .values_list("headers", flat=True).first())
    return limit_in(headers)


def limit_in(headers):
    """The limit a message's headers (a dict, or its JSON text) carry, or None."""
    if isinstance(headers, str):
        try:
            headers = json.loads(headers)
        except ValueError:
            return None
    limited = headers.get(HEADER) if isinstance(headers, dict) else None
    if isinstance(limited, list) and len(limited) == 2 and isinstance(limited[1], int):
        return limited[1]
    return None


def is_waiting_for_slot(message):
    return message.claimed_by is None and message.available_at >= PARKED \
        and message.concurrency_key is not None


def slot_text(message, headers=None):
    """The concurrency state of one queued message, or None if it has none:
    "waiting for a concurrency slot (2/2 running for key X)"."""
    if message.concurrency_key is None:
        return None
    running = (QueuedMessage.objects.using(settings.DATABASE)
               .filter(task_name=message.task_name, concurrency_key=message.concurrency_key,
                       holds_slot=True).count())
    limit = limit_in(message.headers if headers is None else headers)
    of = f"{running}/{limit if limit is not None else '?'} running for key " \
         f"{describe_key(message.concurrency_key)}"
    if message.holds_slot:
        return f"holds a concurrency slot ({of})"
    if is_waiting_for_slot(message):
        return f"waiting for a concurrency slot ({of})"
    return f"limited ({of})"
