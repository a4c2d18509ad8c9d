"""JSON round-trips the types DESIGN.md lists; bad arguments fail at .delay()."""

import datetime
import decimal
import uuid

import pytest
from django.test import override_settings

from django_tasks import serialization
from django_tasks.exceptions import ContentDisallowed, EncodeError
from django_tasks.models import QueuedMessage
from tests.tasks import add, echo

VALUES = [
    datetime.datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=datetime.UTC),
    datetime.datetime(2026, 1, 1, 12, 0),
    datetime.date(2026, 2, 28),
    datetime.time(23, 59, 58, 1),
    datetime.timedelta(days=-1, seconds=5, microseconds=7),
    decimal.Decimal("3.14159265358979323846"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    b"\x00\xffbytes",
    (1, (2, 3), [4, (5,)]),
    {1, 2, 3},
    frozenset({"a"}),
    {"nested": {"t": (1, 2), "s": {"x"}}, "list": [datetime.date(2020, 1, 1)]},
    {1: "int key", (1, 2): "tuple key"},
    {"__type__": "not a tag", "value": 1},
    None, True, 1.5, "text ünicode", [],
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ for v in VALUES])
def test_json_round_trips_the_same_type(value):
    text = serialization.dumps(value)
    back = serialization.loads(text, "json", ["json"])
    assert back == value
    assert type(back) is type(value)


def test_pickle_round_trips_when_accepted():
    value = {"a": (1, 2), "b": {3}}
    text = serialization.dumps(value, "pickle")
    assert serialization.loads(text, "pickle", ["json", "pickle"]) == value
    with pytest.raises(ContentDisallowed, match="ACCEPT_CONTENT"):
        serialization.loads(text, "pickle", ["json"])


class Opaque:
    pass


@pytest.mark.django_db(transaction=True)
def test_unserializable_argument_fails_at_delay_naming_it():
    with pytest.raises(EncodeError) as info:
        add.delay(1, Opaque())
    message = str(info.value)
    assert "argument 'y' (args[1])" in message
    assert "tests.test_serialization.Opaque" in message
    assert "tests.tasks.add" in message
    with pytest.raises(EncodeError, match=r"argument 'value' \(kwargs\['value'\]\).*Opaque"):
        echo.delay(value={"deep": [Opaque()]})
    assert not QueuedMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_round_trip_through_a_worker(start_worker):
    start_worker()
    value = {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
             "amount": decimal.Decimal("1.10"), "id": uuid.uuid4(), "raw": b"\x01",
             "pair": (1, 2), "tags": {"a", "b"}, "wait": datetime.timedelta(minutes=5)}
    assert echo.delay(value).get(timeout=10) == value


@pytest.mark.django_db(transaction=True)
def test_pickle_serializer_when_listed(start_worker):
    settings = {"SERIALIZER": "pickle", "ACCEPT_CONTENT": ["json", "pickle"]}
    with override_settings(DJANGO_TASKS=settings):
        result = echo.delay(Opaque.__name__)
        message = QueuedMessage.objects.get(task_id=result.id)
        assert message.content_type == "pickle"
    # The worker runs with ACCEPT_CONTENT=['json'] (tests.settings): refused.
    start_worker()
    with pytest.raises(ContentDisallowed):
        result.get(timeout=10)
