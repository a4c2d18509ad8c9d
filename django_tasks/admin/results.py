"""Task results in the admin: the monitor's list of what ran, and how.

Results are records: nothing is added or edited here. Superusers may delete
a result (as ``AsyncResult.forget()`` does); everyone else relies on expiry
(``RESULT_EXPIRES``, purged by the workers or the *Purge expired results*
button). Retry and purge each need their own permission.

Built for a million rows: counts come from ``EstimatedCountPaginator``,
every filter and the default ordering has an index (migration 0005), the
filters' choices come from loose index scans, and text search is bounded
(see ``get_search_results``).
"""

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .. import serialization, states
from ..conf import settings
from ..maintenance import purge_expired_results
from ..messages import is_task_id
from ..models import TaskGroup, TaskResult
from ..queue import enqueue, get_backend
from ..registry import tasks as registry
from ..task import task_for_sending
from ..timestamps import clamped, readable
from .actions import confirmation_page, confirmed
from .display import (
    ReadOnlyAdmin,
    between,
    cannot_decode,
    human_duration,
    pre,
    result_link,
    short_id,
    state_badge,
    stored_time,
    stored_value,
    time_column,
)
from .pagination import CAP, EstimatedCountPaginator

#: Text search looks at this many of the newest matching results only.
SEARCH_WINDOW = 10_000
#: Choices listed by the task-name and queue filters.
FILTER_CHOICES = 200
#: Results one retry action re-enqueues at most.
RETRY_LIMIT = 1_000
#: Children and group members listed on a result's page.
RELATED_LISTED = 50

RETRIABLE = (states.FAILURE, states.REVOKED, states.REJECTED)
#: Read through timestamps.readable(): a row may hold times Python cannot.
TIMESTAMPS = ["date_created", "date_started", "date_done"]
GAPS = {("created", "started"): "waited", ("started", "done"): "ran"}


def id_terms(term):
    """The ids a search ``term`` may be: itself (ids are any text), and a
    UUID also as its canonical text (how generated ids are spelt). Empty if
    no row could hold it."""
    if not is_task_id(term):
        return []
    try:
        canonical = str(uuid.UUID(term))
    except ValueError:
        return [term]
    return list(dict.fromkeys((term, canonical)))


def looks_like_uuid(term):
    try:
        uuid.UUID(term)
    except ValueError:
        return False
    return True


class IndexedValuesFilter(admin.SimpleListFilter):
    """Choices read with a loose index scan, not ``SELECT DISTINCT`` over the table."""

    column = None

    def lookups(self, request, model_admin):
        values = get_backend().distinct_values(TaskResult, self.column, FILTER_CHOICES)
        return [(value, value or "(none)") for value in values]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.column: value}) if value is not None else queryset


class TaskNameFilter(IndexedValuesFilter):
    title = "task name"
    parameter_name = column = "task_name"


class StateFilter(IndexedValuesFilter):
    """Celery's states (by their labels) and the custom ones tasks reported
    (``update_state``, as they were named)."""

    title = "state"
    parameter_name = column = "state"
    labels = dict(states.CHOICES)

    def lookups(self, request, model_admin):
        return [(value, self.labels.get(value, label))
                for value, label in super().lookups(request, model_admin)]


class QueueFilter(IndexedValuesFilter):
    title = "queue"
    parameter_name = column = "queue"


