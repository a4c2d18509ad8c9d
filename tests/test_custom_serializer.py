"""Serializers of the project's own (``django_tasks.serialization.register``).

The tests' app registers two in its ``ready()`` (tests/serializers.py), as
a project would: ``zjson`` (binary: zlib-compressed JSON) and ``literal``
(text: Python literals). Workers started by the tests load the same apps.
"""

import base64
import zlib

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from django_tasks import chain, serialization, states
from django_tasks.checks import check_settings
from django_tasks.exceptions import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    SerializerUnavailable,
)
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.result import AsyncResult
from tests.tasks import add, echo

ACCEPTED = ["json", "zjson", "literal"]


def accepting(*names, **more):
    return override_settings(DJANGO_TASKS={**django_settings.DJANGO_TASKS,
                                           "ACCEPT_CONTENT": list(names), **more})


@pytest.fixture
def registered():
    """Register serializers for one test; removed after it."""
    names = []

    def register(name, *args, **kwargs):
        serialization.register(name, *args, **kwargs)
        names.append(name)

    yield register
    for name in names:
        serialization.unregister(name)


def test_the_apps_serializers_round_trip():
    value = {"a": [1, 2.5, None, "ü"], "b": {"c": True}}
    text = serialization.dumps(value, "zjson")
    assert zlib.decompress(base64.b64decode(text))  # stored base64, as text
    assert serialization.loads(text, "zjson", ACCEPTED) == value
    literal = {"t": (1, 2), "s": {3}, "b": b"\x00"}
    text = serialization.dumps(literal, "literal")
    assert text == repr(literal)  # a text serializer's output is stored as it is
    assert serialization.loads(text, "literal", ACCEPTED) == literal


def test_content_types_are_accepted_for_their_serializer():
    text = serialization.dumps([1], "zjson")
    assert serialization.loads(text, "zjson", ["application/x-zjson"]) == [1]
    with pytest.raises(ContentDisallowed, match="'zjson'"):
        serialization.loads(text, "zjson", ["json", "text/x-python-literal"])


@pytest.mark.parametrize("name, args, kwargs, error, words", [
    ("", (), {}, ValueError, "not usable"),
    ("x" * 33, (), {}, ValueError, "1 to 32"),
    ("a,b", (), {}, ValueError, "not usable"),
    (" yaml", (), {}, ValueError, "not usable"),
    (None, (), {}, ValueError, "not usable"),
    ("json", (), {}, ValueError, "'json' is built in"),
    ("msgpack", (), {}, ValueError, "'msgpack' is built in"),
    ("yaml", ("not callable",), {}, TypeError, "must be callables"),
    ("yaml", (), {"content_type": "yaml"}, ValueError, "not a MIME type"),
    ("yaml", (), {"content_type": "application/json"}, ValueError, "the serializer 'json'"),
    ("yaml", (), {"content_type": "application/x-zjson"}, ValueError, "'zjson'"),
    ("yaml", (), {"content_encoding": "nope"}, ValueError, "neither 'binary' nor a text"),
    ("yaml", (), {"content_encoding": None}, ValueError, "neither 'binary' nor a text"),
])
def test_registration_is_checked(name, args, kwargs, error, words):
    dumps_loads = args if args else (str, str)
    if len(dumps_loads) == 1:
        dumps_loads = (dumps_loads[0], str)
    with pytest.raises(error, match=words):
        serialization.register(name, *dumps_loads, **kwargs)
    assert "yaml" not in serialization.SERIALIZERS


class Opaque:
    pass


def _raise(value):
    raise RuntimeError("boom")


@pytest.mark.parametrize("dumps, encoding, words", [
    (_raise, "utf-8", "value cannot be serialized with 'custom': RuntimeError: boom"),
    (lambda value: 42, "utf-8", "serializer 'custom' returned int for value, not str or bytes"),
    (lambda value: None, "binary", "returned NoneType for value, not str or bytes"),
    (lambda value: "a\0b", "utf-8", "NUL characters"),
    (lambda value: b"\xff", "utf-8", "not utf-8 for value"),
    (lambda value: "\ud800", "utf-8", "not valid Unicode"),
    (lambda value: "\ud800", "binary", "not valid Unicode"),
])
def test_a_custom_dumps_failure_is_an_encode_error_naming_the_serializer(registered, dumps,
                                                                         encoding, words):
    registered("custom", dumps, str, content_encoding=encoding)
    with pytest.raises(EncodeError, match=words):
        serialization.dumps(object(), "custom")


