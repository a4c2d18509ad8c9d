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
from .models import RateBucket, RateOverride
from .rate_limits import message_rate

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


def overrides():
    """(task name, rate shown) of each rate set by ``app.control.rate_limit()``."""
    rows = (RateOverride.objects.using(settings.DATABASE).order_by("task_name")
            .values_list("task_name", "rate_limit")[:MAX_TASKS])
    return [(name, _shown(rate) if message_rate(rate) is not None else "no limit")
            for name, rate in rows]


def rate_text(headers, task_name=None):
    """The rate limit a queued message of ``task_name`` obeys now (an
    ``app.control.rate_limit()`` override, else its ``rate_limit`` header),
    as shown on its admin page; None if it obeys none."""
    sent = headers.get("rate_limit") if isinstance(headers, dict) else None
    override = None
    if task_name is not None:
        override = RateOverride.objects.using(settings.DATABASE).filter(
            task_name=task_name).values_list("rate_limit", flat=True).first()
    if override is not None:
        source = f"set by app.control.rate_limit(); sent with {_shown(sent) if sent else 'none'}"
        if message_rate(override) is None:
            return f"none ({source})"
        return f"{_shown(override)} across all workers ({source}; {WAITS})"
    if sent is None:
        return None
    return f"{_shown(sent)} across all workers ({WAITS})"


WAITS = "over it, the message waits in the queue for its turn: its available at"


def _shown(rate):
    return f"{rate:g}/s" if isinstance(rate, (int, float)) else str(rate)
