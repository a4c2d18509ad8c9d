"""The scheduler's pass on the real database: ticks sent once, catch-up, one-offs."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from django_tasks.beat.models import PeriodicTask, PeriodicTick
from django_tasks.beat.scheduler import Scheduler
from django_tasks.beat.sync import sync_settings_schedules
from django_tasks.models import QueuedMessage

pytestmark = pytest.mark.django_db(transaction=True)


def every_second(name="tick", **fields):
    return PeriodicTask.objects.create(name=name, task="tests.tasks.record_tick",
                                       interval=timedelta(seconds=1), **fields)


def sent_ticks(name="tick"):
    return list(PeriodicTick.objects.filter(name=name).order_by("tick_at")
                .values_list("tick_at", flat=True))


def test_a_due_tick_is_sent_as_a_message_and_the_schedule_advances():
    periodic = every_second(args="[]", queue="beat", priority=5)
    due = periodic.next_run_at
    assert due > timezone.now() - timedelta(seconds=1)
    sent, _wait = Scheduler().run_pass(now=due)
    assert [(p.name, tick) for p, tick, _ in sent] == [("tick", due)]
    message = QueuedMessage.objects.get()
    assert (message.task_name, message.queue, message.priority) == (
        "tests.tasks.record_tick", "beat", 5)
    assert message.headers["periodic_task"] == "tick"
    assert message.headers["periodic_tick"] == due.isoformat()
    periodic.refresh_from_db()
    assert periodic.next_run_at == due + timedelta(seconds=1)
    assert periodic.total_run_count == 1 and periodic.last_run_at is not None
    assert Scheduler().run_pass(now=due)[0] == []  # not due again


def test_a_tick_already_sent_is_refused_by_the_database():
    periodic = every_second()
    due = periodic.next_run_at
    # Another beat sent this tick; then a stale save put next_run_at back.
    PeriodicTick.objects.create(name="tick", tick_at=due, task_id="0" * 32)
    sent, _wait = Scheduler().run_pass(now=due)
    assert sent == []
    assert not QueuedMessage.objects.exists()
    periodic.refresh_from_db()
    assert periodic.next_run_at == due + timedelta(seconds=1)
    assert periodic.total_run_count == 0


def test_missed_ticks_run_once_on_start_by_default():
    every_second()
    missed_since = timezone.now() - timedelta(seconds=30)
    PeriodicTask.objects.update(next_run_at=missed_since)
    now = timezone.now()
    sent, _wait = Scheduler().run_pass(now=now)
    assert len(sent) == 1 and sent_ticks() == [missed_since]
    assert PeriodicTask.objects.get().next_run_at > now


def test_missed_ticks_run_each_with_catch_up_all():
    every_second(catch_up="all")
    missed_since = timezone.now() - timedelta(seconds=30)
    PeriodicTask.objects.update(next_run_at=missed_since)
    now = missed_since + timedelta(seconds=9, milliseconds=500)
    sent, _wait = Scheduler().run_pass(now=now)
    assert sent_ticks() == [missed_since + timedelta(seconds=s) for s in range(10)]
    assert QueuedMessage.objects.count() == 10 and len(sent) == 10


def test_a_one_off_runs_once_then_disables_itself():
    run_at = timezone.now() - timedelta(seconds=1)
    periodic = PeriodicTask.objects.create(name="once", task="tests.tasks.add",
                                           args="[1, 2]", run_at=run_at)
    assert periodic.next_run_at == run_at
    scheduler = Scheduler()
    assert len(scheduler.run_pass()[0]) == 1
    assert scheduler.run_pass()[0] == []
    periodic.refresh_from_db()
    assert not periodic.enabled and periodic.next_run_at is None
    assert sent_ticks("once") == [run_at] and QueuedMessage.objects.count() == 1


def test_a_row_written_around_validation_is_disabled_not_retried_forever():
    every_second(name="broken")
    PeriodicTask.objects.update(args="not json", next_run_at=F("next_run_at") - timedelta(hours=1))
    assert Scheduler().run_pass()[0] == []
    assert not PeriodicTask.objects.get().enabled
    assert not QueuedMessage.objects.exists()


def test_settings_schedules_become_rows_and_keep_their_next_run_across_restarts():
    schedule = {"every-5s": {"task": "tests.tasks.add", "schedule": timedelta(seconds=5),
                             "args": (2, 3), "options": {"queue": "math", "expires": 60}}}
    PeriodicTask.objects.create(name="old", task="tests.tasks.add", interval=timedelta(1),
                                source=PeriodicTask.SETTINGS)
    with override_settings(DJANGO_TASKS={"BEAT_SCHEDULE": schedule}):
        assert sync_settings_schedules("default") == ["every-5s"]
        row = PeriodicTask.objects.get()
        assert (row.name, row.source, row.queue, row.expire_seconds) == (
            "every-5s", PeriodicTask.SETTINGS, "math", 60)
        assert row.decoded_arguments() == ([2, 3], {})
        assert sync_settings_schedules("default") == []  # unchanged: next run kept
        assert PeriodicTask.objects.get().next_run_at == row.next_run_at
    schedule["every-5s"]["schedule"] = timedelta(seconds=7)
    with override_settings(DJANGO_TASKS={"BEAT_SCHEDULE": schedule}):
        assert sync_settings_schedules("default") == ["every-5s"]
        assert PeriodicTask.objects.get().interval == timedelta(seconds=7)
