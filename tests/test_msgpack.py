"""msgpack as the task and result serializer (Celery's ``task_serializer = 'msgpack'``).

The same types come back as with JSON, the same values are refused, the
same limits hold; without the msgpack package a setting naming it is a
system check error and a worker fails its messages with the reason.
"""

import base64
import datetime
import subprocess
import sys
import uuid

import msgpack
import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.urls import reverse

from django_tasks import chain, group, serialization, states
from django_tasks.checks import check_settings
from django_tasks.exceptions import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    SerializerUnavailable,
)
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.msgpack_serializer import _pack
from django_tasks.result import AsyncResult
from tests.canvas_tasks import succeed_on_third_attempt
from tests.tasks import add, echo
from tests.test_serialization import VALUES, Opaque
from tests.workers import ROOT, worker_env

MSGPACK = {"SERIALIZER": "msgpack", "ACCEPT_CONTENT": ["json", "msgpack"]}
# The worker processes' settings (tests/settings.py reads these).
MSGPACK_WORKER = {"TESTS_SERIALIZER": "msgpack", "TESTS_ACCEPT_CONTENT": "json,msgpack"}


def with_msgpack(**more):
    return override_settings(DJANGO_TASKS={**django_settings.DJANGO_TASKS, **MSGPACK, **more})


def loads(text):
    return serialization.loads(text, "msgpack", ["msgpack"])


BIG_INTEGERS = [2 ** 64 - 1, 2 ** 64, -(2 ** 63), -(2 ** 63) - 1, 10 ** 4000, [1, {"n": -10 ** 30}]]


@pytest.mark.parametrize("value", VALUES + BIG_INTEGERS,
                         ids=[type(v).__name__ for v in VALUES + BIG_INTEGERS])
def test_msgpack_round_trips_the_same_types_as_json(value):
    back = loads(serialization.dumps(value, "msgpack"))
    assert back == value
    assert type(back) is type(value)


def test_bytes_are_msgpack_binary_and_the_text_is_base64():
    text = serialization.dumps({"raw": b"\x00\xff" * 600}, "msgpack")
    assert text.isascii()
    assert msgpack.unpackb(base64.b64decode(text)) == {"raw": b"\x00\xff" * 600}
    # JSON spells bytes as base64 inside the text; msgpack stores them once.
    assert len(text) < len(serialization.dumps({"raw": b"\x00\xff" * 600}))


def test_msgpack_refuses_what_json_refuses_with_an_encode_error():
    deep = []
    for _ in range(serialization.MAX_DEPTH + 1):
        deep = [deep]
    cyclic = []
    cyclic.append(cyclic)
    for value, words in ((deep, "nested too deeply or cyclic"),
                         (cyclic, "nested too deeply or cyclic"),
                         (10 ** 5000, "Exceeds the limit"),
                         ({"x": [Opaque()]}, r"value\['x'\]\[0\] of type "
                                             r"tests.test_serialization.Opaque is not msgpack "
                                             "serializable"),
                         ("\ud800", "surrogates not allowed")):
        with pytest.raises(EncodeError, match=words):
            serialization.dumps(value, "msgpack")


@pytest.mark.parametrize("text", [
    "", "not base64!", base64.b64encode(b"\x91").decode(),  # an array missing its item
    base64.b64encode(msgpack.packb([1]) + b"\x01").decode(),  # trailing data
    base64.b64encode(msgpack.packb({1: "not a text key"})).decode(),
    base64.b64encode(msgpack.packb(msgpack.ExtType(5, b"x"))).decode(),
    base64.b64encode(b"\x91" * 5000 + b"\x01").decode(),  # deeper than msgpack's stack
    base64.b64encode(b"\x91" * 500 + b"\x01").decode(),  # deeper than MAX_DEPTH
    base64.b64encode(msgpack.packb({"__type__": "int", "value": "1_000"})).decode(),
    base64.b64encode(msgpack.packb({"__type__": "date", "value": b"2026"})).decode(),
    base64.b64encode(msgpack.packb(b"\xa1\xff")).decode().replace("=", ""),
])
def test_bad_msgpack_content_is_a_decode_error(text):
    with pytest.raises(DecodeError, match="^cannot decode"):
        loads(text)


