"""Rows no producer of ours writes (by hand, by a bug, by another version):
each one that cannot be read or run ends FAILURE with the reason and leaves
the queue; the rows behind it run, and the worker stays up."""

import json
import uuid

import pytest

from django_tasks import states
from django_tasks.exceptions import DecodeError
from django_tasks.models import QueuedMessage, TaskResult
from tests.forged import insert_queue_row
from tests.forged import sql_literal as _literal
from tests.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)

ADD_BODY = """'{"args": [1, 2], "kwargs": {}}'"""


def _insert(body=ADD_BODY, **columns):
    return insert_queue_row(body=body, **columns)


def _run_with_ordinary_tasks(start_worker, corrupt, pool):
    ordinary = [add.delay(i, i) for i in range(3)]
    worker = start_worker("-P", pool, "-c", "2")
    assert [r.get(timeout=30) for r in ordinary] == [0, 2, 4]
    for result, reason in corrupt:
        with pytest.raises(DecodeError, match=reason):
            result.get(timeout=30)
        row = TaskResult.objects.get(task_id=result.id)
        assert row.state == states.FAILURE and row.deliveries == 1
    assert not QueuedMessage.objects.exists()
    assert add.delay(20, 22).get(timeout=30) == 42
    assert worker.proc.poll() is None


def _headers(value):
    return _literal(json.dumps(value))


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_rows_whose_values_cannot_be_run(start_worker, pool):
    corrupt = [
        (_insert(headers=_headers({"time_limit": 1e300})), "header 'time_limit'"),
        (_insert(headers=_headers({"soft_time_limit": -5})), "header 'soft_time_limit'"),
        (_insert(headers=_headers({"retries": "many"})), "header 'retries'"),
        (_insert(headers=_headers({"link": "not a list"})), "header 'link'"),
        (_insert(headers=_headers({"rate_limit": "fast"})), "header 'rate_limit'"),
        (_insert(headers=_headers({"rate_limit": 1e300})), "header 'rate_limit'"),
        (_insert(headers=_headers([1, 2])), "headers are not a JSON object"),
        (_insert(body=_literal("{" * 5 + "nope")), "corrupt message"),
        (_insert(body=_literal('{"args": [{"__type__": "decimal", "value": "x"}]}')),
         "corrupt message"),
        (_insert(body=_literal('{"args": [{"__type__": "uuid", "value": 7}]}')),
         "corrupt message"),
        (_insert(body=_literal('{"args": [{"__type__": "timedelta", "value": [1e300, 0, 0]}]}')),
         "corrupt message"),
        (_insert(body=_literal('{"args": [' + "[" * 100_000 + "]" * 100_000 + "]}")),
         "corrupt message"),
    ]
    _run_with_ordinary_tasks(start_worker, corrupt, pool)


def test_a_retries_header_past_the_results_column_is_corrupt(start_worker):
    """Refused before the task runs: its outcome could not be stored, and a
    failure of its own would be lost for a storing error."""
    corrupt = [
        (_insert(headers=_headers({"retries": 2 ** 31})), "header 'retries' is 2147483648"),
        (_insert(headers=_headers({"time_limit": 1e300, "retries": 10 ** 20})),
         "header '(time_limit|retries)'"),
    ]
    _run_with_ordinary_tasks(start_worker, corrupt, "prefork")


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_rows_postgresql_holds_and_python_cannot_read(start_worker, postgres_only, pool):
    deep = "[" * 5000 + "]" * 5000
    corrupt = [
        # Always due, first in line: must not block the rows behind it.
        (_insert(available_at="'-infinity'"), "available_at cannot be read"),
        (_insert(expires="'infinity'"), "expires cannot be read"),
        (_insert(created_at="'10000-01-01'"), "created_at cannot be read"),
        (_insert(available_at="'0001-01-01 BC'"), "available_at cannot be read"),
        (_insert(headers=_literal('{"retries": ' + "9" * 5000 + "}") + "::jsonb"),
         "headers cannot be read"),
        (_insert(headers=_literal('{"link": ' + deep + "}") + "::jsonb"),
         "headers cannot be read"),
    ]
    _run_with_ordinary_tasks(start_worker, corrupt, pool)


def test_rows_of_text_that_is_not_utf8(start_worker, vendor):
    if vendor == "postgresql":  # refused on the way in: no worker can meet one
        from django.db import DataError

        with pytest.raises(DataError, match="UTF8"):
            _insert(body="convert_from('\\x7b80ff7d'::bytea, 'UTF8')")
        return
    corrupt = [
        (_insert(body="CAST(X'7b2261726773223a205b80ff5d7d' AS TEXT)"), "body cannot be read"),
        (_insert(task_name="CAST(X'74657374c3' AS TEXT)"), "task_name cannot be read"),
    ]
    _run_with_ordinary_tasks(start_worker, corrupt, "prefork")


def test_expired_and_orphaned_rows_python_cannot_read_are_ended(start_worker, postgres_only):
    """Housekeeping reads whole rows too (expiry sweep, lost workers)."""
    expired = _insert(expires="'-infinity'", available_at="now() + interval '1 hour'")
    lost_worker = uuid.uuid4()
    orphan = _insert(available_at="'-infinity'")
    QueuedMessage.objects.filter(task_id=orphan.id).update(claimed_by=lost_worker, deliveries=1)
    start_worker("-P", "prefork", "-c", "1")
    for result in (expired, orphan):
        result.get(timeout=30, propagate=False)
    assert expired.state in (states.REVOKED, states.FAILURE)
    assert orphan.state == states.FAILURE
    assert not QueuedMessage.objects.exists()
    assert add.delay(1, 1).get(timeout=30) == 2
