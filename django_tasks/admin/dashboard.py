"""The admin's live dashboard: queues, results of the last hour, throughput, workers.

Registered on the ``Dashboard`` proxy model so it has a place on the admin
index and its own permission (``django_tasks.view_dashboard``). The page
polls ``fragment/`` every few seconds and swaps in the new figures.

Every figure comes from an indexed query, whatever the size of the results
table: the queue table (loose scans of the claim index, and waiting messages
counted up to a cap, so the page says "over N" past it), the results of
the last hour (a range of the ``date_done`` index, grouped by the database),
and the live workers (the heartbeat index).
"""

from collections import Counter

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from .. import concurrency_status, monitoring, rate_status, states, svgcharts
from ..models import Dashboard, TaskResult
from ..queue import get_backend
from .display import STATE_COLOURS, ReadOnlyAdmin, human_duration, state_badge, stored_time

WINDOW_MINUTES = 60
DEFAULT_REFRESH = 5
# Result states in the order the table shows them.
RESULT_STATES = [states.SUCCESS, states.FAILURE, states.RETRY, states.REVOKED, states.REJECTED,
                 states.STARTED, states.RECEIVED, states.PENDING]


def refresh_seconds(request):
    """``?refresh=N`` (seconds, 0 = off), else the default; bad values give the default."""
    try:
        seconds = float(request.GET.get("refresh", DEFAULT_REFRESH))
    except ValueError:
        return DEFAULT_REFRESH
    return seconds if 0 <= seconds <= 3600 else DEFAULT_REFRESH


def failure_rate(done, failed):
    """Failed share of finished tasks in percent, or None when nothing finished."""
    return 100 * failed / done if done else None


def age(row, column, now):
    """How long ago ``row.column`` was; marked if it holds a time Python cannot."""
    if column in row.out_of_range:
        return stored_time(row, column)
    return human_duration(now - getattr(row, column))


def dashboard_figures(now=None):
    """Everything the dashboard shows, as plain values for the template."""
    now = now or timezone.now()
    queues = monitoring.queue_figures(now)
    for q in queues:
        q.oldest_age = "-" if q.oldest is None else age(q.oldest, "available_at", now)
    # One scan of the last hour's results gives both the chart and the states.
    per_minute = monitoring.finished_per_minute(WINDOW_MINUTES, now)
    by_state = Counter()
    for _, counts in per_minute:
        by_state.update(counts)
    state_rows = [(state, by_state.get(state, 0), state_badge(state))
                  for state in RESULT_STATES if state in by_state or state in states.READY_STATES]
    # Custom states tasks reported while running (update_state), after Celery's.
    state_rows += [(state, n, state_badge(state)) for state, n in sorted(by_state.items())
                   if states.is_custom(state)]
    rows = monitoring.done_and_failed(per_minute)
    done = sum(d for _, d, _ in rows)
    failed = sum(f for _, _, f in rows)
    workers = monitoring.live_workers(now)
    for worker in workers:
        worker.heartbeat_age = age(worker, "last_heartbeat", now)
    return {
        "now": now,
        "window_minutes": WINDOW_MINUTES,
        "queues": queues,
        "waiting": sum(q.waiting for q in queues),
        # Some queue is deeper than it was counted (monitoring.DEPTH_CAP).
        "waiting_capped": any(q.waiting_capped for q in queues),
        "running": sum(q.running for q in queues),
        "state_rows": state_rows,
        "results_estimate": get_backend().estimated_row_count(TaskResult),
        "done": done,
        "failed": failed,
        "failure_rate": failure_rate(done, failed),
        "throughput": rows,
        "workers": workers,
        "waiting_for_slots": concurrency_status.waiting_for_slots(),
        "held_back_by_rate": rate_status.held_back_by_rate(),
        "unique_keys_held": monitoring.unique_keys_held(),
    }


def charts(figures):
    """The two SVG charts of the last hour: done/failed per minute, and failure rate."""
    rows = figures["throughput"]
    labels = [f"{timezone.localtime(minute):%H:%M}" for minute, _, _ in rows]
    window = figures["window_minutes"]
    throughput = svgcharts.bar_chart(
        "throughput-chart", f"Tasks finished per minute, last {window} min", labels,
        [svgcharts.Series("done", [d for _, d, _ in rows], STATE_COLOURS[states.SUCCESS]),
         svgcharts.Series("failed", [f for _, _, f in rows], STATE_COLOURS[states.FAILURE])],
        y_label="tasks", attrs={"data-total": figures["done"], "data-failed": figures["failed"]})
    rate = figures["failure_rate"]
    failures = svgcharts.line_chart(
        "failure-rate-chart", f"Failure rate per minute, last {window} min", labels,
        [failure_rate(d, f) for _, d, f in rows], y_max=100, unit="%", y_label="failed",
        attrs={"data-rate": "" if rate is None else f"{rate:.1f}"})
    return mark_safe(throughput), mark_safe(failures)


@admin.register(Dashboard)
class DashboardAdmin(ReadOnlyAdmin):
    """A page, not a list: the changelist is the dashboard (view permission only)."""

    template = "django_tasks/admin/dashboard.html"
    fragment_template = "django_tasks/admin/dashboard_fragment.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [path("fragment/", self.admin_site.admin_view(self.fragment_view),
                     name="{}_{}_fragment".format(*info)),
                *super().get_urls()]

    def context(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        figures = dashboard_figures()
        throughput_chart, failure_chart = charts(figures)
        return {**figures, "throughput_chart": throughput_chart,
                "failure_chart": failure_chart, "opts": self.opts}

    def changelist_view(self, request, extra_context=None):
        context = {**self.admin_site.each_context(request), **self.context(request),
                   "title": "Dashboard",
                   "refresh_seconds": f"{refresh_seconds(request):g}",
                   "fragment_url": reverse("admin:django_tasks_dashboard_fragment",
                                           current_app=self.admin_site.name),
                   **(extra_context or {})}
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.template, context)

    def fragment_view(self, request):
        return TemplateResponse(request, self.fragment_template, self.context(request))
