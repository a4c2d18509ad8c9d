"""Hostile and malformed values: encoding raises EncodeError, decoding DecodeError, nothing else.

No database: these are the serializer's own promises. What a worker, a
caller and the admin do with such values is tested in test_forged_results
and test_admin_bad_data.
"""

import builtins
import json
import threading

import pytest

from django_tasks import serialization
from django_tasks.exceptions import DecodeError, EncodeError
from django_tasks.serialization import MAX_DEPTH
from tests.forged import never_imported_guard


def nested_list(depth, leaf=0):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth, opening="[", closing="]", leaf="0"):
    return opening * depth + leaf + closing * depth


def cyclic_list():
    value = [1]
    value.append(value)
    return value


def cyclic_dict():
    value = {"a": 1}
    value["self"] = value
    return value


def cyclic_through_a_tuple():
    inner = []
    outer = (1, inner)
    inner.append(outer)
    return {1: outer}


def loads(text):
    return serialization.loads(text, "json", ["json"])


# -- encoding --------------------------------------------------------------

@pytest.mark.parametrize("make", [cyclic_list, cyclic_dict, cyclic_through_a_tuple,
                                  lambda: nested_list(MAX_DEPTH + 1),
                                  lambda: nested_list(500), lambda: nested_list(100_000)],
                         ids=["cyclic list", "cyclic dict", "cyclic via tuple",
                              "one level too deep", "500 deep", "100,000 deep"])
def test_cyclic_or_too_deep_values_are_an_encode_error(make):
    with pytest.raises(EncodeError, match=r"the return value\S* is nested too deeply or cyclic "
                                          rf"\(more than {MAX_DEPTH} levels"):
        serialization.dumps(make(), what="the return value")


def test_the_deepest_value_allowed_round_trips_even_in_a_thread_with_a_small_stack():
    # Dicts with non-string keys are the deepest JSON per level (three).
    deepest = "leaf"
    for _ in range(MAX_DEPTH):
        deepest = {1: deepest}
    outcome = {}

    def run():
        try:
            outcome["back"] = loads(serialization.dumps(deepest))
            serialization.dumps({0: deepest})
        except EncodeError as exc:
            outcome["error"] = exc

    threading.stack_size(256 * 1024)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(0)
    assert outcome["back"] == deepest
    assert "nested too deeply" in str(outcome["error"])


def test_pickle_refuses_too_deep_values_with_an_encode_error():
    with pytest.raises(EncodeError, match="nested too deeply"):
        serialization.dumps(nested_list(100_000), "pickle", what="the return value")
    # Pickle keeps cycles (its memo): they round-trip.
    back = serialization.loads(serialization.dumps(cyclic_list(), "pickle"), "pickle",
                               ["pickle"])
    assert back[1] is back


def test_an_integer_too_long_for_text_is_an_encode_error():
    with pytest.raises(EncodeError, match="4300 digits"):
        serialization.dumps({"n": 10 ** 5000}, what="the return value")


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


class RecursingError(Exception):
    def __str__(self):
        return str(self)


def unprintable(name, error):
    return f"<unprintable {name}: str() raised {error}>"


@pytest.mark.parametrize("exc, message, args", [
    (ValueError(cyclic_list()), "[1, [...]]", None),
    (ValueError(nested_list(100_000)), unprintable("ValueError", "RecursionError"), None),
    (ValueError(10 ** 5000), unprintable("ValueError", "ValueError"), None),
    (UnprintableError(1, 2), unprintable("UnprintableError", "RuntimeError"), [1, 2]),
    (RecursingError("x"), unprintable("RecursingError", "RecursionError"), ["x"]),
], ids=["cyclic args", "deep args", "huge int", "str raises", "str recurses"])
def test_exception_to_dict_never_raises(exc, message, args):
    data = serialization.exception_to_dict(exc)
    assert data["exc_message"] == message
    assert data["exc_args"] == (args or [message])  # args that cannot be stored: the text
    json.dumps(data)  # plain data
    back = serialization.exception_from_dict(data)
    assert isinstance(back, Exception) and type(back).__name__ == type(exc).__name__


# -- decoding --------------------------------------------------------------

def tag(name, value):
    return json.dumps({"__type__": name, "value": value})