def test_large_values_are_packed_a_part_at_a_time_and_stopped_at_the_limit():
    value = [{"id": i, "when": datetime.date(2026, 1, 1 + i % 28)} for i in range(5000)]
    tree = serialization._to_json_tree(value, raw_bytes=True)
    whole = msgpack.packb(tree)
    assert _pack(msgpack, tree, limit=10 ** 9) == whole  # the same bytes as one call
    fits = len(base64.b64encode(whole))
    assert len(serialization.dumps(value, "msgpack", limit=fits)) == fits
    with pytest.raises(serialization.TooLarge):
        serialization.dumps(value, "msgpack", limit=fits - 4)


@pytest.mark.django_db(transaction=True)
def test_size_limits_apply_to_msgpack():
    with with_msgpack(MAX_MESSAGE_SIZE=1000):
        with pytest.raises(EncodeError, match="the message is too large"):
            echo.delay(b"x" * 1000)
        assert echo.delay(b"x" * 100)
    assert QueuedMessage.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_unserializable_argument_fails_at_delay_naming_it():
    with with_msgpack(), pytest.raises(EncodeError, match=r"argument 'y' \(args\[1\]\).*"
                                                         "is not msgpack serializable"):
        add.delay(1, Opaque())
    assert not QueuedMessage.objects.exists()


ROUND_TRIP = {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
              "day": datetime.date(2026, 1, 2), "id": uuid.UUID(int=7), "raw": b"\x00\x01",
              "pair": (1, 2), "tags": {"a", "b"}, "big": 2 ** 70, "wait": datetime.timedelta(1)}


