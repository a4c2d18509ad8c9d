"""crontab and interval schedules: Celery's fields, time zones, DST, bad input."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

import django_tasks
from django_tasks.beat.models import PeriodicTask
from django_tasks.beat.scheduler import due_ticks
from django_tasks.beat.schedules import crontab, every
from django_tasks.checks import check_settings


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def fires(schedule, after, count):
    """The next ``count`` fire times after ``after``, in UTC."""
    times = []
    for _ in range(count):
        after = schedule.next_run(after)
        times.append(after.astimezone(UTC))
    return times


def test_crontab_takes_celerys_fields_and_is_exported():
    assert django_tasks.crontab is crontab
    assert crontab().expression == "* * * * *"
    assert crontab(minute="*/15").expression == "*/15 * * * *"
    every_weekday = crontab(hour=7, minute=30, day_of_week="mon-fri")
    assert every_weekday.expression == "30 7 * * mon-fri"
    assert repr(every_weekday) == "<crontab: 30 7 * * mon-fri (m/h/dM/MY/d)>"
    assert crontab(minute=[0, 30], hour={12, 0}).expression == "0,30 0,12 * * *"
    assert crontab.from_string("0 4 1 */2 sun") == crontab(
        minute=0, hour=4, day_of_month=1, month_of_year="*/2", day_of_week="sun")


def test_crontab_next_run_is_strictly_after():
    hourly = crontab(minute=0)
    assert hourly.next_run(utc(2024, 1, 1, 10, 0)) == utc(2024, 1, 1, 11, 0)
    assert hourly.next_run(utc(2024, 1, 1, 10, 59, 59, 999999)) == utc(2024, 1, 1, 11, 0)


@override_settings(TIME_ZONE="America/New_York")
def test_crontab_fields_are_read_in_the_projects_time_zone():
    nine_am = crontab(hour=9, minute=0)
    assert fires(nine_am, utc(2024, 1, 10, 0, 0), 1) == [utc(2024, 1, 10, 14, 0)]  # EST
    assert fires(nine_am, utc(2024, 7, 10, 0, 0), 1) == [utc(2024, 7, 10, 13, 0)]  # EDT


@override_settings(TIME_ZONE="Europe/Berlin")
def test_daily_crontab_in_the_skipped_hour_fires_once_right_after_spring_forward():
    # 2024-03-31 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
    daily = crontab(hour=2, minute=30)
    assert fires(daily, utc(2024, 3, 29, 12, 0), 3) == [
        utc(2024, 3, 30, 1, 30),   # 02:30 CET
        utc(2024, 3, 31, 1, 0),    # 03:00 CEST, the first moment after the gap
        utc(2024, 4, 1, 0, 30),    # 02:30 CEST
    ]


@override_settings(TIME_ZONE="Europe/Berlin")
def test_daily_crontab_in_the_repeated_hour_fires_once_on_fall_back():
    # 2024-10-27 03:00 CEST goes back to 02:00 CET: 02:30 happens twice.
    daily = crontab(hour=2, minute=30)
    assert fires(daily, utc(2024, 10, 26, 12, 0), 2) == [
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST, the first pass only
        utc(2024, 10, 28, 1, 30),  # 02:30 CET the next day
    ]


@override_settings(TIME_ZONE="Europe/Berlin")
def test_hourly_crontab_fires_every_real_hour_across_both_dst_changes():
    hourly = crontab(minute=0)
    fall = fires(hourly, utc(2024, 10, 26, 22, 30), 5)
    assert fall == [utc(2024, 10, 26, 23, 0) + timedelta(hours=h) for h in range(5)]
    spring = fires(hourly, utc(2024, 3, 30, 22, 30), 5)
    assert spring == [utc(2024, 3, 30, 23, 0) + timedelta(hours=h) for h in range(5)]


def test_a_day_must_match_both_day_fields_as_in_celery():
    first_monday = crontab(minute=0, hour=9, day_of_week="mon", day_of_month="1-7")
    assert fires(first_monday, utc(2024, 1, 2, 0, 0), 2) == [utc(2024, 2, 5, 9, 0),
                                                              utc(2024, 3, 4, 9, 0)]


@pytest.mark.parametrize("expression, message", [
    ("61 * * * *", "invalid cron expression '61 * * * *'"),
    ("*/0 * * * *", "step '0'"),
    ("* * *", "has 3 field(s); it needs 5: minute hour day-of-month month day-of-week"),
    ("* * * * * *", "has 6 field(s)"),
    ("0 0 31 2 *", "never fires: no date matches all its fields"),
    ("0 25 * * *", "invalid cron expression '0 25 * * *'"),
])
def test_invalid_cron_expressions_are_rejected_with_clear_messages(expression, message):
    with pytest.raises(ValueError) as error:
        crontab.from_string(expression)
    assert message in str(error.value)


def test_invalid_crontab_fields_are_rejected():
    with pytest.raises(ValueError, match="crontab minute must be a cron field"):
        crontab(minute="1 2")
    with pytest.raises(ValueError, match="invalid cron expression"):
        crontab(day_of_week="funday")


def test_interval_keeps_its_phase_and_skips_whole_intervals_gone_by():
    thirty = every(timedelta(seconds=30))
    start = utc(2024, 1, 1, 12, 0, 0)
    assert thirty.next_run(start) == utc(2024, 1, 1, 12, 0, 30)
    assert thirty.next_run(utc(2024, 1, 1, 12, 5, 10), anchor=start) == utc(2024, 1, 1, 12, 5, 30)
    assert every(2.5).next_run(start) == start + timedelta(seconds=2.5)
    with pytest.raises(ValueError, match="positive timedelta"):
        every(timedelta(0))


def test_missed_ticks_run_once_by_default_and_each_with_catch_up_all():
    missed_since = utc(2024, 1, 1, 12, 0, 0)
    now = missed_since + timedelta(seconds=10, milliseconds=500)
    once = PeriodicTask(name="p", task="t", interval=timedelta(seconds=1),
                        next_run_at=missed_since)
    ticks, next_run = due_ticks(once, now)
    assert ticks == [missed_since]
    assert next_run == missed_since + timedelta(seconds=11)
    each = PeriodicTask(name="p", task="t", interval=timedelta(seconds=1),
                        next_run_at=missed_since, catch_up="all")
    ticks, next_run = due_ticks(each, now)
    assert ticks == [missed_since + timedelta(seconds=s) for s in range(11)]
    assert next_run == missed_since + timedelta(seconds=11)


def _beat_errors(schedule):
    with override_settings(DJANGO_TASKS={"BEAT_SCHEDULE": schedule}):
        return [e.msg for e in check_settings() if e.id == "django_tasks.E019"]


def test_beat_schedule_entries_are_checked_at_start_up():
    good = {"add": {"task": "tests.tasks.add", "schedule": crontab(minute="*/5"),
                    "args": (1, 2), "options": {"queue": "default", "expires": 30}},
            "tick": {"task": "tests.tasks.record_tick", "schedule": timedelta(seconds=1),
                     "catch_up": "all"}}
    assert _beat_errors(good) == []
    errors = _beat_errors({
        "no-task": {"schedule": 30},
        "bad-schedule": {"task": "tests.tasks.add", "schedule": "*/5 * * * *"},
        "negative": {"task": "tests.tasks.add", "schedule": timedelta(seconds=-1)},
        "bad-args": {"task": "tests.tasks.add", "schedule": 5, "args": "1, 2"},
        "unserializable": {"task": "tests.tasks.echo", "schedule": 5, "args": [object()]},
        "bad-options": {"task": "tests.tasks.add", "schedule": 5, "options": {"countdown": 1}},
        "bad-catch-up": {"task": "tests.tasks.add", "schedule": 5, "catch_up": "never"},
        "typo": {"task": "tests.tasks.add", "schedule": 5, "kwarg": {}},
    })
    expected = [
        "BEAT_SCHEDULE['no-task']['task'] must be the name of a task",
        "BEAT_SCHEDULE['bad-schedule']['schedule']: an interval must be a positive timedelta",
        "BEAT_SCHEDULE['negative']['schedule']: an interval must be a positive timedelta",
        "BEAT_SCHEDULE['bad-args']['args'] must be a list or tuple, not str.",
        "BEAT_SCHEDULE['unserializable']: ",
        "BEAT_SCHEDULE['bad-options']['options'] has unknown keys ['countdown']",
        "BEAT_SCHEDULE['bad-catch-up']['catch_up'] must be one of ['once', 'all']",
        "BEAT_SCHEDULE['typo'] has unknown keys ['kwarg']",
    ]
    for text in expected:
        assert any(text in error for error in errors), (text, errors)
    assert len(errors) == len(expected), errors


def test_a_beat_schedule_naming_an_unknown_task_is_warned_about():
    schedule = {"typo": {"task": "tests.tasks.ad", "schedule": 5}}
    with override_settings(DJANGO_TASKS={"BEAT_SCHEDULE": schedule}):
        warnings = [e.msg for e in check_settings() if e.id == "django_tasks.W019"]
    assert warnings == ["BEAT_SCHEDULE['typo']['task'] is 'tests.tasks.ad', which no installed "
                        "app registers; workers will fail every run with NotRegistered."]
