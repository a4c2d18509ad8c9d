"""Read-only figures about the queue, the workers and throughput.

Shared by the ``tasks_status`` command and the admin, with vendor-neutral
queries that each use an index (claim index, heartbeat index, done index).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from . import states
from .conf import settings
from .models import QueuedMessage, TaskResult, Worker


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
                      oldest=Min("available_at", filter=Q(claimed_by__isnull=True,
                                                           available_at__lte=now)))
            .order_by("queue"))
    return [QueueFigures(row["queue"], row["waiting"], row["running"],
                         (now - row["oldest"]).total_seconds() if row["oldest"] else None)
            for row in rows]


def live_workers(now=None):
    """Workers whose heartbeat is fresh, each with the tasks it holds."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKER_LOST_TIMEOUT)
    workers = list(Worker.objects.using(settings.DATABASE)
                   .filter(stopped_at__isnull=True, last_heartbeat__gte=cutoff)
                   .order_by("hostname", "started_at"))
    running = {}
    for message in (QueuedMessage.objects.using(settings.DATABASE)
                    .filter(claimed_by__in=[w.id for w in workers])
                    .only("task_id", "task_name", "claimed_by", "started_at")):
        running.setdefault(message.claimed_by, []).append(message)
    for worker in workers:
        worker.current = running.get(worker.id, [])
    return workers


def throughput(minutes=15, now=None):
    """Finished tasks per minute over the last ``minutes``: [(minute, done, failed)]."""
    now = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = now - timedelta(minutes=minutes)
    done = (TaskResult.objects.using(settings.DATABASE).filter(date_done__gte=since)
            .values_list("date_done", "state"))
    buckets = {since + timedelta(minutes=i): [0, 0] for i in range(minutes)}
    for date_done, state in done.iterator():
        minute = date_done.replace(second=0, microsecond=0)
        if minute in buckets:
            buckets[minute][0] += 1
            buckets[minute][1] += state == states.FAILURE
    return [(minute, counts[0], counts[1]) for minute, counts in sorted(buckets.items())]
