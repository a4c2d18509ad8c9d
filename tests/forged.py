"""Forged and corrupt stored data, and a check that reading it imports nothing."""

import os
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from tests.run_id import run_id

#: What tests.never_imported leaves when it is imported.
NEVER_IMPORTED = "tests.never_imported"
MARK = "DJANGO_TASKS_NEVER_IMPORTED"
# The test run's own (its workers inherit TESTS_RUN_ID: tests/run_id.py).
MARK_FILE = Path(tempfile.gettempdir()) / f"django_tasks_never_imported_{run_id()}.mark"


@contextmanager
def never_imported_guard():
    """Fails if the block (or a worker meanwhile) imports tests.never_imported."""
    assert NEVER_IMPORTED not in sys.modules, "imported before the test"
    os.environ.pop(MARK, None)
    MARK_FILE.unlink(missing_ok=True)
    yield
    assert NEVER_IMPORTED not in sys.modules, "imported by this process"
    assert MARK not in os.environ, "imported by this process"
    assert not MARK_FILE.exists(), MARK_FILE.read_text()


def insert_queue_row(body, headers="'{}'", available_at=None, expires=None, created_at=None,
                     task_name="'tests.tasks.add'", queue="'default'", priority="0"):
    """A queue row written with SQL, as no producer of ours writes one: each
    value is an SQL expression. Its AsyncResult."""
    from django.db import connection

    from django_tasks import AsyncResult
    from django_tasks.models import QueuedMessage

    task_id = uuid.uuid4()
    now = "CURRENT_TIMESTAMP"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {QueuedMessage._meta.db_table} (task_id, task_name, queue, priority,"
            f" available_at, expires, content_type, body, headers, deliveries, created_at)"
            f" VALUES (%s, {task_name}, {queue}, {priority}, {available_at or now},"
            f" {expires or 'NULL'}, 'json', {body}, {headers}, 0, {created_at or now})",
            [str(task_id)])
    return AsyncResult(str(task_id))


def sql_literal(text):
    """``text`` as an SQL string literal for insert_queue_row (whose SQL is
    formatted with parameters: ``%`` is doubled)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"
