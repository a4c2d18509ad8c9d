"""Forged and corrupt rows in the results table: read as data, never as code.

A stored exception names its class by module and name. Reading it (in the
caller, or in a worker counting a chord down) imports nothing, builds only
``Exception`` subclasses, and a row that cannot be read raises DecodeError.
"""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_tasks import AsyncResult, GroupResult, chord, states
from django_tasks.exceptions import ChordError, DecodeError
from django_tasks.models import QueuedMessage, TaskGroup, TaskResult
from testproject.tasks import xsum
from tests.forged import never_imported_guard
from tests.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


def forged(state, result, **fields):
    task_id = uuid.uuid4()
    TaskResult.objects.create(task_id=task_id, task_name="tests.tasks.add", state=state,
                              result=result, **fields)
    return AsyncResult(task_id)


def stored_exception(exc_type, exc_module, args, message):
    return json.dumps({"exc_type": exc_type, "exc_module": exc_module,
                       "exc_message": message, "exc_args": args})


IMPORTING = stored_exception("ImportedError", "tests.never_imported", ["payload"], "payload")


def test_reading_a_result_naming_a_module_not_imported_does_not_import_it():
    with never_imported_guard():
        result = forged(states.FAILURE, IMPORTING)
        error = result.result
        assert type(error).__name__ == "ImportedError" and str(error) == "payload"
        assert type(error).__module__ == "tests.never_imported"
        with pytest.raises(Exception, match="payload") as info:
            result.get(timeout=10)
        assert type(info.value).__name__ == "ImportedError"


def test_a_forged_system_exit_is_raised_as_an_ordinary_exception():
    result = forged(states.FAILURE, stored_exception("SystemExit", "builtins", [3], "3"))
    caught = None
    try:
        result.get(timeout=10)
    except Exception as exc:  # a real SystemExit would pass by and end the process
        caught = exc
    assert type(caught).__name__ == "SystemExit" and not isinstance(caught, SystemExit)
    assert str(caught) == "3"
    assert not isinstance(result.get(propagate=False), SystemExit)


def test_a_known_exception_is_still_rebuilt_with_its_type():
    result = forged(states.FAILURE, stored_exception("KeyError", "builtins", ["k"], "'k'"))
    with pytest.raises(KeyError) as info:
        result.get(timeout=10)
    assert info.value.args == ("k",)


def tag(name, value):
    return json.dumps({"__type__": name, "value": value})


MALFORMED = {
    "decimal not a number": (states.SUCCESS, tag("decimal", "x")),
    "uuid holding a number": (states.SUCCESS, tag("uuid", 12345)),
    "timedelta too big": (states.SUCCESS, tag("timedelta", [10 ** 10, 0, 0])),
    "100,000 deep": (states.SUCCESS, "[" * 100_000 + "]" * 100_000),
    "integer of 5,000 digits": (states.SUCCESS, "9" * 5000),
    "not JSON": (states.SUCCESS, "{not json"),
    "exception not a dict": (states.FAILURE, "[1, 2]"),
    "exception type not text": (states.FAILURE, json.dumps({"exc_type": 1})),
    "exception args 500 deep": (states.FAILURE, '{"exc_type": "KeyError", "exc_args":'
                                + "[" * 500 + "]" * 500 + "}"),
    "exception args with a bad tag": (states.FAILURE, json.dumps(
        {"exc_type": "KeyError", "exc_args": [{"__type__": "decimal", "value": "x"}]})),
    "exception 100,000 deep": (states.REVOKED, '{"exc_args":' + "[" * 100_000 + "]" * 100_000
                               + "}"),
}


@pytest.mark.parametrize("state, text", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_result_that_cannot_be_decoded_is_a_decode_error(state, text):
    result = forged(state, text)
    with pytest.raises(DecodeError, match="cannot decode"):
        result.result  # noqa: B018
    for propagate in (True, False):
        with pytest.raises(DecodeError, match="cannot decode"):
            result.get(timeout=10, propagate=propagate)


def test_arguments_that_cannot_be_decoded_are_a_decode_error():
    result = forged(states.SUCCESS, "1", args=tag("uuid", 1), kwargs="[" * 100_000)
    with pytest.raises(DecodeError, match="cannot decode a 'uuid' tagged value"):
        result.args  # noqa: B018
    with pytest.raises(DecodeError, match="nested too deeply"):
        result.kwargs  # noqa: B018
    assert result.get(timeout=10) == 1


FORGED_MEMBERS = {
    "naming a module not imported": (states.FAILURE, IMPORTING, "ImportedError('payload')"),
    "holding a bad decimal": (states.SUCCESS, tag("decimal", "x"),
                              "DecodeError(\"cannot decode a 'decimal' tagged value"),
    "not an exception": (states.FAILURE, "[1]", "DecodeError('cannot decode a stored exception"),
}


@pytest.mark.parametrize("state, text, reason", FORGED_MEMBERS.values(),
                         ids=FORGED_MEMBERS.keys())
def test_a_chord_counting_down_a_forged_member_fails_its_body_and_the_worker_carries_on(
        start_worker, state, text, reason):
    with never_imported_guard():
        result = chord([add.s(1, 1), add.s(2, 2)], xsum.s())()
        first, second = result.parent.results
        # The second member waits until the first one's result is forged.
        later = timezone.now() + timedelta(days=1)
        QueuedMessage.objects.filter(task_id=second.id).update(available_at=later)
        worker = start_worker()
        assert first.get(timeout=20) == 2
        TaskResult.objects.filter(task_id=first.id).update(state=state, result=text)
        QueuedMessage.objects.filter(task_id=second.id).update(available_at=timezone.now())
        with pytest.raises(ChordError) as info:
            result.get(timeout=30)
        assert str(info.value).startswith(f"Dependency {first.id} raised {reason}")
        assert second.get(timeout=10) == 4
        assert add.delay(3, 4).get(timeout=20) == 7
        assert worker.proc.poll() is None


@pytest.mark.parametrize("members", [[{"x": 1}], 5, [3], [{"group_id": "g", "results": 7}],
                                     json.loads("[" + '{"group_id": "g", "results": [' * 150
                                                + "]}" * 150 + "]")],
                         ids=["dict without group_id", "not a list", "a number",
                              "results not a list", "150 groups deep"])
def test_a_saved_group_of_another_shape_is_a_decode_error(members):
    group_id = uuid.uuid4()
    TaskGroup.objects.create(group_id=group_id, results=members)
    with pytest.raises(DecodeError, match="cannot decode a saved group"):
        GroupResult.restore(group_id)
