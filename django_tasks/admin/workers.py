"""Workers in the admin: who is alive, what each holds, how much it did.

Read-only: rows are written by the workers themselves (heartbeats) and
deleted by housekeeping a week after a worker stopped.
"""

from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join

from ..conf import settings
from ..models import QueuedMessage, Worker
from ..monitoring import lost_cutoff
from ..timestamps import readable
from .display import ReadOnlyAdmin, badge, human_duration, stored_time, time_column

STATUS_COLOURS = {"alive": "#2e7d32", "lost": "#c62828", "stopped": "#757575"}
#: Read through timestamps.readable(): a row may hold times Python cannot.
TIMESTAMPS = ["started_at", "last_heartbeat", "stopped_at"]
CURRENT_LISTED = 50


def worker_status(worker, now):
    """alive (fresh heartbeat), stopped (said so), or lost (went silent)."""
    if worker.stopped_at is None:
        return "alive" if worker.last_heartbeat >= lost_cutoff(now) else "lost"
    # Housekeeping marks a lost worker stopped too and leaves its stale
    # heartbeat; a worker that stops itself beats as it stops.
    return "lost" if worker.last_heartbeat < lost_cutoff(worker.stopped_at) else "stopped"


class WorkerStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("alive", "alive"), ("lost", "lost (heartbeat stale)"), ("stopped", "stopped")]

    def queryset(self, request, queryset):
        cutoff = lost_cutoff(timezone.now())
        marked_lost = Q(stopped_at__isnull=False,
                        last_heartbeat__lt=F("stopped_at")
                        - timedelta(seconds=settings.WORKER_LOST_TIMEOUT))
        if self.value() == "alive":
            return queryset.filter(stopped_at__isnull=True, last_heartbeat__gte=cutoff)
        if self.value() == "lost":
            return queryset.filter(Q(stopped_at__isnull=True, last_heartbeat__lt=cutoff)
                                   | marked_lost)
        if self.value() == "stopped":
            return queryset.filter(stopped_at__isnull=False).exclude(marked_lost)
        return queryset


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ["hostname", "pid", "queue_names", "pool", "concurrency", "status",
                    "heartbeat_age", "processed", "failed", "current_count", "started_at_shown"]
    list_filter = [WorkerStatusFilter, "pool"]
    search_fields = ["hostname"]
    ordering = ["-started_at"]
    fieldsets = [
        (None, {"fields": ["hostname", "pid", "id", "status", "queue_names", "pool",
                           "concurrency"]}),
        ("Life", {"fields": ["started_at_shown", "last_heartbeat_shown", "heartbeat_age",
                             "stopped_at_shown"]}),
        ("Work", {"fields": ["processed", "failed", "current_tasks"]}),
    ]
    readonly_fields = ["status", "queue_names", "heartbeat_age", "current_tasks",
                       "started_at_shown", "last_heartbeat_shown", "stopped_at_shown"]

    started_at_shown = time_column("started_at", "started at")
    last_heartbeat_shown = time_column("last_heartbeat", "last heartbeat")
    stopped_at_shown = time_column("stopped_at", "stopped at")

    def get_queryset(self, request):
        # One subquery per listed worker, on the claimed-by index.
        held = (QueuedMessage.objects.filter(claimed_by=OuterRef("pk")).order_by()
                .values("claimed_by").annotate(n=Count("id")).values("n"))
        return readable(super().get_queryset(request), TIMESTAMPS).annotate(
            current=Coalesce(Subquery(held), 0))

    @admin.display(description="status")
    def status(self, obj):
        state = worker_status(obj, timezone.now())
        return badge(state, STATUS_COLOURS[state])

    @admin.display(description="queues")
    def queue_names(self, obj):
        return ", ".join(obj.queues or [])

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat_age(self, obj):
        if "last_heartbeat" in obj.out_of_range:
            return stored_time(obj, "last_heartbeat")
        return f"{human_duration(timezone.now() - obj.last_heartbeat)} ago"

    @admin.display(description="current tasks", ordering="current")
    def current_count(self, obj):
        return obj.current

    @admin.display(description="current tasks")
    def current_tasks(self, obj):
        rows = list(readable(QueuedMessage.objects.using(settings.DATABASE)
                             .only("id", "task_id", "task_name"), ["claimed_at", "started_at"])
                    .filter(claimed_by=obj.pk).order_by("claimed_at")[:CURRENT_LISTED])
        if not rows:
            return "-"
        now = timezone.now()
        return format_html_join(
            "", "<div><a href=\"{}\">{}</a> [{}] {} for {}</div>",
            ((reverse("admin:django_tasks_queuedmessage_change", args=[r.pk]), r.task_name,
              r.task_id, "running" if r.started_at else "claimed (prefetched)",
              _held_for(r, now)) for r in rows))



def _held_for(message, now):
    column = "started_at" if message.started_at else "claimed_at"
    if column in message.out_of_range:
        return stored_time(message, column)
    return human_duration(now - getattr(message, column))
