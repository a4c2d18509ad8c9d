"""Too large a message is refused at call time; too large a result fails its
task, and the worker carries on; a huge error text is cut, not refused."""

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_tasks import chain, group, limits, states
from django_tasks.exceptions import EncodeError
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.outcomes import Outcome
from django_tasks.worker.flusher import Flusher
from tests.tasks import add, echo, make_text, raise_long

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = {"POLL_INTERVAL": 0.2, "HEARTBEAT_INTERVAL": 0.5, "WORKER_LOST_TIMEOUT": 3.0,
         "MAX_MESSAGE_SIZE": 1000}


def test_a_message_over_the_limit_is_refused_at_call_time_and_nothing_is_written():
    with override_settings(DJANGO_TASKS=SMALL):
        with pytest.raises(EncodeError) as refused:
            echo.delay("x" * 1000)
        text = str(refused.value)
        assert "cannot call tests.tasks.echo: the message is too large" in text
        assert "> 1000" in text and "DJANGO_TASKS['MAX_MESSAGE_SIZE']" in text
        with pytest.raises(EncodeError, match="too large"):
            echo.apply_async(("small",), headers={"big": "x" * 1000})
        with pytest.raises(EncodeError, match="too large"):
            group(echo.s(1), echo.s("x" * 1000)).apply_async()
        with pytest.raises(EncodeError, match="too large"):
            chain(echo.s(1), echo.si("x" * 1000)).apply_async()
        assert not QueuedMessage.objects.exists()
        # Under the limit it is sent.
        echo.delay("x" * 500)
        assert QueuedMessage.objects.count() == 1


def test_the_message_size_counts_utf8_bytes():
    with override_settings(DJANGO_TASKS=SMALL):
        echo.delay("é" * 450)  # 900 bytes of argument: under 1000
        with pytest.raises(EncodeError, match=r"too large: 12\d\d bytes > 1000"):
            echo.delay("é" * 600)  # 600 characters, 1200 bytes
        # Arguments and options together: 822 bytes of body (222 characters)
        # and 200 of headers.
        with pytest.raises(EncodeError, match=r"too large: 10\d\d bytes > 1000"):
            echo.apply_async(("😀" * 200,), headers={"note": "x" * 180})
    assert QueuedMessage.objects.count() == 1


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_result_over_the_limit_fails_the_task_and_the_worker_carries_on(start_worker, pool):
    worker = start_worker("-P", pool, "-c", "2", env={"TESTS_MAX_RESULT_SIZE": "1000"})
    large = make_text.delay(2000)
    with pytest.raises(EncodeError) as raised:
        large.get(timeout=30)
    assert str(raised.value) == (
        "tests.tasks.make_text returned a value that cannot be stored: result too large: "
        "2002 bytes > 1000 (setting DJANGO_TASKS['MAX_RESULT_SIZE'])")
    assert large.state == states.FAILURE
    assert "x" * 100 not in TaskResult.objects.get(task_id=large.id).result
    # Bytes, not characters: 400 "é" are 802 bytes as JSON, 600 are 1202.
    assert make_text.delay(400, "é").get(timeout=30) == "é" * 400
    with pytest.raises(EncodeError, match="1202 bytes > 1000"):
        make_text.delay(600, "é").get(timeout=30)
    assert add.delay(1, 2).get(timeout=30) == 3
    assert worker.proc.poll() is None


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_huge_exception_is_stored_cut(start_worker, pool):
    worker = start_worker("-P", pool, "-c", "1")
    result = raise_long.delay(3 * limits.TRACEBACK_CHARS)
    with pytest.raises(ValueError) as raised:
        result.get(timeout=60)
    message = str(raised.value)
    assert "characters cut" in message
    assert message.startswith("yyy") and message.endswith("yyy")
    assert len(message) < limits.EXCEPTION_CHARS
    stored = TaskResult.objects.get(task_id=result.id)
    assert stored.state == states.FAILURE
    assert len(stored.result) <= 2 * limits.EXCEPTION_CHARS
    assert "characters cut" in stored.traceback
    assert len(stored.traceback) < limits.TRACEBACK_CHARS + 200
    # The head (the outermost call) and the tail (the error) are kept.
    assert stored.traceback.startswith("Traceback (most recent call last)")
    assert stored.traceback.rstrip().endswith("yyy")
    assert add.delay(2, 2).get(timeout=30) == 4
    assert worker.proc.poll() is None


def test_a_flush_of_large_results_is_split_under_the_statement_budget():
    flusher = Flusher(backend=None, worker_id=None)
    half = "x" * (limits.FLUSH_CHARS // 2 + 1)  # one text, shared by the outcomes
    for text in (half, half, half, "small"):
        flusher.store([Outcome(message=None, state=states.SUCCESS, result_text=text)])
    first = flusher._gather(flusher._inbox.get())
    assert [o.result_text for o in first] == [half, half]
    second = flusher._gather(flusher._inbox.get())
    assert [o.result_text for o in second] == [half, "small"]


def test_a_few_large_messages_are_enqueued_row_by_row(postgres_only, monkeypatch):
    # Bound as one array, their bodies would be one value: PostgreSQL refuses
    # one over 1 GB (the threshold is lowered here, not the sizes raised).
    from django_tasks.queue import postgresql

    monkeypatch.setattr(postgresql, "COPY_FROM_CHARS", 1000)
    with CaptureQueriesContext(connection) as small:
        group(echo.s(i) for i in range(3)).apply_async()
    with CaptureQueriesContext(connection) as large:
        sent = group(echo.s("x" * 400) for _ in range(3)).apply_async()
    assert not any(q["sql"] == postgresql.ENQUEUE_COPY_SQL for q in small.captured_queries)
    assert any(q["sql"] == postgresql.ENQUEUE_COPY_SQL for q in large.captured_queries)
    assert sorted(QueuedMessage.objects.filter(task_id__in=[r.id for r in sent])
                  .values_list("body", flat=True)) == ['{"args":["' + "x" * 400
                                                       + '"],"kwargs":{}}'] * 3


def test_a_large_result_is_encoded_a_part_at_a_time_and_stopped_at_the_limit():
    from django_tasks import serialization
    from tests.poison_tasks import make_rows

    value = make_rows(5000) | {"more": [[i, str(i)] for i in range(3000)], "x": 1.5}
    tree = serialization._to_json_tree(value)
    whole = serialization.compact_json(tree)
    assert serialization.dumps(value, limit=len(whole)) == whole
    with pytest.raises(serialization.TooLarge):
        serialization.dumps(value, limit=len(whole) - 1)
    # A large list is stopped once past the limit, not encoded whole first.
    chunks = []
    original = serialization.compact_json
    try:
        serialization.compact_json = lambda node: chunks.append(node) or original(node)
        with pytest.raises(serialization.TooLarge):
            serialization.dumps(value, limit=1000)
    finally:
        serialization.compact_json = original
    assert len(chunks) < 100


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_result_of_many_parts_over_the_limit_fails_without_being_encoded_whole(
        start_worker, pool):
    from tests.poison_tasks import make_rows

    worker = start_worker("-P", pool, "-c", "1", env={"TESTS_MAX_RESULT_SIZE": "100000"})
    large = make_rows.delay(200_000)  # about 6 MB as JSON
    with pytest.raises(EncodeError, match=r"result too large: over 100000 bytes"):
        large.get(timeout=60)
    assert make_rows.delay(10).get(timeout=30) == make_rows(10)
    assert worker.proc.poll() is None
