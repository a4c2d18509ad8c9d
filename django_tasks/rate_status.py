"""What waits for its rate limit: figures for ``tasks_status`` and the admin.

Read from the rate buckets (one row per rate-limited task name), never
from the queue table: messages over a limit wait there as plain scheduled
messages, each due at its turn, and the bucket's ``horizon`` is the end of
that line. So the figures cost one small read however deep the queue is.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from .conf import settings
from .models import RateBucket

#: Tasks listed at most, the longest line first.
MAX_TASKS = 50


@dataclass
class RateFigures:
    task_name: str
    line_ends_in: timedelta  # when the last message handed back may start

    @property
    def line_text(self):
        return f"{self.line_ends_in.total_seconds():.1f}s"


def held_back_by_rate(limit=MAX_TASKS):
    """Tasks whose messages wait in the queue for their rate limit's turn."""
    now = timezone.now()
    rows = (RateBucket.objects.using(settings.DATABASE).filter(horizon__gt=now)
            .order_by("-horizon").values_list("task_name", "horizon")[:limit])
    return [RateFigures(name, horizon - now) for name, horizon in rows]


def rate_text(headers):
    """The rate limit a queued message obeys (its ``rate_limit`` header), as
    shown on its admin page; None if it has none."""
    rate = headers.get("rate_limit") if isinstance(headers, dict) else None
    if rate is None:
        return None
    shown = f"{rate:g}/s" if isinstance(rate, (int, float)) else str(rate)
    return (f"{shown} across all workers (over it, the message waits in the queue for its "
            "turn: its available at)")
