"""Generated values and documents through the serializer (Hypothesis).

Round trips keep values and their types (JSON, msgpack, pickle); any text
or tagged tree decodes or raises DecodeError, and nothing else; any stored exception data gives
an exception or DecodeError and imports nothing. The default profile runs
in a few seconds; ``HYPOTHESIS_PROFILE=thorough`` runs many more examples
(profiles and strategies: tests/generated.py).
"""

import base64
import json
import sys

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from django_tasks import serialization
from django_tasks.exceptions import DecodeError, EncodeError
from django_tasks.serialization import MAX_DEPTH
from tests.generated import JSON_TREES, VALUES, typed


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


@given(VALUES | st.integers())
def test_msgpack_round_trips_values_and_types(value):
    text = serialization.dumps(value, "msgpack")
    assert typed(serialization.loads(text, "msgpack", ["msgpack"])) == typed(value)


def loads_or_decode_error(text):
    try:
        loads(text)
    except DecodeError as exc:
        assert str(exc).startswith("cannot decode"), exc


@given(st.text() | st.binary())
def test_any_text_decodes_or_is_a_decode_error(text):
    loads_or_decode_error(text)


@given(JSON_TREES)
def test_any_tagged_tree_decodes_or_is_a_decode_error(tree):
    loads_or_decode_error(json.dumps(tree))


def msgpack_loads_or_decode_error(data):
    try:
        serialization.loads(base64.b64encode(data).decode(), "msgpack", ["msgpack"])
    except DecodeError as exc:
        assert str(exc).startswith("cannot decode"), exc


@given(st.binary())
def test_any_bytes_decode_as_msgpack_or_are_a_decode_error(data):
    msgpack_loads_or_decode_error(data)


@given(JSON_TREES)
def test_any_tagged_tree_in_msgpack_decodes_or_is_a_decode_error(tree):
    try:
        data = msgpack.packb(tree)
    except OverflowError:  # an integer msgpack has no type for
        return
    msgpack_loads_or_decode_error(data)


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
