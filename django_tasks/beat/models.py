"""Periodic tasks (edited in the admin or synced from settings) and the sent ticks.

``PeriodicTick`` is what makes "exactly once per tick" a database fact: a
tick is sent by inserting its row, with a unique constraint on (name, tick
time), in the same transaction as the message. A second beat that tries
the same tick gets an ``IntegrityError`` and sends nothing.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .. import serialization
from ..fields import TaskIdField
from .schedules import crontab, every, once
from .validation import call_errors, parse_json_arguments

SCHEDULE_FIELDS = ("crontab", "interval", "run_at", "enabled")


class PeriodicTask(models.Model):
    ADMIN = "admin"
    SETTINGS = "settings"
    SOURCES = [(ADMIN, "admin"), (SETTINGS, "settings (BEAT_SCHEDULE)")]
    CATCH_UP = [("once", "run once for all missed ticks"), ("all", "run every missed tick")]

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=255, help_text="Registered task name, e.g. proj.tasks.add")
    crontab = models.CharField(
        max_length=200, blank=True,
        help_text="Cron expression: minute hour day-of-month month day-of-week, e.g. "
                  "'*/15 * * * *'. Read in TIME_ZONE; a day must match both day fields.")
    interval = models.DurationField(
        null=True, blank=True, help_text="Or run every interval, e.g. 00:00:30.")
    run_at = models.DateTimeField(
        null=True, blank=True, help_text="Or run once at this time (one-off), then disable.")
    # JSON text in the app's serialization format, so settings schedules keep
    # datetimes, tuples, … exactly as they go into the message.
    args = models.TextField(default="[]", help_text='JSON list, e.g. [2, 3]')
    kwargs = models.TextField(default="{}", help_text='JSON object, e.g. {"x": 2}')
    queue = models.CharField(max_length=200, blank=True,
                             help_text="Blank: the task's route or DEFAULT_QUEUE.")
    priority = models.SmallIntegerField(null=True, blank=True)
    expire_seconds = models.FloatField(
        null=True, blank=True, help_text="Revoke a run not started within this many seconds.")
    catch_up = models.CharField(
        max_length=8, choices=CATCH_UP, default="once",
        help_text="Ticks missed while no beat ran: run them once, or each of them.")
    enabled = models.BooleanField(default=True)
    source = models.CharField(max_length=16, choices=SOURCES, default=ADMIN, editable=False)
    description = models.TextField(blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The next tick to send; None when disabled or a one-off has run.
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    total_run_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = "periodic task"
        ordering = ["name"]
        indexes = [
            # The beat's due query, and its "when is the next one" query.
            models.Index(fields=["next_run_at"], condition=Q(enabled=True),
                         name="django_tasks_periodic_due_idx"),
        ]

    def __str__(self):
        return self.name

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_schedule = instance._schedule_key()
        return instance

    def _schedule_key(self):
        return tuple(getattr(self, name) for name in SCHEDULE_FIELDS)

    def save(self, *args, **kwargs):
        # A new or re-timed schedule starts counting from now; other edits
        # (arguments, queue, …) leave the next tick alone.
        if self._schedule_key() != getattr(self, "_loaded_schedule", None):
            self.reschedule()
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "next_run_at"}
        super().save(*args, **kwargs)
        self._loaded_schedule = self._schedule_key()

    # -- the schedule -------------------------------------------------

    @property
    def schedule(self):
        if self.crontab:
            return crontab.from_string(self.crontab)
        if self.interval is not None:
            return every(self.interval)
        if self.run_at is not None:
            return once(self.run_at)
        raise ValueError(f"periodic task {self.name!r} has no schedule")

    @property
    def is_one_off(self):
        return not self.crontab and self.interval is None and self.run_at is not None

    def reschedule(self, now=None):
        """Set ``next_run_at`` from the schedule as if it were defined at ``now``."""
        if not self.enabled:
            self.next_run_at = None
            return
        self.next_run_at = self.schedule.next_run(now or timezone.now())

    def decoded_arguments(self):
        return (serialization.loads(self.args, "json", ["json"]),
                serialization.loads(self.kwargs, "json", ["json"]))

    # -- validation (the admin form calls this on save) ---------------

    def clean(self):
        errors = {}

        def add(field, message):
            errors.setdefault(field, []).append(message)

        chosen = [name for name, value in (("crontab", self.crontab), ("interval", self.interval),
                                           ("run_at", self.run_at))
                  if value not in (None, "")]
        if len(chosen) != 1:
            message = ("Give exactly one of a cron expression, an interval or a one-off "
                       "run-at time" + (f" (got {', '.join(chosen)})." if chosen else "."))
            add("crontab" if "crontab" in chosen or not chosen else chosen[0], message)
        if self.crontab:
            try:
                crontab.from_string(self.crontab)
            except ValueError as exc:
                add("crontab", str(exc))
        if self.interval is not None and self.interval <= timedelta(0):
            add("interval", "The interval must be longer than zero.")
        if self.expire_seconds is not None and self.expire_seconds <= 0:
            add("expire_seconds", "Must be a positive number of seconds.")
        args, kwargs, argument_errors = parse_json_arguments(self.args, self.kwargs)
        for field, message in argument_errors.items():
            add(field, message)
        if self.task and not argument_errors:
            problems = call_errors(self.task, args, kwargs)
            for message in problems:
                add("task" if message.startswith("No task") else "args", message)
        if errors:
            raise ValidationError(errors)


class PeriodicTick(models.Model):
    """One row per tick sent: the unique constraint refuses a second send."""

    name = models.CharField(max_length=200)
    tick_at = models.DateTimeField()
    task_id = TaskIdField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "periodic tick"
        constraints = [
            models.UniqueConstraint(fields=["name", "tick_at"],
                                    name="django_tasks_one_send_per_tick"),
        ]
        indexes = [
            # Pruning ticks older than the retention window.
            models.Index(fields=["tick_at"], name="django_tasks_tick_prune_idx"),
        ]

    def __str__(self):
        return f"{self.name} @ {self.tick_at.isoformat()}"
