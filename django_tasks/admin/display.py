"""Small renderers, and the read-only base, shared by the monitor's admin pages."""

import json
import pprint

from django.contrib import admin
from django.contrib.admin.utils import display_for_value, quote
from django.urls import reverse
from django.utils.html import format_html

from .. import serialization, states

# Colours of the state badges (text is white on all of them).
STATE_COLOURS = {
    states.SUCCESS: "#2e7d32",
    states.FAILURE: "#c62828",
    states.RETRY: "#ef6c00",
    states.STARTED: "#1565c0",
    states.RECEIVED: "#1565c0",
    states.REVOKED: "#757575",
    states.REJECTED: "#6a1b9a",
    states.PENDING: "#9e9e9e",
}
BADGE_STYLE = ("display:inline-block;padding:1px 7px;border-radius:8px;color:#fff;"
               "font-size:11px;font-weight:bold;background:{}")


def badge(text, colour):
    return format_html('<span class="django-tasks-badge" style="{}">{}</span>',
                       BADGE_STYLE.format(colour), text)


def state_badge(state):
    return badge(state, STATE_COLOURS.get(state, "#9e9e9e"))


def human_duration(delta):
    """``timedelta`` as "850 ms", "4.2 s", "3 min 5 s", "2 h 10 min", "3 d 4 h"."""
    if delta is None:
        return "-"
    seconds = delta.total_seconds()
    if seconds < 0:
        return "-" + human_duration(-delta)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def between(start, end):
    return human_duration(end - start) if start and end else "-"


#: How a stored value the app cannot read shows: in this mark, then as stored.
CANNOT_DECODE_STYLE = ("display:inline-block;padding:1px 7px;border-radius:4px;color:#fff;"
                       "font-weight:bold;background:#c62828")


def cannot_decode(reason, text=None):
    """The mark for stored data that cannot be read back, and the data as stored.

    ``reason`` is the DecodeError's message, or what was stored where that
    says enough (a timestamp Python cannot hold).
    """
    reason = str(reason)
    if not reason.startswith("cannot decode"):
        reason = f"cannot decode: {reason}"
    mark = format_html('<span class="django-tasks-cannot-decode" style="{}">{}</span>',
                       CANNOT_DECODE_STYLE, reason)
    return mark if text is None else format_html("{}{}", mark, pre(text))


def stored_value(text, content_type="json"):
    """Stored arguments or a result, for reading (HTML).

    JSON and msgpack are decoded with the app's serializer: plain data
    comes out as indented JSON; values with types JSON lacks (datetimes,
    tuples, bytes...) come out as their Python repr, so the type shows. Text
    that does not decode is shown as stored, under a "cannot decode" mark
    saying why; pickle and serializers the project registered are shown as
    stored: the admin never unpickles, nor runs a project's loads.
    """
    if text is None:
        return "-"
    if content_type == "json":
        try:
            value = serialization.loads(text, "json", ["json"])
        except serialization.DecodeError as exc:
            return cannot_decode(exc, text)
        if serialization.TYPE_KEY in text:
            return pre(pprint.pformat(value, width=100, sort_dicts=False))
        return pre(json.dumps(value, indent=2, ensure_ascii=False))
    serializer = serialization.SERIALIZERS.get(content_type)
    if serializer is None or not serializer.safe_to_display:
        return pre(text)
    try:
        value = serialization.loads(text, content_type, [content_type])
    except serialization.DecodeError as exc:
        return cannot_decode(exc, text)
    try:
        plain = serialization.TYPE_KEY not in serialization.dumps(value, "json")
    except serialization.EncodeError:  # a forged row's msgpack Timestamp
        plain = False
    if plain:
        return pre(json.dumps(value, indent=2, ensure_ascii=False))
    return pre(pprint.pformat(value, width=100, sort_dicts=False))


def stored_time(row, column):
    """A timestamp column of a row read with ``timestamps.readable()``.

    One Python cannot hold (infinity, year 10000, BC) shows as stored, marked.
    """
    text = getattr(row, "out_of_range", {}).get(column)
    if text is not None:
        return cannot_decode(f"cannot decode {text}")
    return display_for_value(getattr(row, column), "-")


def time_column(column, description=None):
    """A list or detail column showing ``stored_time(row, column)``, sorted by the column."""
    @admin.display(description=description or column.replace("_", " "), ordering=column)
    def show(modeladmin, row):
        return stored_time(row, column)

    return show


def pre(text):
    if text is None:
        return "-"
    return format_html('<pre style="font-family:monospace;white-space:pre-wrap;margin:0;'
                       'max-height:40em;overflow:auto">{}</pre>', text)


def result_link(task_id, label=None):
    # Ids are any text ("/", "_" included): quoted as the admin's own links are.
    url = reverse("admin:django_tasks_taskresult_change", args=[quote(task_id)])
    return format_html('<a href="{}">{}</a>', url, label or task_id)


#: Characters of an id shown where many are listed side by side.
SHORT_ID = 24


def short_id(task_id):
    """An id shortened for a listing: a generated one (a UUID) to its first
    8 digits, as before; other text, chosen by people, whole unless long."""
    task_id = str(task_id)
    if len(task_id) == 36 and task_id.count("-") == 4:
        return task_id[:8]
    return task_id if len(task_id) <= SHORT_ID else task_id[:SHORT_ID - 1] + "…"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by workers, not by people: viewed here, changed only by actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
