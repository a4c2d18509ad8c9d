"""When periodic tasks are due: ``crontab``, fixed intervals and one-off times.

Every schedule answers one question, ``next_run(after, anchor)``: the first
tick strictly after ``after``. Ticks are exact datetimes computed from
stored state, so every beat process computes the same tick and the
database can refuse the second one (see ``scheduler.py``).

Cron parsing and stepping are croniter's; this module adds Celery's field
names and daylight-saving rules:

- a wall-clock time skipped by the spring-forward jump fires at the first
  moment after the jump (croniter's behaviour, as Vixie cron does);
- a wall-clock time that happens twice on the fall-back day fires once,
  unless the hour field is ``*`` (then every real hour, minute, … fires,
  both passes included).
"""

from datetime import datetime, timedelta

from croniter import CroniterBadDateError, CroniterError, croniter
from django.conf import settings as django_settings
from django.utils import timezone

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# Searching this far ahead without a match means the expression never fires
# (e.g. 31 February); croniter's own limit is in years of single steps.
_SEARCH_LIMIT = 2000


class crontab:  # noqa: N801  (Celery's name)
    """A cron schedule with Celery's field names and defaults.

    ``crontab(minute="*/15")``, ``crontab(hour=7, minute=30, day_of_week="mon-fri")``.
    Fields take what cron takes (``"*/15"``, ``"1-5"``, ``"mon,wed"``), an int,
    or a list/set of ints. As in Celery, a day must match both
    ``day_of_month`` and ``day_of_week`` when both are given.
    """

    def __init__(self, minute="*", hour="*", day_of_week="*", day_of_month="*",
                 month_of_year="*"):
        self.minute = _field_text("minute", minute)
        self.hour = _field_text("hour", hour)
        self.day_of_week = _field_text("day_of_week", day_of_week)
        self.day_of_month = _field_text("day_of_month", day_of_month)
        self.month_of_year = _field_text("month_of_year", month_of_year)
        validate_cron(self.expression)

    @classmethod
    def from_string(cls, expression):
        """``"*/15 * * * *"``: minute hour day-of-month month day-of-week."""
        if not isinstance(expression, str):
            raise ValueError(f"a cron expression must be a string, got {expression!r}")
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(
                f"cron expression {expression!r} has {len(parts)} field(s); it needs 5: "
                "minute hour day-of-month month day-of-week (e.g. '*/15 * * * *')")
        minute, hour, day_of_month, month_of_year, day_of_week = parts
        return cls(minute=minute, hour=hour, day_of_week=day_of_week,
                   day_of_month=day_of_month, month_of_year=month_of_year)

    @property
    def expression(self):
        return " ".join((self.minute, self.hour, self.day_of_month, self.month_of_year,
                         self.day_of_week))

    def __repr__(self):
        return f"<crontab: {self.expression} (m/h/dM/MY/d)>"

    def __eq__(self, other):
        return isinstance(other, crontab) and other.expression == self.expression

    def __hash__(self):
        return hash(self.expression)

    def next_run(self, after, anchor=None):
        """The first fire time strictly after ``after`` (in the project's zone)."""
        zone = _zone()
        local = _to_local(after, zone)
        steps = croniter(self.expression, local, day_or=False)
        for _ in range(_SEARCH_LIMIT):
            try:
                candidate = _to_local(steps.get_next(datetime), zone)
            except CroniterError:
                break
            if zone is not None and self.hour != "*" and _is_second_pass(candidate):
                continue  # this wall-clock time already fired before the clocks went back
            return candidate
        raise ValueError(f"cron expression {self.expression!r} never fires")


class every:  # noqa: N801  (reads as a schedule: every(timedelta(seconds=30)))
    """A fixed interval. Ticks keep their phase: anchor + k × interval."""

    def __init__(self, interval):
        if isinstance(interval, (int, float)) and not isinstance(interval, bool):
            interval = timedelta(seconds=interval)
        if not isinstance(interval, timedelta) or interval <= timedelta(0):
            raise ValueError(f"an interval must be a positive timedelta or number of "
                             f"seconds, got {interval!r}")
        self.interval = interval

    def __repr__(self):
        return f"<every {self.interval}>"

    def next_run(self, after, anchor=None):
        """The first tick after ``after``: one interval on from ``anchor`` (or ``after``),
        skipping whole intervals that have already gone by."""
        anchor = after if anchor is None else anchor
        if after < anchor:
            return anchor + self.interval
        gone_by = (after - anchor) // self.interval
        return anchor + self.interval * (gone_by + 1)


class once:  # noqa: N801
    """A one-off run at ``run_at``; nothing after it has fired."""

    def __init__(self, run_at):
        self.run_at = run_at

    def __repr__(self):
        return f"<once at {self.run_at.isoformat()}>"

    def next_run(self, after, anchor=None):
        return self.run_at if anchor is None else None


def validate_cron(expression):
    """Raise ``ValueError`` saying what is wrong with a 5-field cron expression."""
    try:
        # Stepping once also catches dates that never come (30 February).
        croniter(expression, day_or=False).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {expression!r} never fires: no date "
                         "matches all its fields") from None
    except CroniterError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None


def _field_text(name, value):
    if isinstance(value, bool):
        raise ValueError(f"crontab {name} must be a cron field, an int or ints, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset, range)):
        items = sorted(value)
        if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise ValueError(f"crontab {name} must list whole numbers, got {value!r}")
        return ",".join(str(i) for i in items)
    if isinstance(value, str) and value.strip() and len(value.split()) == 1:
        return value.strip()
    raise ValueError(f"crontab {name} must be a cron field like '*/15', an int or "
                     f"ints, got {value!r}")


def _zone():
    """The zone cron fields are read in: ``TIME_ZONE`` with ``USE_TZ``; else naive local."""
    return timezone.get_default_timezone() if django_settings.USE_TZ else None


def _to_local(value, zone):
    if zone is None:
        return timezone.make_naive(value) if timezone.is_aware(value) else value
    if timezone.is_naive(value):
        value = timezone.make_aware(value, zone)
    # astimezone() sets ``fold`` right for the repeated hour of a fall-back day.
    return value.astimezone(zone)


def _is_second_pass(value):
    """Whether ``value`` is the second occurrence of a wall-clock time (fall back)."""
    if value.fold != 1:
        return False
    return value.replace(fold=0).utcoffset() != value.utcoffset()


def to_schedule(value):
    """A ``BEAT_SCHEDULE`` entry's ``schedule``: crontab, timedelta or seconds."""
    if isinstance(value, (crontab, every)):
        return value
    return every(value)
