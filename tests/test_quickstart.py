"""The Celery quick start, with django_tasks and a real worker process."""

import uuid

import pytest

from django_tasks import AsyncResult, states
from testproject.tasks import add, mul, xsum

pytestmark = pytest.mark.django_db(transaction=True)


def test_calling_a_task_runs_it_inline():
    assert add(2, 8) == 10
    assert mul(3, 4) == 12
    assert xsum([1, 2, 3]) == 6


def test_delay_and_get_through_a_worker(start_worker):
    worker = start_worker("--loglevel=info")
    result = add.delay(2, 9)
    assert isinstance(result, AsyncResult)
    assert repr(result) == f"<AsyncResult: {result.id}>"
    assert result.get(timeout=10) == 11
    assert result.state == states.SUCCESS
    assert result.status == states.SUCCESS
    assert result.ready() and result.successful() and not result.failed()
    assert result.result == 11 and result.info == 11
    assert result.name == "testproject.tasks.add"
    assert result.args == [2, 9] and result.kwargs == {}
    assert result.worker.startswith("worker@")
    assert result.date_done is not None
    worker.wait_for(f"Received task: testproject.tasks.add[{result.id}]")
    worker.wait_for(f"Task testproject.tasks.add[{result.id}] succeeded in ")
    assert f"[{result.id}] succeeded in " in worker.output and "s: 11" in worker.output


def test_banner_names_app_transport_queues_and_tasks(start_worker):
    worker = start_worker("-Q", "default,mail", "-c", "2")
    banner = worker.output
    for expected in (".> app:", ".> transport:", ".> results:", ".> concurrency: 2 (prefork)",
                     "[queues]", ".> default", ".> mail", "[tasks]",
                     ". testproject.tasks.add", ". tests.tasks.record"):
        assert expected in banner, expected


def test_unknown_id_is_pending():
    result = AsyncResult(uuid.uuid4())
    assert result.state == states.PENDING
    assert not result.ready()
    assert result.result is None


def test_queued_then_ready_states(start_worker):
    result = add.delay(1, 1)
    assert result.state == states.PENDING  # no worker yet
    start_worker()
    assert result.get(timeout=10) == 2
    assert result.state == states.SUCCESS


def test_get_times_out_with_the_apps_timeout_error():
    from django_tasks.exceptions import TimeoutError as TasksTimeout

    result = add.delay(1, 2)  # no worker runs it
    with pytest.raises(TasksTimeout):
        result.get(timeout=0.3)
    with pytest.raises(TimeoutError):  # also the builtin, as Celery's is
        result.get(timeout=0.1)


def test_forget_deletes_the_result(start_worker):
    start_worker()
    result = add.delay(3, 3)
    assert result.get(timeout=10) == 6
    result.forget()
    assert AsyncResult(result.id).state == states.PENDING
