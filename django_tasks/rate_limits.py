"""Rate limits: Celery's syntax, and the bucket every worker shares.

``rate_limit`` caps how many messages of a task START per period, across
all workers and hosts. The shared state is one row per task name in
``django_tasks_ratebucket``: GCRA (the token bucket written as one
timestamp, the "theoretical arrival time" ``tat``), so that admitting a
start is one conditional update of one row, taken under the row's lock by
whichever worker claimed the message, on the database's clock.

A message that must wait is handed back with ``available_at`` at a start
time of its own: the bucket's ``horizon`` is the end of the line of such
waiting messages, so that the messages refused together (on any worker)
are spread one interval apart instead of all coming due at once and
contending again. Those times are a plan, not a reservation: a message is
admitted only when the bucket has a token as it starts, so a message that
comes late never starts in a burst with the next ones.
"""

import math
import re
from datetime import timedelta

# How far starts may run ahead of the smooth schedule (GCRA's tolerance):
# workers claim in batches and wake with some delay; without it every late
# claim would lose its token for good. At most rate x 50 ms + 1 starts
# come together.
TOLERANCE = 0.05
# One start per microsecond: the resolution of the database's timestamps.
MAX_PER_SECOND = 1_000_000
# The slowest rate: one start a year (a longer interval is surely a mistake).
MAX_INTERVAL = 365 * 24 * 3600.0

_PERIODS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*")


def _per_period(value):
    """(count, period seconds) of a rate in Celery's syntax, or None if it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value, 1.0) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        match = _RATE.fullmatch(value)
        if match:
            return float(match[1]), _PERIODS[match[2]]
    return None


def interval(value):
    """Seconds between two starts under rate ``value`` (a checked rate), or
    None for no limit (``None``, or ``0`` as in Celery)."""
    count, period = _per_period(value)
    return period / count if count else None


def is_rate(value):
    """Whether ``value`` is a rate the worker can enforce (``None`` or ``0``: no limit)."""
    if value is None:
        return True
    parsed = _per_period(value)
    if parsed is None:
        return False
    count, period = parsed
    return count == 0 or (count / period <= MAX_PER_SECOND and period / count <= MAX_INTERVAL)


def checked_rate_limit(value, where):
    """``value`` if it is a Celery rate limit (``10``, ``"10"``, ``"10/s"``,
    ``"10/m"``, ``"10/h"``; ``0`` or None: no limit), else ``ValueError``
    naming ``where``."""
    if is_rate(value):
        return value
    raise ValueError(f"{where}: rate_limit {value!r:.80} is not a rate: use a number of tasks "
                     "per second, or 'N/s', 'N/m' or 'N/h' (as Celery), from one a year to "
                     f"{MAX_PER_SECOND:,} a second")


def message_rate(value):
    """The ``rate_limit`` header a message carries for ``value``, or None (no limit)."""
    return value if value is not None and interval(value) is not None else None


def take_tokens(tat, horizon, now, count, step, tolerance=TOLERANCE):
    """GCRA for ``count`` claimed messages, each a start ``step`` seconds
    apart: how many start now, when the first of the others may, and the
    bucket's new ``tat`` and ``horizon``.

    ``tat``/``horizon``: the bucket's (datetimes; None for a new bucket).
    The others' times are ``first + i * step``. PostgreSQL's
    TAKE_RATE_TOKENS_SQL is this function in SQL.
    """
    start = now if tat is None else max(tat, now)
    allowance = (now - start).total_seconds() + tolerance
    admitted = min(count, max(0, math.floor(allowance / step) + 1))
    new_tat = start + timedelta(seconds=admitted * step)
    # The line of waiting messages holds only while the bucket is in use: a
    # token left unused means it is gone (purged) or late, and a line far
    # ahead would hold new messages back for nothing.
    line = horizon if tat is not None and horizon is not None \
        and tat >= now - timedelta(seconds=tolerance) else now
    first = max(line, new_tat)
    new_horizon = first + timedelta(seconds=(count - admitted) * step)
    return admitted, first, new_tat, new_horizon
