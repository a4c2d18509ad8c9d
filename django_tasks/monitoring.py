"""Read-only figures about the queue, the workers and throughput.

Shared by the ``tasks_status`` command and the admin, with vendor-neutral
queries that each use an index (claim index, heartbeat index, done index).
Timestamps are read through ``timestamps.readable``/``clamped``: a row
holding one Python cannot (infinity, year 10000) must not fail the page.
"""

from dataclasses import dataclass
from datetime import UTC, timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from . import states
from .conf import settings
from .models import QueuedMessage, TaskResult, Worker
from .timestamps import clamped, readable


@dataclass
class QueueFigures:
    name: str
    waiting: int
    running: int
    oldest_waiting_seconds: float | None


def queue_figures(now=None):
    """Depth, running count and age of the oldest due message, per queue."""
    now = now or timezone.now()
    rows = (QueuedMessage.objects.using(settings.DATABASE).values("queue")
            .annotate(waiting=Count("id", filter=Q(claimed_by__isnull=True)),
                      running=Count("id", filter=Q(claimed_by__isnull=False)),
                      # Clamped: a hand-made '-infinity' must not fail the query.
                      oldest=Min(clamped("available_at"), filter=Q(claimed_by__isnull=True,
                                                                    available_at__lte=now)))
            .order_by("queue"))
    return [QueueFigures(row["queue"], row["waiting"], row["running"],
                         (now - row["oldest"]).total_seconds() if row["oldest"] else None)
            for row in rows]


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
    """``finished_per_minute()`` rows as [(minute, done, failed)]."""
    return [(minute, sum(counts.values()), counts.get(states.FAILURE, 0))
            for minute, counts in per_minute]


def oldest_waiting(queues, now=None):
    """The oldest due, unclaimed message of each named queue: {queue: message}."""
    now = now or timezone.now()
    oldest = {}
    for queue in queues:
        message = (readable(QueuedMessage.objects.using(settings.DATABASE)
                            .only("id", "task_id", "task_name", "queue"), ["available_at"])
                   .filter(queue=queue, claimed_by__isnull=True, available_at__lte=now)
                   .order_by("available_at", "id").first())
        if message is not None:
            oldest[queue] = message
    return oldest
