"""Queued messages in the admin: what waits, what is scheduled, what runs where.

Read-only (deleting a message by hand would lose its task without a
result: revoke it instead): messages change only through the revoke and
run-now actions, each behind its own permission. (Named ``queued`` so it does not shadow
``django.contrib.messages`` in this package.)

The queue table is kept small by design, so no index was added for the
admin (each would slow every enqueue and claim): the default order is the
primary key (oldest first), the running/waiting filters use the claim and
claimed-by partial indexes, and a text search scans the table.
"""

import json

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import rate_status
from ..concurrency_status import WAITING_FOR_SLOT, is_waiting_for_slot, slot_text
from ..conf import settings
from ..models import QueuedMessage, Worker
from ..queue import get_backend
from ..result import revoke_ids
from ..timestamps import readable
from ..unique import FOR_HEADER, KEY_HEADER
from .actions import confirmation_page, confirmed
from .display import (
    ReadOnlyAdmin,
    badge,
    cannot_decode,
    human_duration,
    stored_time,
    stored_value,
    time_column,
)
from .pagination import EstimatedCountPaginator
from .results import id_terms, looks_like_uuid

#: Messages one action touches at most.
ACTION_LIMIT = 10_000

STATE_COLOURS = {"running": "#1565c0", "waiting": "#2e7d32", "scheduled": "#ef6c00",
                 "waiting for a slot": "#6a1b9a"}
#: Read through timestamps.readable(): a row may hold times Python cannot.
TIMESTAMPS = ["created_at", "available_at", "expires", "claimed_at", "started_at",
              "terminate_requested_at"]


def message_state(message, now):
    if message.claimed_by is not None:
        return "running"
    if is_waiting_for_slot(message):
        return "waiting for a slot"
    return "scheduled" if message.available_at > now else "waiting"


class MessageStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("waiting", "waiting (due, not claimed)"),
                ("scheduled", "scheduled (ETA in the future)"),
                ("running", "claimed by a worker"),
                ("slot", "waiting for a concurrency slot")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "waiting":
            return queryset.filter(claimed_by__isnull=True, available_at__lte=now)
        if self.value() == "scheduled":
            return queryset.filter(claimed_by__isnull=True, available_at__gt=now).exclude(
                WAITING_FOR_SLOT)
        if self.value() == "slot":
            return queryset.filter(WAITING_FOR_SLOT, concurrency_key__isnull=False)
        if self.value() == "running":
            return queryset.filter(claimed_by__isnull=False)
        return queryset


class MessageChangeList(ChangeList):
    """Attaches each claimed message's worker (one query per page, not per row)."""

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        attach_workers(self.result_list)


def stored_headers(headers_text):
    """A message's stored headers as JSON, or None where they cannot be read
    (the headers field shows what the row holds)."""
    try:
        return json.loads(headers_text or "{}")
    except (ValueError, RecursionError):
        return None


def unique_key_of(headers_text):
    """The unique key (and unique_for) of a message, from its stored headers."""
    headers = stored_headers(headers_text)
    if headers is None:
        return "-"
    key = headers.get(KEY_HEADER) if isinstance(headers, dict) else None
    if not isinstance(key, str):
        return "- (not unique)"
    seconds = headers.get(FOR_HEADER)
    return f"{key} (held {seconds:g}s after it finished)" if isinstance(seconds, (int, float)) \
        else key


def attach_workers(rows):
    ids = {row.claimed_by for row in rows if row.claimed_by is not None}
    workers = Worker.objects.using(settings.DATABASE).in_bulk(ids) if ids else {}
    for row in rows:
        row.worker_row = workers.get(row.claimed_by)


def worker_link(worker_id, worker):
    if worker_id is None:
        return "-"
    if worker is None:
        return format_html("{} (no worker row)", str(worker_id)[:8])
    url = reverse("admin:django_tasks_worker_change", args=[worker.pk])
    return format_html('<a href="{}">{}</a> (pid {})', url, worker.hostname, worker.pid)


