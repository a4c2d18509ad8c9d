"""What users see when a task fails, or a message cannot be run."""

import re
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from django_tasks import AsyncResult, chain, chord, states
from django_tasks.exceptions import ChordError, DecodeError, EncodeError, NotRegistered
from django_tasks.models import QueuedMessage, TaskResult
from testproject.tasks import xsum
from tests.tasks import add, fail_with_type_error, raise_message, return_unserializable

pytestmark = pytest.mark.django_db(transaction=True)


def test_task_raising_type_error(start_worker):
    worker = start_worker()
    result = fail_with_type_error.delay("x")
    with pytest.raises(TypeError, match="bad value: 'x'"):
        result.get(timeout=10)
    error = result.get(propagate=False)
    assert isinstance(error, TypeError) and str(error) == "bad value: 'x'"
    assert result.failed() and not result.successful() and result.ready()
    assert result.state == states.FAILURE
    assert "Traceback (most recent call last)" in result.traceback
    assert 'raise TypeError(f"bad value: {value!r}")' in result.traceback
    assert isinstance(result.result, TypeError)
    worker.wait_for(f"Task tests.tasks.fail_with_type_error[{result.id}] raised unexpected: "
                    "TypeError(\"bad value: 'x'\")")


def _raw_message(task_name, body, content_type="json", headers=None):
    task_id = uuid.uuid4()
    QueuedMessage.objects.create(task_id=task_id, task_name=task_name, queue="default",
                                 body=body, content_type=content_type, headers=headers or {},
                                 available_at=timezone.now())
    return AsyncResult(task_id)


def test_unknown_task_name_fails_and_worker_carries_on(start_worker):
    start_worker()
    unknown = _raw_message("no.such.task", '{"args": [], "kwargs": {}}')
    with pytest.raises(NotRegistered, match="no.such.task"):
        unknown.get(timeout=10)
    assert unknown.state == states.FAILURE
    assert add.delay(1, 2).get(timeout=10) == 3


def test_corrupt_message_fails_and_worker_carries_on(start_worker):
    start_worker()
    corrupt = _raw_message("tests.tasks.add", "{this is not json")
    with pytest.raises(DecodeError, match="corrupt message"):
        corrupt.get(timeout=10)
    wrong_shape = _raw_message("tests.tasks.add", "[1, 2]")
    with pytest.raises(DecodeError, match="corrupt message"):
        wrong_shape.get(timeout=10)
    assert add.delay(2, 2).get(timeout=10) == 4


def test_pickle_message_refused_unless_accepted(start_worker):
    start_worker()
    pickled = _raw_message("tests.tasks.add", "gASVAAAAAAAAAAA=", content_type="pickle")
    with pytest.raises(DecodeError, match="ACCEPT_CONTENT"):
        pickled.get(timeout=10)


def test_result_that_cannot_be_stored_fails_the_task(start_worker):
    start_worker()
    result = return_unserializable.delay()
    with pytest.raises(EncodeError, match="cannot be stored"):
        result.get(timeout=10)
    assert TaskResult.objects.get(task_id=result.id).state == states.FAILURE


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_an_exception_message_with_a_nul_character_is_stored(start_worker, pool):
    worker = start_worker("-P", pool, "-c", "1")
    result = raise_message.delay("before\0after")
    with pytest.raises(ValueError) as raised:
        result.get(timeout=30)
    assert str(raised.value) == "before\0after"  # the message itself round-trips
    assert "ValueError: before\\x00after" in result.traceback  # spelled as repr() does
    assert add.delay(1, 2).get(timeout=30) == 3
    assert "storing results died" not in worker.output


REFUSED_RETRIES = 7


