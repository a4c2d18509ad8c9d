"""Read-only figures about the queue, the workers and throughput.

Shared by the ``tasks_status`` command and the admin, with vendor-neutral
queries that each use an index (claim index, heartbeat index, done index).
Timestamps are read through ``timestamps.readable``: a row
holding one Python cannot (infinity, year 10000) must not fail the page.
"""

from dataclasses import dataclass
from datetime import UTC, timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from . import states
from .conf import settings
from .models import QueuedMessage, TaskResult, Worker
from .queue import get_backend
from .timestamps import readable

#: Waiting messages are counted up to this many per queue (a range of the
#: claim index that long); past it the figure reads "over".
DEPTH_CAP = 10_000
#: Queues, and priority levels within a queue, looked at (one index probe each).
MAX_QUEUES = 1000
MAX_LEVELS = 1000


@dataclass
class QueueFigures:
    name: str
    waiting: int
    running: int
    oldest_waiting_seconds: float | None
    # The oldest due, unclaimed message (id, task_id, task_name, available_at).
    oldest: QueuedMessage | None = None
    # True when more than ``waiting`` (DEPTH_CAP) messages wait.
    waiting_capped: bool = False

    @property
    def waiting_text(self):
        return f"over {self.waiting}" if self.waiting_capped else str(self.waiting)


def queue_figures(now=None):
    """Depth, running count and the oldest due message, per queue.

    Index-bound however deep the queues: the queue names and each queue's
    priority levels come from loose scans of the claim index, waiting
    messages are counted up to DEPTH_CAP, and running ones (as many as the
    workers' slots and prefetch) through the claimed-by index.
    """
    now = now or timezone.now()
    messages = QueuedMessage.objects.using(settings.DATABASE)
    backend = get_backend()
    running = dict(messages.filter(claimed_by__isnull=False).order_by().values("queue")
                   .annotate(n=Count("id")).values_list("queue", "n"))
    names = set(backend.distinct_values(QueuedMessage, "queue", MAX_QUEUES,
                                        where="claimed_by IS NULL"))
    figures = []
    for name in sorted(names | set(running)):
        waiting = messages.filter(claimed_by__isnull=True, queue=name)[:DEPTH_CAP + 1].count()
        oldest = _oldest_due(backend, messages, name, now)
        figures.append(QueueFigures(
            name, min(waiting, DEPTH_CAP), running.get(name, 0),
            (now - oldest.available_at).total_seconds() if oldest is not None else None,
            oldest=oldest, waiting_capped=waiting > DEPTH_CAP))
    return figures


def _oldest_due(backend, messages, queue, now):
    """The oldest due, unclaimed message of ``queue``, or None.

    The claim index orders a queue by priority first, so the oldest is the
    oldest of each priority level's first message: one probe per level,
    not a scan of the queue.
    """
    levels = backend.distinct_values(QueuedMessage, "priority", MAX_LEVELS,
                                     where="claimed_by IS NULL AND queue = %s",
                                     params=[queue], descending=True)
    # readable(): a hand-made '-infinity' must not fail the page.
    heads = [readable(messages.filter(queue=queue, priority=level, claimed_by__isnull=True)
                      .order_by("available_at", "id")
                      .only("id", "task_id", "task_name", "queue"), ["available_at"]).first()
             for level in levels]
    due = [m for m in heads if m is not None and m.available_at <= now]
    return min(due, key=lambda m: (m.available_at, m.id), default=None)


def lost_cutoff(now=None):
    """Heartbeats older than this are stale: their worker is lost."""
    return (now or timezone.now()) - timedelta(seconds=settings.WORKER_LOST_TIMEOUT)


def live_workers(now=None):
    """Workers whose heartbeat is fresh, each with the tasks it holds."""
    now = now or timezone.now()
    cutoff = lost_cutoff(now)
    workers = list(readable(Worker.objects.using(settings.DATABASE),
                            ["started_at", "last_heartbeat", "stopped_at"])
                   .filter(stopped_at__isnull=True, last_heartbeat__gte=cutoff)
                   .order_by("hostname", "started_at"))
    running = {}
    for message in readable(QueuedMessage.objects.using(settings.DATABASE)
                            .filter(claimed_by__in=[w.id for w in workers])
                            .only("task_id", "task_name", "claimed_by"), ["started_at"]):
        running.setdefault(message.claimed_by, []).append(message)
    for worker in workers:
        worker.current = running.get(worker.id, [])
    return workers


def finished_per_minute(minutes=15, now=None):
    """Results stored per minute over the last ``minutes``, by state:
    [(minute, {state: n})], oldest minute first, the current one last.

    Grouped by the database on a range of the ``date_done`` index, so an
    hour of a busy queue comes back as a few hundred rows, not as every
    result; the whole table (which may hold millions) is never counted.
    """
    now = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = now - timedelta(minutes=minutes)
    # Bounded above too: rows past the window are not counted anyway, and a
    # hand-made 'infinity' would fail the query.
    rows = (TaskResult.objects.using(settings.DATABASE)
            .filter(date_done__gte=since, date_done__lt=now)
            .annotate(minute=TruncMinute("date_done", tzinfo=UTC))
            .values("minute", "state").annotate(n=Count("*")).order_by())
    buckets = {since + timedelta(minutes=i): {} for i in range(minutes)}
    for row in rows:
        if row["minute"] in buckets:
            buckets[row["minute"]][row["state"]] = row["n"]
    return sorted(buckets.items())


def throughput(minutes=15, now=None):
    """Finished tasks per minute over the last ``minutes``: [(minute, done, failed)].

    ``done`` counts every result stored in that minute, ``failed`` those that
    ended FAILURE.
    """
    return done_and_failed(finished_per_minute(minutes, now))


def done_and_failed(per_minute):
    """``finished_per_minute()`` rows as [(minute, done, failed)]; a running
    task's custom state (update_state) is not a finished task."""
    return [(minute, sum(n for state, n in counts.items() if not states.is_custom(state)),
             counts.get(states.FAILURE, 0))
            for minute, counts in per_minute]


def unique_keys_held():
    """How many unique keys are held now (see unique.py), counted up to DEPTH_CAP."""
    return get_backend().live_unique_locks()[:DEPTH_CAP + 1].count()
