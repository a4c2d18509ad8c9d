"""Reading timestamp columns that may hold what Python cannot: infinity, year 10000, BC.

PostgreSQL's ``timestamptz`` spans 4713 BC to 294276 AD, plus ``-infinity``
and ``infinity``; Python's ``datetime`` holds years 1 to 9999, so psycopg
raises ``DataError`` when it loads anything else, and one such row fails the
whole query. (SQLite stores text, and Django's converter fails on what is
not a date, such as ``infinity``.) Only writers from outside the app put
such values there, but the pages that let an operator find and revoke such
a row must still read it.

``readable(queryset, columns)`` selects each of ``columns`` clamped into
Python's range (``LOWEST`` .. ``HIGHEST``, so ordering and "is it due"
comparisons keep their sense), plus the stored text where it was clamped,
found on each row as ``row.out_of_range[column]``. Only the select list
changes: filters and ordering still use the columns themselves, so the
queries keep their indexes.
"""

from datetime import UTC, datetime

from django.db.models import Case, DateTimeField, F, Q, TextField, Value, When
from django.db.models.functions import Cast
from django.db.models.query import ModelIterable

# A day inside Python's range, so any time zone can still show them.
LOWEST = datetime(1, 1, 2, tzinfo=UTC)
HIGHEST = datetime(9999, 12, 30, tzinfo=UTC)


def clamped(column):
    """``column`` as a datetime Python holds: values out of range at the nearer end."""
    return Case(When(**{f"{column}__lt": LOWEST}, then=Value(LOWEST)),
                When(**{f"{column}__gt": HIGHEST}, then=Value(HIGHEST)),
                default=F(column), output_field=DateTimeField())


def _stored_text(column):
    out_of_range = Q(**{f"{column}__lt": LOWEST}) | Q(**{f"{column}__gt": HIGHEST})
    return Case(When(out_of_range, then=Cast(column, TextField())), default=Value(None),
                output_field=TextField())


def readable(queryset, columns):
    """``queryset`` whose rows can be loaded whatever ``columns`` hold."""
    annotations = {}
    for column in columns:
        annotations[f"_readable_{column}"] = clamped(column)
        annotations[f"_stored_{column}"] = _stored_text(column)
    queryset = queryset.defer(*columns).annotate(**annotations)
    # Django's hook for what a queryset yields (values() and friends set
    # their own): here, the model rows with the clamped values put back.
    queryset._iterable_class = _restoring(tuple(columns))
    return queryset


def _restoring(columns):
    class Restoring(ModelIterable):
        def __iter__(self):
            for row in super().__iter__():
                row.out_of_range = {}
                for column in columns:
                    # In the instance's dict, the deferred column counts as loaded.
                    row.__dict__[column] = row.__dict__.pop(f"_readable_{column}")
                    text = row.__dict__.pop(f"_stored_{column}")
                    if text is not None:
                        row.out_of_range[column] = text
                yield row

    return Restoring
