"""Where the direct libpq path (queue/libpq.py) steps aside for psycopg's
cursor: while Django's ``execute_wrapper()`` functions are installed (APM
and tracing see every statement), and on a libpq without pipeline mode
(older than 14); and its errors carry the server's diagnostics as psycopg's
cursors' do."""

import uuid

import psycopg
import pytest
from django.db import IntegrityError, connection, connections
from django.test.utils import override_settings

from django_tasks.models import QueuedMessage
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import listening, live_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

DIRECT_NAMES = ("django_tasks_insert_one", "django_tasks_wake", "django_tasks_enqueue_one_relaxed")


def direct_statements_prepared():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)",
                       [list(DIRECT_NAMES)])
        return sorted(row[0] for row in cursor.fetchall())


class Recorder:
    """An ``execute_wrapper()`` that records what passes through it, as an
    APM agent would."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, context["connection"]))
        return execute(sql, params, many, context)

    def saw(self, text):
        return [sql for sql, _ in self.statements if text in sql]


@pytest.mark.parametrize("synchronous", [True, False], ids=["synchronous", "relaxed"])
def test_an_execute_wrapper_sees_the_insert_of_a_delay(synchronous):
    connection.close()  # a new session: nothing prepared yet
    recorder = Recorder()
    with override_settings(DJANGO_TASKS={"SYNCHRONOUS_ENQUEUE": synchronous}), \
            connection.execute_wrapper(recorder):
        result = add.delay(1, 2)
    assert recorder.saw("INSERT INTO django_tasks_queuedmessage")
    assert all(conn is connections["default"] for _, conn in recorder.statements)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert direct_statements_prepared() == []


def test_an_execute_wrapper_sees_a_claim_and_the_wrapper_is_gone_after():
    sent = add.delay(1, 2)
    recorder = Recorder()
    with connection.execute_wrapper(recorder):
        claimed = get_backend().claim(live_worker(), ["default"], 1)
    assert [m.task_id for m in claimed] == [sent.id]
    assert recorder.saw("FOR UPDATE SKIP LOCKED")
    # Uninstalled: the next .delay() takes the direct path again.
    connection.close()
    add.delay(3, 4)
    assert direct_statements_prepared() == ["django_tasks_insert_one", "django_tasks_wake"]


def test_a_wrapper_that_refuses_a_statement_stops_the_delay():
    def refuse(execute, sql, params, many, context):
        raise PermissionError("blocked by policy")

    with connection.execute_wrapper(refuse), pytest.raises(PermissionError):
        add.delay(1, 2)
    assert not QueuedMessage.objects.exists()


def test_without_pipeline_mode_a_delay_takes_the_cursor_path_and_still_wakes(monkeypatch):
    # As psycopg answers over a libpq older than 14: run_then's pipeline
    # (enter_pipeline_mode) would raise NotSupportedError on every .delay().
    monkeypatch.setattr(psycopg.capabilities, "has_pipeline", lambda check=False: False)
    connection.close()
    with listening() as listener:
        result = add.delay(1, 2)
        notices = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.payload for n in notices] == ["default"]
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert direct_statements_prepared() == []


def test_without_pipeline_mode_a_relaxed_delay_still_goes_direct(monkeypatch):
    # A single statement needs no pipeline.
    monkeypatch.setattr(psycopg.capabilities, "has_pipeline", lambda check=False: False)
    connection.close()
    with override_settings(DJANGO_TASKS={"SYNCHRONOUS_ENQUEUE": False}):
        result = add.delay(1, 2)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()
    assert direct_statements_prepared() == ["django_tasks_enqueue_one_relaxed"]


@pytest.mark.parametrize("synchronous", [True, False], ids=["pipeline", "single statement"])
def test_an_error_from_the_direct_path_keeps_the_servers_diagnostics(synchronous):
    task_id = str(uuid.uuid4())
    with override_settings(DJANGO_TASKS={"SYNCHRONOUS_ENQUEUE": synchronous}):
        add.apply_async((1, 2), task_id=task_id)
        connection.close()
        with pytest.raises(IntegrityError) as raised:
            add.apply_async((3, 4), task_id=task_id)
    assert direct_statements_prepared()  # it did come through libpq
    cause = raised.value.__cause__
    assert isinstance(cause, psycopg.errors.UniqueViolation)
    assert cause.sqlstate == cause.diag.sqlstate == "23505"
    assert cause.diag.table_name == "django_tasks_queuedmessage"
    assert cause.diag.constraint_name and task_id in cause.diag.message_detail
    assert "duplicate key" in str(raised.value)
