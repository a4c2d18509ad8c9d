"""Copying ``BEAT_SCHEDULE`` into ``PeriodicTask`` rows (``source="settings"``).

One table for both kinds of schedule means one scheduler, one place that
guarantees a tick is sent once, and the admin shows settings schedules
with their next run. A row is only rewritten when its definition changed,
so restarting a beat does not move the next tick.
"""

import logging

from django.db import IntegrityError, transaction

from .. import serialization
from ..conf import settings
from .models import PeriodicTask
from .schedules import crontab, to_schedule
from .validation import expires_seconds

logger = logging.getLogger("django_tasks.beat")


def settings_fields(entry):
    """The ``PeriodicTask`` field values a ``BEAT_SCHEDULE`` entry stands for."""
    schedule = to_schedule(entry["schedule"])
    options = entry.get("options") or {}
    expires = options.get("expires")
    return {
        "task": entry["task"],
        "crontab": schedule.expression if isinstance(schedule, crontab) else "",
        "interval": None if isinstance(schedule, crontab) else schedule.interval,
        "run_at": None,
        "args": serialization.dumps(list(entry.get("args", ())), "json", what="args"),
        "kwargs": serialization.dumps(dict(entry.get("kwargs", {})), "json", what="kwargs"),
        "queue": options.get("queue") or "",
        "priority": options.get("priority"),
        "expire_seconds": None if expires is None else expires_seconds(expires),
        "catch_up": entry.get("catch_up", "once"),
        "enabled": True,
        "source": PeriodicTask.SETTINGS,
    }


def sync_settings_schedules(alias, prune=True):
    """Create or update a row per settings schedule; with ``prune``, delete
    settings rows whose entry is gone. Returns the names written."""
    schedule = settings.BEAT_SCHEDULE or {}
    written = []
    for name, entry in schedule.items():
        if _sync_one(alias, name, settings_fields(entry)):
            written.append(name)
    if prune:
        gone = (PeriodicTask.objects.using(alias)
                .filter(source=PeriodicTask.SETTINGS).exclude(name__in=list(schedule)))
        for name in gone.values_list("name", flat=True):
            logger.info("Beat: schedule %r is no longer in BEAT_SCHEDULE; removed", name)
        gone.delete()
    return written


def _sync_one(alias, name, fields):
    rows = PeriodicTask.objects.using(alias)
    for _attempt in range(2):
        with transaction.atomic(using=alias):
            row = rows.select_for_update().filter(name=name).first()
            if row is None:
                try:
                    with transaction.atomic(using=alias):
                        rows.create(name=name, **fields)
                    return True
                except IntegrityError:
                    continue  # another beat created it just now: compare with theirs
            changed = [key for key, value in fields.items() if getattr(row, key) != value]
            if not changed:
                return False
            if row.source != PeriodicTask.SETTINGS:
                logger.warning("Beat: BEAT_SCHEDULE[%r] replaces the admin's periodic "
                               "task of the same name", name)
            for key in changed:
                setattr(row, key, fields[key])
            row.save(update_fields=changed)
            return True
    return False
