"""Generated values and documents through the serializer (Hypothesis).

Round trips keep values and their types; any text or tagged tree decodes
or raises DecodeError, and nothing else; any stored exception data gives
an exception or DecodeError and imports nothing. The default profile runs
in a few seconds; ``HYPOTHESIS_PROFILE=thorough`` runs many more examples.
"""

import datetime
import decimal
import json
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_tasks import serialization
from django_tasks.exceptions import DecodeError, EncodeError
from django_tasks.serialization import MAX_DEPTH, TYPE_KEY

settings.register_profile("default", max_examples=100, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=5000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

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


def loads(text):
    return serialization.loads(text, "json", ["json"])


@given(VALUES)
def test_json_round_trips_values_and_types(value):
    back = loads(serialization.dumps(value))
    assert typed(back) == typed(value)


@given(VALUES)
def test_pickle_round_trips_values_and_types(value):
    text = serialization.dumps(value, "pickle")
    assert typed(serialization.loads(text, "pickle", ["pickle"])) == typed(value)


def loads_or_decode_error(text):
    try:
        loads(text)
    except DecodeError as exc:
        assert str(exc).startswith("cannot decode"), exc


@given(st.text() | st.binary())
def test_any_text_decodes_or_is_a_decode_error(text):
    loads_or_decode_error(text)


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


@given(JSON_TREES)
def test_any_tagged_tree_decodes_or_is_a_decode_error(tree):
    loads_or_decode_error(json.dumps(tree))


@given(st.lists(st.sampled_from(["[", "{\"a\":", '{"__type__":"tuple","value":[',
                                 '{"__type__":"dict","value":[[1,']), max_size=3),
       st.integers(MAX_DEPTH - 3, 20 * MAX_DEPTH))
def test_deep_documents_decode_or_are_a_decode_error(openings, depth):
    closing = {"[": "]", "{\"a\":": "}", '{"__type__":"tuple","value":[': "]}",
               '{"__type__":"dict","value":[[1,': "]]}"}
    openings = (openings or ["["]) * depth
    text = "".join(openings) + "0" + "".join(closing[o] for o in reversed(openings))
    loads_or_decode_error(text)


class Opaque:
    pass


EXCEPTION_ARGS = st.lists(VALUES | st.builds(Opaque) | st.integers(min_value=10 ** 4400),
                          max_size=3)


@given(st.sampled_from([ValueError, KeyError, RuntimeError, EncodeError, Exception]),
       EXCEPTION_ARGS)
def test_any_exception_is_stored_and_rebuilt(cls, args):
    data = serialization.exception_to_dict(cls(*args))
    back = serialization.exception_from_json(json.dumps(data))
    assert type(back) is cls
    assert isinstance(data["exc_message"], str)


STORED_EXCEPTIONS = st.fixed_dictionaries(
    {}, optional={
        "exc_type": st.sampled_from(["SystemExit", "KeyError", "ImportedError", "Outer.Inner",
                                     "ExceptionGroup", "system", ""]) | JSON_TREES,
        "exc_module": st.sampled_from(["builtins", "os", "tests.never_imported",
                                       "django_tasks.exceptions", ""]) | JSON_TREES,
        "exc_message": JSON_TREES,
        "exc_args": JSON_TREES,
    }) | JSON_TREES


@given(STORED_EXCEPTIONS)
def test_any_stored_exception_data_rebuilds_safely(data):
    before = set(sys.modules)
    try:
        error = serialization.exception_from_json(json.dumps(data))
    except DecodeError as exc:
        error = exc
    assert isinstance(error, Exception)
    assert set(sys.modules) == before