@admin.register(TaskResult)
class TaskResultAdmin(ReadOnlyAdmin):
    list_display = ["task_id", "task_name", "state_badge", "queue", "worker", "retries",
                    "date_created_shown", "date_started_shown", "date_done_shown", "runtime"]
    list_filter = [StateFilter, TaskNameFilter, QueueFilter, "date_done"]
    search_fields = ["task_id", "task_name", "args", "kwargs"]
    search_help_text = ("A task or group id finds it among all results; other text is "
                        f"searched in the task name and arguments of the newest "
                        f"{SEARCH_WINDOW:,} results (of the current filters).")
    ordering = ["-date_done"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    actions = ["retry"]
    change_list_template = "django_tasks/admin/taskresult_change_list.html"
    fieldsets = [
        (None, {"fields": ["task_id", "task_name", "state_badge", "queue", "worker",
                           "retries", "deliveries"]}),
        ("Timeline", {"fields": ["timeline"]}),
        ("Call", {"fields": ["args_pretty", "kwargs_pretty"]}),
        ("Outcome", {"fields": ["result_pretty", "traceback_pre"]}),
        ("Workflow", {"fields": ["family", "group"]}),
    ]
    readonly_fields = ["state_badge", "timeline", "args_pretty", "kwargs_pretty",
                       "result_pretty", "traceback_pre", "family", "group"]

    # -- read-only records ------------------------------------------------

    def has_delete_permission(self, request, obj=None):
        # Superusers only, with the ordinary delete permission (as forget() does).
        return (request.user.is_superuser
                and admin.ModelAdmin.has_delete_permission(self, request, obj))

    def has_retry_permission(self, request):
        return request.user.has_perm("django_tasks.retry_taskresult")

    def has_purge_permission(self, request):
        return request.user.has_perm("django_tasks.purge_taskresult")

    def get_queryset(self, request):
        return readable(super().get_queryset(request), TIMESTAMPS)

    # -- list columns -------------------------------------------------

    date_created_shown = time_column("date_created", "date created")
    date_started_shown = time_column("date_started", "date started")
    date_done_shown = time_column("date_done", "date done")

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return state_badge(obj.state)

    @admin.display(description="runtime")
    def runtime(self, obj):
        return between(obj.date_started, obj.date_done)

    def get_search_results(self, request, queryset, search_term):
        """An id is an exact primary-key (or group index) look-up over all rows.

        Other text is ``icontains`` on the task name and arguments, which no
        index serves: it is confined to the newest ``SEARCH_WINDOW`` results
        of the current filters. The window's oldest ``date_done`` is found
        first (an index scan of that many entries), so the search itself is a
        ``date_done`` range the filters' indexes serve: at most that many
        rows are read, however large the table.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        ids = id_terms(term)
        if ids:
            by_id = queryset.filter(task_id__in=ids) | queryset.filter(group_id__in=ids)
            # A UUID is only ever an id; other text is an id when one has it
            # (a primary-key and a group-index probe), else searched for.
            if looks_like_uuid(term) or by_id.exists():
                return by_id, False
        edge = (queryset.order_by("-date_done")
                .values_list(clamped("date_done"), flat=True)[SEARCH_WINDOW - 1:SEARCH_WINDOW])
        edge = list(edge)
        if edge:
            queryset = queryset.filter(date_done__gte=edge[0])
        matches = (queryset.filter(task_name__icontains=term)
                   | queryset.filter(args__icontains=term)
                   | queryset.filter(kwargs__icontains=term))
        return matches, False

    # -- detail page --------------------------------------------------

    @admin.display(description="timeline")
    def timeline(self, obj):
        steps = [("created", obj.date_created), ("started", obj.date_started),
                 ("done", obj.date_done)]
        known = [(label, when) for label, when in steps if when is not None]
        parts = []
        for index, (label, when) in enumerate(known):
            if index:
                gap = between(known[index - 1][1], when)
                verb = GAPS.get((known[index - 1][0], label), "took")
                parts.append(format_html(" → <em>{} {}</em> → ", verb, gap))
            if f"date_{label}" in obj.out_of_range:
                moment = stored_time(obj, f"date_{label}")
            else:
                moment = timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            parts.append(format_html("<strong>{}</strong> {}", label, moment))
        if len(known) > 1:
            parts.append(format_html(" (total {})", between(known[0][1], known[-1][1])))
        return format_html_join("", "{}", ((part,) for part in parts)) or "-"

    @admin.display(description="args")
    def args_pretty(self, obj):
        return stored_value(obj.args)

    @admin.display(description="kwargs")
    def kwargs_pretty(self, obj):
        return stored_value(obj.kwargs)

    @admin.display(description="result")
    def result_pretty(self, obj):
        if obj.result is None:
            return "-"
        if obj.state not in states.EXCEPTION_STATES:
            return stored_value(obj.result, obj.content_type)
        try:
            error = serialization.loads(obj.result, "json", ["json"])
        except serialization.DecodeError as exc:
            return cannot_decode(exc, obj.result)
        if not isinstance(error, dict) or not isinstance(error.get("exc_type", ""), str):
            return cannot_decode("cannot decode a stored exception: not a dict with a "
                                 "textual exc_type", obj.result)
        return format_html("<strong>{}: {}</strong>{}", error.get("exc_type", "Exception"),
                           error.get("exc_message", ""), stored_value(obj.result))

    @admin.display(description="traceback")
    def traceback_pre(self, obj):
        return pre(obj.traceback) if obj.traceback else "-"

    @admin.display(description="parent, root and children")
    def family(self, obj):
        rows = []
        for label, task_id in (("parent", obj.parent_id), ("root", obj.root_id)):
            if task_id is not None and task_id != obj.task_id:
                rows.append(format_html("<div>{}: {}</div>", label, self._link_if_stored(task_id)))
        children = list(TaskResult.objects.using(settings.DATABASE)
                        .filter(parent_id=obj.task_id).order_by("date_done")
                        .only("task_id", "task_name", "state")[:RELATED_LISTED + 1])
        if children:
            rows.append(format_html("<div>children: {}</div>", self._listing(children)))
        return format_html_join("", "{}", ((row,) for row in rows)) or "-"

    @admin.display(description="group / chord")
    def group(self, obj):
        if obj.group_id is None:
            return "-"
        saved = TaskGroup.objects.using(settings.DATABASE).filter(group_id=obj.group_id).first()
        members = list(TaskResult.objects.using(settings.DATABASE)
                       .filter(group_id=obj.group_id).order_by("date_created", "task_id")
                       .only("task_id", "task_name", "state")[:RELATED_LISTED + 1])
        if saved is None:
            kind = "group (not saved)"
        elif saved.chord_body is not None:
            body = saved.chord_body.get("task", "?") if isinstance(saved.chord_body, dict) \
                else "?"
            kind = f"chord, {len(saved.results)} member(s), body {body}, " \
                   f"{saved.remaining if saved.remaining is not None else '?'} unfinished"
        else:
            kind = f"group, {len(saved.results)} member(s)"
        return format_html("<div>{} {}</div><div>members with results: {}</div>",
                           kind, obj.group_id, self._listing(members, current=obj.task_id))

    def _listing(self, rows, current=None):
        shown = format_html_join(
            ", ", "{} {} {}",
            ((result_link(r.task_id, short_id(r.task_id)) if r.task_id != current
              else format_html("<strong>{} (this)</strong>", short_id(r.task_id)),
              r.task_name, state_badge(r.state)) for r in rows[:RELATED_LISTED]))
        if len(rows) > RELATED_LISTED:
            return format_html("{}, and more", shown)
        return shown

    @staticmethod
    def _link_if_stored(task_id):
        if TaskResult.objects.using(settings.DATABASE).filter(task_id=task_id).exists():
            return result_link(task_id)
        return format_html("{} (no result stored)", task_id)

    # -- retry ----------------------------------------------------------

    @admin.action(description="Retry selected failed tasks", permissions=["retry"])
    def retry(self, request, queryset):
        rows = list(queryset.order_by("date_done")[:RETRY_LIMIT + 1])
        if len(rows) > RETRY_LIMIT:
            self.message_user(request, f"Select at most {RETRY_LIMIT:,} results to retry at "
                                       "once (narrow the filters).", messages.ERROR)
            return None
        retriable = [r for r in rows if r.state in RETRIABLE]
        skipped = len(rows) - len(retriable)
        if not confirmed(request):
            notes = [f"{skipped} selected result(s) are neither FAILURE nor REVOKED and will be "
                     "skipped."] if skipped else []
            unknown = sorted({r.task_name for r in retriable} - set(registry))
            if unknown:
                notes.append("Not registered in this process, sent by name (a worker that "
                             f"lacks them records NotRegistered): {', '.join(unknown)}.")
            return confirmation_page(
                self, request, title="Retry tasks", queryset=queryset, action="retry",
                question=f"Enqueue {len(retriable)} task(s) again, with the same arguments, "
                         "under new task ids?",
                items=[f"{r.task_name} [{r.task_id}] {r.state}" for r in retriable],
                notes=notes)
        sent, undecodable = [], []
        with transaction.atomic(using=settings.DATABASE):
            outgoing = []
            for row in retriable:
                try:
                    args, kwargs = stored_arguments(row)
                except serialization.DecodeError:
                    undecodable.append(f"{row.task_name} [{row.task_id}]")
                    continue
                message = task_for_sending(row.task_name).build_message(
                    args, kwargs, queue=row.queue or None,
                    headers={"retry_of": str(row.task_id), "parent_id": str(row.task_id),
                             "root_id": str(row.root_id or row.task_id)})
                outgoing.append(message)
                sent.append(f"{row.task_name} [{row.task_id} → {message.task_id}]")
            enqueue(outgoing)
        if sent:
            self.message_user(request, f"Retried {len(sent)} task(s): {'; '.join(sent)}.",
                              messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} result(s) that are neither FAILURE "
                                       "nor REVOKED.", messages.WARNING)
        if undecodable:
            self.message_user(request, "Not retried, their arguments were not stored as JSON: "
                                       f"{'; '.join(undecodable)}.", messages.ERROR)
        return None

    # -- purge (a button, not per selection) -----------------------------

    def get_urls(self):
        return [path("purge/", self.admin_site.admin_view(self.purge_view),
                     name="django_tasks_taskresult_purge"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}),
                         "can_purge": self.has_purge_permission(request)}
        return super().changelist_view(request, extra_context)

    def purge_view(self, request):
        if not self.has_purge_permission(request):
            raise PermissionDenied
        changelist = reverse("admin:django_tasks_taskresult_changelist")
        expires = settings.RESULT_EXPIRES
        if expires is None:
            self.message_user(request, "RESULT_EXPIRES is None: results are kept forever, "
                                       "nothing is expired.", messages.WARNING)
            return HttpResponseRedirect(changelist)
        if request.method == "POST" and confirmed(request):
            purged = purge_expired_results()
            self.message_user(request, f"Purged {purged.results:,} expired result(s) (done more "
                                       f"than {human_duration(expires)} ago) and "
                                       f"{purged.groups:,} group/chord row(s).", messages.SUCCESS)
            return HttpResponseRedirect(changelist)
        cutoff = timezone.now() - expires
        expired = (TaskResult.objects.using(settings.DATABASE)
                   .filter(date_done__lt=cutoff)[:CAP].count())
        how_many = f"at least {CAP:,}" if expired >= CAP else f"{expired:,}"
        return confirmation_page(
            self, request, title="Purge expired results",
            question=f"Delete the results done more than {human_duration(expires)} ago "
                     f"(before {timezone.localtime(cutoff):%Y-%m-%d %H:%M:%S})? "
                     f"That is {how_many} result(s).",
            notes=["This is the purge the workers run every 5 minutes and "
                   "`manage.py purge_results` runs by hand, in batches of "
                   f"{settings.PURGE_BATCH_SIZE:,}."])


def stored_arguments(row):
    """The call's ``(args, kwargs)`` as the worker stored them (JSON)."""
    if row.args is None:
        raise serialization.DecodeError("no arguments stored")
    args = serialization.loads(row.args, "json", ["json"])
    kwargs = serialization.loads(row.kwargs, "json", ["json"]) if row.kwargs else {}
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise serialization.DecodeError("stored arguments are not a list and a dict")
    return args, kwargs
