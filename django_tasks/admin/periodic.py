"""Admin for periodic tasks: edit admin schedules, see settings ones read-only.

Saving changes only the fields the form changed (and ``next_run_at`` when
the schedule changed), so a save never puts back counters or a next run
that a beat advanced while the form was open.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..beat.models import PeriodicTask
from ..beat.sending import send_run
from ..beat.sync import sync_settings_schedules
from ..conf import settings


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "schedule_text", "enabled", "source", "queue", "priority",
                    "last_run_at", "next_run_at", "total_run_count"]
    list_filter = ["enabled", "source", "catch_up"]
    search_fields = ["name", "task", "description"]
    readonly_fields = ["source", "last_run_at", "next_run_at", "total_run_count"]
    actions = ["enable", "disable", "run_now"]
    fieldsets = [
        (None, {"fields": ["name", "task", "enabled", "description"]}),
        ("Schedule (one of)", {"fields": ["crontab", "interval", "run_at", "catch_up"]}),
        ("Arguments", {"fields": ["args", "kwargs"]}),
        ("Options", {"fields": ["queue", "priority", "expire_seconds"]}),
        ("Runs", {"fields": ["source", "last_run_at", "next_run_at", "total_run_count"]}),
    ]

    @admin.display(description="schedule")
    def schedule_text(self, obj):
        if obj.crontab:
            zone = timezone.get_current_timezone_name()
            return f"cron {obj.crontab} ({zone})"
        if obj.interval is not None:
            return f"every {obj.interval}"
        if obj.run_at is not None:
            return f"once at {timezone.localtime(obj.run_at):%Y-%m-%d %H:%M:%S %Z}"
        return "-"

    def changelist_view(self, request, extra_context=None):
        # Settings schedules show up (with their next run) before any beat
        # has started; pruning stays with the beats.
        sync_settings_schedules(settings.DATABASE, prune=False)
        return super().changelist_view(request, extra_context)

    # -- settings schedules are read-only -------------------------------

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.source == PeriodicTask.SETTINGS:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.source == PeriodicTask.SETTINGS:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=[name for name in form.changed_data
                                    if name not in self.readonly_fields])
        else:
            obj.save()

    # -- actions ------------------------------------------------------

    @admin.action(description="Enable selected periodic tasks", permissions=["change"])
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected periodic tasks", permissions=["change"])
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled):
        skipped = queryset.filter(source=PeriodicTask.SETTINGS).count()
        changed = 0
        for periodic in queryset.exclude(source=PeriodicTask.SETTINGS).exclude(enabled=enabled):
            periodic.enabled = enabled
            periodic.save(update_fields=["enabled"])
            changed += 1
        word = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{word} {changed} periodic task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} settings schedule(s): change "
                                       "BEAT_SCHEDULE to change those.", messages.WARNING)

    # The change permission, not one of its own: a run changes the schedule's
    # row (last run, run count), and whoever may change a schedule may make
    # it run every minute anyway.
    @admin.action(description="Run selected periodic tasks now", permissions=["change"])
    def run_now(self, request, queryset):
        sent = []
        with transaction.atomic(using=settings.DATABASE):
            for periodic in queryset:
                message = send_run(periodic)
                sent.append(f"{periodic.name} [{message.task_id}]")
            queryset.update(last_run_at=timezone.now(),
                            total_run_count=F("total_run_count") + 1)
        self.message_user(request, f"Sent {len(sent)} task(s): {', '.join(sent)}.",
                          messages.SUCCESS)
