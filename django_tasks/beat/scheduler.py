"""One beat pass: take the due periodic tasks, send their ticks, advance them.

Any number of beats may run this at once. Two things keep a tick from
being sent twice, both in the database:

1. The due rows are taken with ``SELECT … FOR UPDATE SKIP LOCKED`` (on
   SQLite the transaction holds the database's single write lock), so
   concurrent beats split the work instead of racing for it, and each
   advances ``next_run_at`` before it commits.
2. Each tick is sent by inserting ``PeriodicTick(name, tick_at)`` under a
   unique constraint in the same savepoint as the message. Whatever else
   goes wrong (an admin save that puts back an old ``next_run_at``, a beat
   that read a stale row) the second insert fails and nothing is sent.
"""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from ..conf import settings
from ..exceptions import DecodeError, EncodeError
from ..queue import enqueue
from .models import PeriodicTask, PeriodicTick
from .sending import build_run
from .sync import sync_settings_schedules

logger = logging.getLogger("django_tasks.beat")

#: Longest sleep between passes, so admin edits take effect within it.
MAX_WAIT = 1.0
#: A due row is locked by another beat: look again this soon.
BUSY_WAIT = 0.1
#: Rows taken per pass and missed ticks sent per row per pass ("all"
#: catch-up): bounds a transaction after a long outage; the rest follow
#: in the next passes.
ROWS_PER_PASS = 50
TICKS_PER_PASS = 100
#: Sent ticks are kept this long; a tick older than this is never due again.
TICK_RETENTION = timedelta(days=1)
PRUNE_EVERY = timedelta(minutes=1)


class Scheduler:
    def __init__(self, alias=None):
        self.alias = alias or settings.DATABASE
        self._pruned_at = None

    def sync(self):
        return sync_settings_schedules(self.alias)

    def run_pass(self, now=None):
        """Send what is due; return ``(sent, seconds to wait before the next pass)``."""
        now = now or timezone.now()
        with transaction.atomic(using=self.alias):
            due = list(PeriodicTask.objects.using(self.alias)
                       .select_for_update(skip_locked=True)
                       .filter(enabled=True, next_run_at__lte=now)
                       .order_by("next_run_at")[:ROWS_PER_PASS])
            sent = []
            for periodic in due:
                sent += self._send_due(periodic, now)
        for periodic, tick, task_id in sent:
            logger.info("Scheduler: Sending due task %s (%s) [%s] for tick %s",
                        periodic.name, periodic.task, task_id, tick.isoformat())
        self._prune(now)
        return sent, self._wait(now, bool(sent))

    def _send_due(self, periodic, now):
        try:
            with transaction.atomic(using=self.alias):
                ticks, next_run = due_ticks(periodic, now)
                sent = [(periodic, tick, task_id) for tick in ticks
                        if (task_id := self._send_tick(periodic, tick)) is not None]
        except (DecodeError, EncodeError, ValueError) as exc:
            # A row written around the admin's validation: stop it rather
            # than fail every pass; the admin shows it disabled.
            logger.error("Beat: periodic task %r cannot be sent (%s); disabled it",
                         periodic.name, exc)
            periodic.enabled = False
            periodic.save(update_fields=["enabled"])
            return []
        periodic.next_run_at = next_run
        fields = ["next_run_at"]
        if sent:
            periodic.last_run_at = now
            periodic.total_run_count += len(sent)
            fields += ["last_run_at", "total_run_count"]
        if next_run is None:  # a one-off that has run
            periodic.enabled = False
            fields.append("enabled")
        periodic.save(update_fields=fields)
        return sent

    def _send_tick(self, periodic, tick):
        """Send one tick unless it was already sent; returns the task id or None."""
        message = build_run(periodic, tick)
        try:
            with transaction.atomic(using=self.alias):
                PeriodicTick.objects.using(self.alias).create(
                    name=periodic.name, tick_at=tick, task_id=message.task_id)
                enqueue([message])
        except IntegrityError:
            logger.debug("Beat: %s tick %s was already sent", periodic.name, tick)
            return None
        return message.task_id

    def _wait(self, now, sent_some):
        soonest = (PeriodicTask.objects.using(self.alias).filter(enabled=True)
                   .aggregate(soonest=Min("next_run_at"))["soonest"])
        if soonest is None:
            return MAX_WAIT
        seconds = (soonest - timezone.now()).total_seconds()
        if seconds <= 0:
            return 0.0 if sent_some else BUSY_WAIT
        return min(seconds, MAX_WAIT)

    def _prune(self, now):
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        PeriodicTick.objects.using(self.alias).filter(
            tick_at__lt=now - TICK_RETENTION).delete()


def due_ticks(periodic, now):
    """The ticks of ``periodic`` to send at ``now``, and the ``next_run_at`` after them.

    ``catch_up="once"``: however many ticks were missed, send one (the first
    missed tick names it) and go on from the first tick after ``now``.
    ``catch_up="all"``: send every missed tick, up to ``TICKS_PER_PASS``.
    """
    schedule = periodic.schedule
    first = periodic.next_run_at
    if periodic.catch_up != "all":
        return [first], schedule.next_run(now, anchor=first)
    ticks = [first]
    following = schedule.next_run(first, anchor=first)
    while following is not None and following <= now and len(ticks) < TICKS_PER_PASS:
        ticks.append(following)
        following = schedule.next_run(following, anchor=following)
    return ticks, following