MALFORMED = {
    "decimal not a number": tag("decimal", "x"),
    "decimal not text": tag("decimal", [0, [1], 0]),
    "decimal huge exponent": tag("decimal", "1e9999999999999999999"),
    "uuid holding a number": tag("uuid", 12345),
    "uuid not a uuid": tag("uuid", "abc"),
    "timedelta too big": tag("timedelta", [10 ** 10, 0, 0]),
    "timedelta not a list": tag("timedelta", {"days": 1}),
    "timedelta too short": tag("timedelta", [1]),
    "timedelta of text": tag("timedelta", ["1", 0, 0]),
    "bytes not base64": tag("bytes", "!!!!"),
    "bytes not ascii": tag("bytes", "é"),
    "bytes not text": tag("bytes", 3),
    "datetime holding a number": tag("datetime", 3),
    "datetime not a date": tag("datetime", "yesterday"),
    "date holding a list": tag("date", [2026, 1, 1]),
    "time out of range": tag("time", "25:00"),
    "dict of non-pairs": tag("dict", [[1, 2, 3]]),
    "dict not a list": tag("dict", 7),
    "dict with unhashable key": tag("dict", [[[1], 2]]),
    "set with unhashable member": tag("set", [[1]]),
    "frozenset not a list": tag("frozenset", "abc"),
    "tuple not a list": tag("tuple", 5),
    "unknown tag": tag("pickle", "x"),
    "tag name not text": json.dumps({"__type__": [1], "value": 1}),
    "tag nested in a list": json.dumps([{"k": {"__type__": "uuid", "value": None}}]),
    "list 100,000 deep": nested_text(100_000),
    "object 100,000 deep": nested_text(100_000, '{"a":', "}"),
    "list 500 deep": nested_text(500),
    "tuple one level too deep": nested_text(MAX_DEPTH, leaf=tag("tuple", [])),
    "integer of 5,000 digits": "9" * 5000,
    "not JSON": "{this is not json",
    "empty": "",
    "none": None,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_text_is_a_decode_error(text):
    with pytest.raises(DecodeError, match="cannot decode"):
        loads(text)


def test_a_value_exactly_as_deep_as_allowed_decodes():
    text = serialization.dumps(nested_list(MAX_DEPTH - 1, leaf=()))
    assert loads(text) == nested_list(MAX_DEPTH - 1, leaf=())


def test_a_plain_dict_holding_the_tag_key_round_trips_as_an_exception_argument():
    data = serialization.exception_to_dict(KeyError({"__type__": "uuid", "value": 1}))
    stored = json.dumps(data)
    back = serialization.exception_from_json(stored)
    assert isinstance(back, KeyError) and back.args == ({"__type__": "uuid", "value": 1},)


# -- rebuilding exceptions -------------------------------------------------

def stored(exc_type, exc_module="builtins", args=("boom",), message="boom"):
    return {"exc_type": exc_type, "exc_module": exc_module, "exc_message": message,
            "exc_args": list(args)}


def test_a_known_exception_class_is_rebuilt():
    error = serialization.exception_from_dict(stored("KeyError", args=["k"]))
    assert type(error) is KeyError and error.args == ("k",)
    error = serialization.exception_from_dict(
        stored("EncodeError", "django_tasks.exceptions", ["bad"]))
    assert type(error) is EncodeError


def test_a_module_not_imported_is_not_imported():
    with never_imported_guard():
        error = serialization.exception_from_dict(
            stored("ImportedError", "tests.never_imported", ["x"], "x"))
    assert type(error).__name__ == "ImportedError" and type(error).__module__ == \
        "tests.never_imported"
    assert isinstance(error, Exception) and str(error) == "x"


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit",
                                  "BaseExceptionGroup"])
def test_base_exceptions_that_are_not_exceptions_get_a_stand_in(name):
    error = serialization.exception_from_dict(stored(name, args=[3], message="3"))
    assert type(error).__name__ == name and type(error).__module__ == "builtins"
    assert isinstance(error, Exception)
    assert not isinstance(error, getattr(builtins, name))
    assert str(error) == "3"


def test_things_that_are_not_exception_classes_get_a_stand_in():
    for exc_type, module in [("system", "os"), ("path.join", "os"), ("Warning", "builtins"),
                             ("__class__", "builtins"), ("", "os"), ("x\0y", "builtins"),
                             ("DecodeError.__init__", "django_tasks.exceptions"),
                             ("loads", "django_tasks.serialization")]:
        error = serialization.exception_from_dict(stored(exc_type, module))
        assert isinstance(error, Exception), exc_type
        assert str(error) == "boom"


class ExplodingError(Exception):
    def __init__(self, *args):
        raise RuntimeError("constructor says no")


class StrictError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = int(code)


class UnprintableAfterwardsError(Exception):
    def __str__(self):
        raise ValueError("no")


@pytest.mark.parametrize("exc_type, args", [
    ("ExplodingError", ["a"]), ("StrictError", ["not a number"]), ("StrictError", [1, 2]),
    ("UnprintableAfterwardsError", [1]),
])
def test_a_constructor_or_str_that_raises_gives_a_stand_in(exc_type, args):
    error = serialization.exception_from_dict(stored(exc_type, __name__, args))
    assert type(error).__name__ == exc_type and type(error) is not globals()[exc_type]
    assert isinstance(error, Exception) and str(error) == "boom"


@pytest.mark.parametrize("data", [
    None, [1, 2], "text", 3,
    {"exc_type": ["KeyError"], "exc_module": "builtins"},
    {"exc_type": "KeyError", "exc_module": 3},
    {"exc_type": "KeyError", "exc_message": {"a": 1}},
    {"exc_type": "KeyError", "exc_args": "not a list"},
    {"exc_type": "KeyError", "exc_args": [{"__type__": "decimal", "value": "x"}]},
    {"exc_type": "KeyError", "exc_args": [{"__type__": "timedelta", "value": [1e300, 0, 0]}]},
    {"exc_type": "KeyError", "exc_args": nested_list(5000)},
], ids=["none", "list", "text", "number", "type not text", "module not text",
        "message not text", "args not a list", "args bad decimal", "args huge timedelta",
        "args 5000 deep"])
def test_malformed_stored_exceptions_are_a_decode_error(data):
    with pytest.raises(DecodeError, match="stored exception|cannot decode"):
        serialization.exception_from_dict(data)


@pytest.mark.parametrize("text", ["{", "[]", nested_text(100_000), "9" * 5000,
                                  json.dumps({"exc_type": 1})],
                         ids=["not JSON", "a list", "100,000 deep", "5,000 digits", "type 1"])
def test_malformed_stored_exception_text_is_a_decode_error(text):
    with pytest.raises(DecodeError):
        serialization.exception_from_json(text)