@pytest.fixture
def refusing_database(postgres_only):
    """A result table that refuses the success of a message with retries 7,
    as a constraint or trigger of the user's own might: no header check
    could have seen it coming. The failure stored instead is accepted."""
    table = TaskResult._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE FUNCTION refuse_seven() RETURNS trigger AS $$ BEGIN
                IF NEW.retries = {REFUSED_RETRIES} AND NEW.state = 'SUCCESS' THEN
                    RAISE EXCEPTION 'refused by a trigger of the test';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_seven BEFORE INSERT OR UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION refuse_seven();""")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER refuse_seven ON {table}; DROP FUNCTION refuse_seven();")


def test_an_outcome_the_database_refuses_is_stored_as_a_failure(start_worker, refusing_database):
    # Its outcome cannot be stored as it is; the others' must be all the same.
    bad = _raw_message("tests.tasks.add", '{"args": [1, 1], "kwargs": {}}',
                       headers={"retries": REFUSED_RETRIES})
    good = [add.delay(i, i) for i in range(20)]
    worker = start_worker("-P", "solo", "--prefetch-multiplier", "8")
    assert [r.get(timeout=30) for r in good] == [2 * i for i in range(20)]
    with pytest.raises(EncodeError, match="could not store the outcome.*refused by a trigger"):
        bad.get(timeout=30)
    assert TaskResult.objects.get(task_id=bad.id).state == states.FAILURE
    assert not QueuedMessage.objects.exists()
    worker.wait_for(f"Could not store the outcome of tests.tasks.add[{bad.id}]")
    assert add.delay(2, 3).get(timeout=30) == 5


def test_a_workflow_member_whose_outcome_cannot_be_stored_still_moves_its_workflow(
        start_worker, refusing_database):
    # Refused as above, a chord member and a chain's first step: the failure
    # stored in their place keeps their place in the workflow.
    unstorable = {"headers": {"retries": REFUSED_RETRIES}}
    start_worker("-P", "solo")
    in_chord = add.s(2, 2).set(**unstorable)
    result = chord([add.s(1, 1), in_chord], xsum.s())()
    with pytest.raises(ChordError, match="could not store the outcome.*refused by a trigger"):
        result.get(timeout=30)
    in_chain = chain(add.s(3, 3).set(**unstorable), add.s(4))()
    with pytest.raises(EncodeError, match="could not store the outcome.*refused by a trigger"):
        in_chain.get(timeout=30)  # the step after it: failed, never run
    assert in_chain.parent.state == states.FAILURE
    assert not QueuedMessage.objects.exists()


@pytest.mark.parametrize("headers, problem", [
    ("not an object", "headers are not a JSON object"),
    ([1, 2], "headers are not a JSON object"),
    ({"retries": "x"}, "header 'retries' is 'x'"),
    ({"time_limit": "abc"}, "header 'time_limit' is 'abc'"),
    ({"ignore_result": [1]}, "header 'ignore_result' is [1]"),
    ({"link": "zzz"}, "header 'link' is 'zzz'"),
    ({"chain": [5]}, "header 'chain' is [5]"),
])
def test_a_message_with_corrupt_headers_fails_and_the_worker_carries_on(
        start_worker, headers, problem):
    corrupt = _raw_message("tests.tasks.add", '{"args": [1, 1], "kwargs": {}}', headers=headers)
    worker = start_worker("-P", "prefork", "-c", "1")
    with pytest.raises(DecodeError, match=f"corrupt message: {re.escape(problem)}"):
        corrupt.get(timeout=30)
    assert add.delay(1, 2).get(timeout=30) == 3
    assert "prefork child" not in worker.output  # no child failed on the way


@pytest.mark.parametrize("task_name, args, header", [
    ("tests.tasks.add", [1, 1], "link"),  # the callback of a success
    ("tests.tasks.fail_with_type_error", [1], "link_error"),  # the errback of a failure
])
def test_a_workflow_header_no_hook_can_follow_fails_the_task_alone(
        start_worker, task_name, args, header):
    # The right shape, nonsense inside: what trips is the hook that starts
    # the callback, after the task ran; the failure stored instead drops it.
    corrupt = _raw_message(task_name, f'{{"args": {args}, "kwargs": {{}}}}',
                           headers={header: [{"no": "task"}]})
    worker = start_worker("-P", "solo")
    with pytest.raises(EncodeError, match="could not store the outcome.*KeyError"):
        corrupt.get(timeout=30)
    assert add.delay(1, 2).get(timeout=30) == 3
    worker.wait_for(f"Could not store the outcome of {task_name}[{corrupt.id}]")
    assert "refused the failure" not in worker.output
