"""Hypothesis profiles and the values and documents the property suites generate.

The default profile keeps the suites within CI's time budget;
``HYPOTHESIS_PROFILE=thorough`` runs many more examples by hand.
"""

import datetime
import decimal
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from django_tasks.serialization import TYPE_KEY

settings.register_profile("default", max_examples=100, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=5000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)

ZONES = st.sampled_from([None, datetime.UTC,
                         datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
                         datetime.timezone(-datetime.timedelta(hours=11, minutes=59))])

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(),
    st.floats(allow_nan=False),
    st.datetimes(timezones=ZONES).map(lambda d: d.replace(fold=0)),
    st.dates(),
    st.times(timezones=ZONES).map(lambda t: t.replace(fold=0)),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.binary(),
)
HASHABLE = st.recursive(SCALARS, lambda inner: st.tuples(inner, inner)
                        | st.frozensets(inner, max_size=3), max_leaves=6)
VALUES = st.recursive(
    SCALARS | HASHABLE,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8) | st.sampled_from([TYPE_KEY, "value"]), inner,
                        max_size=4),
        st.dictionaries(HASHABLE, inner, max_size=3),
        st.sets(HASHABLE, max_size=3),
        st.frozensets(HASHABLE, max_size=3),
    ),
    max_leaves=20)


def typed(value):
    """``value`` with the type of every part spelled out, for exact comparison."""
    if isinstance(value, (list, tuple)):
        return (type(value), [typed(item) for item in value])
    if isinstance(value, dict):
        return (dict, sorted(((typed(k), typed(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (set, frozenset)):
        return (type(value), sorted((typed(item) for item in value), key=repr))
    if isinstance(value, float):
        return (float, repr(value))  # keeps -0.0 apart from 0.0
    if isinstance(value, (datetime.datetime, datetime.time)):
        return (type(value), value, value.utcoffset())
    if isinstance(value, decimal.Decimal):
        return (decimal.Decimal, str(value))  # keeps 1.0 apart from 1.00
    return (type(value), value)


TAG_NAMES = st.sampled_from(["dict", "tuple", "set", "frozenset", "datetime", "date", "time",
                             "timedelta", "decimal", "uuid", "bytes", "pickle", ""])
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=12),
                         st.sampled_from(["2026-01-02", "12:30", "2026-01-02T03:04:05+01:00",
                                          "1e999999999999", "Infinity", "-0", "AAAA",
                                          "12345678-1234-5678-1234-567812345678"]))
JSON_TREES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.builds(lambda name, value: {TYPE_KEY: name, "value": value},
                  TAG_NAMES | st.integers() | st.text(max_size=4), inner)),
    max_leaves=25)
