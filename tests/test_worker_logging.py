"""The worker's logging keeps the project's LOGGING: a failure reaches the
project's own handlers with its exception in exc_info (what an error
tracker hooked to logging reads), and task loggers carry the task's id and
name."""

import logging

import pytest

from django_tasks import get_task_logger, signals
from django_tasks.log import TASK_LOGGER
from django_tasks.worker import logs
from tests.delivery_tasks import log_something
from tests.log_records import read
from tests.tasks import fail_with_type_error
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _records(path, **fields):
    return [r for r in read(path) if all(r.get(k) == v for k, v in fields.items())]


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_a_failure_reaches_the_projects_handler_with_its_exception(start_worker, pool,
                                                                   tmp_path):
    path = tmp_path / "records.jsonl"
    worker = start_worker("-P", pool, "-c", "1", env={"TESTS_LOG_RECORDS": str(path)})
    result = fail_with_type_error.delay("x")
    result.get(timeout=30, propagate=False)
    failure = wait_until(lambda: [r for r in _records(path, exc_type="TypeError")
                                  if result.id in r["message"]],
                         message="the failure's record at the project's handler")[0]
    assert failure["level"] == "ERROR" and failure["name"] == "django_tasks.worker"
    assert failure["has_traceback"]  # the exception object itself, raised in the task
    assert "raised unexpected" in failure["message"]
    # The worker's own console line, with the traceback, and only once: the
    # project's console handler does not print it again.
    worker.wait_for("Traceback (most recent call last)")
    assert worker.count(f"{result.id}] raised unexpected") == 1


def test_task_loggers_carry_the_task_id_and_name(start_worker, tmp_path):
    path = tmp_path / "records.jsonl"
    worker = start_worker("-P", "prefork", "-c", "1", env={"TESTS_LOG_RECORDS": str(path)})
    result = log_something.delay("hello")
    assert result.get(timeout=30) == "hello"
    record = wait_until(lambda: _records(path, message="said hello"),
                        message="the task logger's record at the project's handler")[0]
    assert record["task_id"] == result.id
    assert record["task_name"] == "tests.delivery_tasks.log_something"
    assert record["name"] == "tests.delivery_tasks"
    # Celery's task format in the worker's output.
    worker.wait_for(f"/ForkPoolWorker-1] tests.delivery_tasks.log_something[{result.id}]: "
                    "said hello")


def test_a_task_logger_outside_a_task_says_so():
    logger = get_task_logger("tests.outside_a_task")
    assert logger.parent is logging.getLogger(TASK_LOGGER)
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append((record.task_id, record.task_name))

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning("not in a task")
    finally:
        logger.removeHandler(handler)
    assert seen == [("???", "???")]
    with pytest.raises(RuntimeError, match="reserved"):
        get_task_logger(TASK_LOGGER)


def test_a_setup_logging_receiver_takes_logging_over():
    calls = []

    def take_over(loglevel, logfile, format, colorize, **extra):  # noqa: A002 (Celery's)
        calls.append(loglevel)

    worker_logger = logging.getLogger("django_tasks")
    before = list(worker_logger.handlers)
    signals.setup_logging.connect(take_over)
    try:
        assert logs.configure("INFO") is None
    finally:
        signals.setup_logging.disconnect(take_over)
    assert calls == ["INFO"] and worker_logger.handlers == before


def test_each_tasks_failure_is_logged_even_when_the_error_repeats():
    repeats = logs.RepeatFilter(window=60, clock=lambda: 0.0)
    records = []
    for task_id in ("t1", "t2", "t3"):
        record = logging.LogRecord("django_tasks.worker", logging.ERROR, __file__, 1,
                                   "Task %s raised unexpected: %s", (task_id, "boom"),
                                   (ValueError, ValueError("boom"), None))
        record.task_id = task_id
        records.append(record)
    assert all(repeats.filter(record) for record in records)