def test_what_a_custom_dumps_may_return(registered):
    registered("bytes-text", lambda value: b"caf\xc3\xa9", lambda data: data)
    assert serialization.dumps(1, "bytes-text") == "café"  # bytes from a text one: UTF-8
    registered("latin", lambda value: b"caf\xe9", lambda data: data, "text/plain", "latin-1")
    assert serialization.dumps(1, "latin") == "café"
    registered("text-binary", lambda value: "café", lambda data: data,
               content_encoding="binary")
    text = serialization.dumps(1, "text-binary")
    assert serialization.loads(text, "text-binary", ["text-binary"]) == "café".encode()


def test_a_custom_loads_failure_is_a_decode_error_naming_the_serializer(registered):
    registered("custom", str, _raise, content_encoding="binary")
    with pytest.raises(DecodeError, match="cannot decode 'custom' content: it is not base64"):
        serialization.loads("not base64!", "custom", ["custom"])
    with pytest.raises(DecodeError, match="cannot decode 'custom' content: RuntimeError: boom"):
        serialization.loads("AAAA", "custom", ["custom"])


def test_unknown_content_type_says_how_to_register_it():
    with pytest.raises(SerializerUnavailable, match="no serializer of that name is registered "
                                                    "in this process.*AppConfig.ready"):
        serialization.loads("x", "yaml", ["yaml"])


def test_checks_know_registered_serializers(registered):
    def errors(**setting):
        with override_settings(DJANGO_TASKS=setting):
            return {error.id: error.msg for error in check_settings()}

    assert errors(SERIALIZER="zjson", ACCEPT_CONTENT=["json", "application/x-zjson"]) == {}
    assert "django_tasks.E007" in errors(SERIALIZER="yaml", ACCEPT_CONTENT=["json", "yaml"])
    registered("yaml", str, str)
    assert errors(SERIALIZER="yaml", ACCEPT_CONTENT=["json", "yaml"]) == {}


WORKER = {"TESTS_ACCEPT_CONTENT": ",".join(ACCEPTED)}


@pytest.mark.django_db(transaction=True)
def test_custom_serializers_through_a_worker(start_worker):
    start_worker(env=WORKER)
    with accepting(*ACCEPTED):
        result = echo.apply_async(({"n": [1, 2], "s": "ü"},), serializer="zjson")
        assert QueuedMessage.objects.get(task_id=result.id).content_type == "zjson"
        assert result.get(timeout=20) == {"n": [1, 2], "s": "ü"}
        assert TaskResult.objects.get(task_id=result.id).content_type == "zjson"
        assert AsyncResult(result.id).args == [{"n": [1, 2], "s": "ü"}]
        pair = echo.apply_async(((1, {2}),), serializer="literal").get(timeout=20)
        assert pair == (1, {2}) and type(pair) is tuple
        # The value's repr is no literal: the worker's loads refuses it, and says why.
        refused = echo.apply_async((Opaque(),), serializer="literal")
        with pytest.raises(DecodeError, match="cannot decode 'literal' content: SyntaxError"):
            refused.get(timeout=20)
        assert refused.state == states.FAILURE
    with accepting(*ACCEPTED, SERIALIZER="zjson"):
        assert chain(add.s(1, 2), add.s(3), echo.s()).delay().get(timeout=20) == 6


@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_custom_content_it_does_not_accept(start_worker):
    start_worker(env={"TESTS_ACCEPT_CONTENT": "json,application/x-zjson"})
    with accepting(*ACCEPTED):
        assert echo.apply_async((1,), serializer="zjson").get(timeout=20) == 1  # by type
        refused = echo.apply_async((1,), serializer="literal")
        with pytest.raises(ContentDisallowed, match="'literal'"):
            refused.get(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_a_worker_lacking_a_serializer_fails_its_messages_with_the_reason(start_worker,
                                                                           registered):
    registered("local-only", str, int)
    # Its checks (which would refuse an unknown name in ACCEPT_CONTENT) skipped.
    start_worker("--skip-checks", env={"TESTS_ACCEPT_CONTENT": "json,local-only"})
    with accepting("json", "local-only"):
        result = add.apply_async((1, 2), serializer="local-only")
    with pytest.raises(SerializerUnavailable, match="no serializer of that name is registered"):
        result.get(timeout=20)
    assert add.delay(1, 2).get(timeout=20) == 3