@pytest.mark.django_db(transaction=True)
def test_msgpack_tasks_through_a_worker(start_worker):
    start_worker(env={**MSGPACK_WORKER, "TESTS_MAX_RESULT_SIZE": "100000"})
    with with_msgpack():
        result = echo.delay(ROUND_TRIP)
        assert QueuedMessage.objects.get(task_id=result.id).content_type == "msgpack"
        assert result.get(timeout=20) == ROUND_TRIP
        assert type(result.get()["pair"]) is tuple
        row = TaskResult.objects.get(task_id=result.id)
        assert row.content_type == "msgpack"
        # The arguments are kept as JSON: read back with their types.
        assert AsyncResult(result.id).args == [ROUND_TRIP]
        assert add.apply_async((2, 3), serializer="msgpack").get(timeout=20) == 5
        # Packed a part at a time, stopped past MAX_RESULT_SIZE.
        with pytest.raises(EncodeError, match="result too large: over 100000 bytes"):
            echo.delay(list(range(50_000))).get(timeout=20)
    with pytest.raises(TypeError, match="unsupported operand"):
        add.apply_async((1, "a"), serializer="msgpack").get(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_chains_groups_and_retries_with_msgpack(start_worker):
    start_worker(env=MSGPACK_WORKER)
    with with_msgpack():
        workflow = chain(echo.s({"at": datetime.date(2026, 5, 1)}), echo.s())
        assert workflow.delay().get(timeout=20) == {"at": datetime.date(2026, 5, 1)}
        assert chain(add.s(2 ** 64, 1), add.s(-1)).delay().get(timeout=20) == 2 ** 64
        assert group(echo.s((1, b"x")), add.s(1, 2)).delay().get(timeout=20) == [(1, b"x"), 3]
        retried = succeed_on_third_attempt.delay("msgpack-retry", 0)
        assert retried.get(timeout=20) == "done after 2 retries"


@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_msgpack_unless_accepted(start_worker):
    start_worker()  # ACCEPT_CONTENT=['json'] (tests.settings)
    with with_msgpack():
        result = echo.delay(1)
    with pytest.raises(ContentDisallowed, match="'msgpack'.*ACCEPT_CONTENT is \\['json'\\]"):
        result.get(timeout=20)
    assert result.state == states.FAILURE


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_msgpack_arguments_results_and_messages_decoded(start_worker,
                                                                        admin_client):
    with with_msgpack():
        queued = echo.delay(ROUND_TRIP)
        page = admin_client.get(reverse("admin:django_tasks_queuedmessage_change",
                                        args=[QueuedMessage.objects.get().pk])).content.decode()
        assert "datetime.date(2026, 1, 2)" in page
        assert QueuedMessage.objects.get().body not in page
        start_worker(env=MSGPACK_WORKER)
        queued.get(timeout=20)
        plain = echo.delay({"plain": [1, "two"]})
        plain.get(timeout=20)
    page = admin_client.get(reverse("admin:django_tasks_taskresult_change",
                                    args=[queued.id])).content.decode()
    row = TaskResult.objects.get(task_id=queued.id)
    assert row.result not in page  # not the stored base64
    assert page.count("datetime.date(2026, 1, 2)") == 2  # the arguments, and the result
    assert "&#x27;pair&#x27;: (1, 2)" in page and "b&#x27;\\x00\\x01&#x27;" in page
    page = admin_client.get(reverse("admin:django_tasks_taskresult_change",
                                    args=[plain.id])).content.decode()
    assert "&quot;plain&quot;: [\n    1,\n    &quot;two&quot;\n  ]" in page  # indented JSON
    # Search finds a msgpack call by its arguments.
    found = admin_client.get(reverse("admin:django_tasks_taskresult_changelist"),
                             {"q": "plain"}).context["cl"].result_list
    assert [str(r.task_id) for r in found] == [plain.id]


# -- without the msgpack package ---------------------------------------------

@pytest.fixture
def without_msgpack(monkeypatch):
    """This process as one where msgpack is not installed (``import msgpack``
    raises ImportError)."""
    monkeypatch.setitem(sys.modules, "msgpack", None)


def _check_ids(setting):
    with override_settings(DJANGO_TASKS=setting):
        return {error.id: (error.msg, error.hint) for error in check_settings()}


def test_settings_naming_msgpack_pass_the_checks_where_it_is_installed():
    assert _check_ids(MSGPACK) == {}
    assert _check_ids({"ACCEPT_CONTENT": ["application/json", "application/x-msgpack"]}) == {}


def test_settings_naming_msgpack_without_the_package_are_check_errors(without_msgpack):
    errors = _check_ids(MSGPACK)
    assert list(errors) == ["django_tasks.E007"]
    message, hint = errors["django_tasks.E007"]
    assert "'msgpack', but its package is not installed" in message
    assert "pip install 'django-pgtasks[msgpack]'" in hint
    message, hint = _check_ids({"ACCEPT_CONTENT": ["json", "msgpack"]})["django_tasks.E008"]
    assert "lists 'msgpack', but its package is not installed" in message
    assert "pip install" in hint


@pytest.mark.django_db(transaction=True)
def test_sending_msgpack_without_the_package_fails_at_the_call(without_msgpack):
    with with_msgpack(), pytest.raises(EncodeError, match="msgpack package is not installed.*"
                                                         "pip install"):
        echo.delay(1)
    assert not QueuedMessage.objects.exists()
    with pytest.raises(SerializerUnavailable, match="pip install"):
        loads("kQE=")


def test_manage_check_without_msgpack_refuses_settings_that_name_it():
    env = worker_env({"TESTS_WITHOUT_MSGPACK": "1", **MSGPACK_WORKER})
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "django_tasks.E007" in done.stderr and "pip install" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_a_worker_without_msgpack_fails_msgpack_messages_with_the_reason(start_worker):
    # Its checks skipped, as a worker image built without the extra might be run.
    start_worker("--skip-checks", env={"TESTS_WITHOUT_MSGPACK": "1",
                                       "TESTS_ACCEPT_CONTENT": "json,msgpack"})
    with with_msgpack():
        result = echo.delay(1)
    with pytest.raises(SerializerUnavailable, match="msgpack package is not installed in this "
                                                    "process.*pip install"):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    assert add.delay(1, 2).get(timeout=20) == 3  # the worker carries on


@pytest.mark.django_db(transaction=True)
def test_eager_msgpack_goes_through_the_serializer():
    with with_msgpack(EAGER=True):
        assert echo.delay(ROUND_TRIP).get() == ROUND_TRIP
        with pytest.raises(EncodeError, match="not msgpack serializable"):
            echo.delay(Opaque())