@admin.register(QueuedMessage)
class QueuedMessageAdmin(ReadOnlyAdmin):
    list_display = ["task_name", "task_id", "queue", "priority", "state", "available_at_shown",
                    "expires_shown", "deliveries", "worker", "since"]
    list_filter = ["queue", MessageStateFilter]
    search_fields = ["task_id", "task_name"]
    search_help_text = "A task id finds its message; other text is searched in task names."
    ordering = ["id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    actions = ["revoke", "run_now"]
    fieldsets = [
        (None, {"fields": ["task_name", "task_id", "queue", "priority", "state"]}),
        ("Timing", {"fields": ["created_at_shown", "available_at_shown", "expires_shown"]}),
        ("Delivery", {"fields": ["deliveries", "worker", "claimed_at_shown", "started_at_shown",
                                 "terminate_requested_at_shown", "concurrency",
                                 "rate_limit"]}),
        ("Message", {"fields": ["content_type", "body_pretty", "headers_pretty"]}),
        ("Unique", {"fields": ["unique_key_shown"]}),
    ]
    readonly_fields = ["state", "worker", "created_at_shown", "available_at_shown",
                       "expires_shown", "claimed_at_shown", "started_at_shown",
                       "terminate_requested_at_shown", "body_pretty", "headers_pretty",
                       "concurrency", "rate_limit", "unique_key_shown"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("django_tasks.revoke_queuedmessage")

    def has_run_now_permission(self, request):
        return request.user.has_perm("django_tasks.run_now_queuedmessage")

    def get_changelist(self, request, **kwargs):
        return MessageChangeList

    def get_queryset(self, request):
        # Rows may hold what Python cannot load (timestamps out of its range,
        # headers nested too deep for json.loads): the timestamps come
        # clamped and the headers as text, so every page and action can read
        # them, and revoke them.
        return (readable(super().get_queryset(request), TIMESTAMPS).defer("headers")
                .annotate(headers_text=Cast("headers", TextField())))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        ids = id_terms(term)
        if ids:
            by_id = queryset.filter(task_id__in=ids)
            if looks_like_uuid(term) or by_id.exists():
                return by_id, False
        return queryset.filter(task_name__icontains=term), False

    # -- columns ------------------------------------------------------

    created_at_shown = time_column("created_at", "created at")
    @admin.display(description="available at", ordering="available_at")
    def available_at_shown(self, row):
        # A parked message's due time is a far-future mark, not a time.
        if is_waiting_for_slot(row):
            return "when a concurrency slot frees"
        return stored_time(row, "available_at")
    expires_shown = time_column("expires")
    claimed_at_shown = time_column("claimed_at", "claimed at")
    started_at_shown = time_column("started_at", "started at")
    terminate_requested_at_shown = time_column("terminate_requested_at",
                                               "terminate requested at")

    @admin.display(description="body")
    def body_pretty(self, obj):
        return stored_value(obj.body, obj.content_type)

    @admin.display(description="headers")
    def headers_pretty(self, obj):
        return stored_value(obj.headers_text)

    @admin.display(description="unique key")
    def unique_key_shown(self, obj):
        return unique_key_of(obj.headers_text)

    @admin.display(description="state")
    def state(self, obj):
        state = message_state(obj, timezone.now())
        if obj.terminate_requested_at is not None:
            return badge("stopping", "#757575")
        return badge(state, STATE_COLOURS[state])

    @admin.display(description="concurrency limit")
    def concurrency(self, obj):
        return slot_text(obj, obj.headers_text) or "-"

    @admin.display(description="rate limit")
    def rate_limit(self, obj):
        return rate_status.rate_text(stored_headers(obj.headers_text), obj.task_name) or "-"

    @admin.display(description="worker")
    def worker(self, obj):
        if not hasattr(obj, "worker_row"):
            attach_workers([obj])
        return worker_link(obj.claimed_by, obj.worker_row)

    @admin.display(description="since", ordering="claimed_at")
    def since(self, obj):
        when = obj.started_at or obj.claimed_at
        if when is None:
            return "-"
        how = "started" if obj.started_at else "claimed"
        stored = obj.out_of_range.get(f"{how}_at")
        if stored is not None:
            return cannot_decode(f"cannot decode {stored}")
        return f"{human_duration(timezone.now() - when)} ({how})"

    # -- actions ------------------------------------------------------

    @admin.action(description="Revoke selected tasks", permissions=["revoke"])
    def revoke(self, request, queryset):
        rows = list(queryset.only("task_id", "task_name", "claimed_by")[:ACTION_LIMIT + 1])
        if len(rows) > ACTION_LIMIT:
            return self._too_many(request)
        running = sum(1 for r in rows if r.claimed_by is not None)
        if not confirmed(request):
            return confirmation_page(
                self, request, title="Revoke tasks", queryset=queryset, action="revoke",
                question=f"Revoke {len(rows)} task(s)? Waiting ones end REVOKED now; "
                         f"running ones ({running}) are stopped at their worker's next "
                         "heartbeat and then end REVOKED.",
                items=[f"{r.task_name} [{r.task_id}]" for r in rows])
        hit = revoke_ids([r.task_id for r in rows], terminate=True)
        self.message_user(
            request, f"Revoked {hit} task(s) of {len(rows)} selected "
                     f"({running} running: asked to stop at their worker; any others had "
                     "finished meanwhile).", messages.SUCCESS)
        return None

    @admin.action(description="Run selected tasks now", permissions=["run_now"])
    def run_now(self, request, queryset):
        now = timezone.now()
        rows = list(queryset.only("id", "task_id", "task_name", "claimed_by", "concurrency_key")
                    [:ACTION_LIMIT + 1])  # and available_at, clamped by get_queryset
        if len(rows) > ACTION_LIMIT:
            return self._too_many(request)
        delayed = [r for r in rows if r.claimed_by is None and r.available_at > now]
        if not confirmed(request):
            skipped = len(rows) - len(delayed)
            return confirmation_page(
                self, request, title="Run tasks now", queryset=queryset, action="run_now",
                question=f"Make {len(delayed)} scheduled task(s) due now?",
                items=[f"{r.task_name} [{r.task_id}] " + (
                    "waiting for a concurrency slot (made due, it still takes its turn)"
                    if is_waiting_for_slot(r) else
                    f"ETA in {human_duration(r.available_at - now)}") for r in delayed],
                notes=[f"{skipped} selected task(s) are already due or running and are "
                       "left as they are."] if skipped else [])
        backend = get_backend()
        with transaction.atomic(using=settings.DATABASE):
            # Claimed meanwhile? Then it runs already: leave it.
            count = QueuedMessage.objects.using(settings.DATABASE).filter(
                id__in=[r.id for r in delayed], claimed_by__isnull=True,
                available_at__gt=now).update(available_at=timezone.now())
            if count:
                backend.notify_queue()  # NOTIFY at commit; polling workers see it anyway
        self.message_user(request, f"{count} task(s) are due now.", messages.SUCCESS)
        skipped = len(rows) - count
        if skipped:
            self.message_user(request, f"Left {skipped} task(s) that were already due or "
                                       "running.", messages.WARNING)
        return None

    def _too_many(self, request):
        self.message_user(request, f"Select at most {ACTION_LIMIT:,} messages at once "
                                   "(narrow the filters).", messages.ERROR)
        return None
