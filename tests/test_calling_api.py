"""Calling as Celery does: arguments checked at the call (``typing``), ``send_task`` and
signatures by name for tasks this process does not import, Celery's options accepted."""

import sys
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from django_tasks import chain, chord, group, send_task, signature, states, task
from django_tasks.exceptions import NotRegistered
from django_tasks.models import QueuedMessage
from django_tasks.task import AlwaysEagerIgnored
from testproject.tasks import add, xsum
from tests.tasks import record

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = "tests.remote.tasks.multiply"  # registered only in workers started with it
REMOTE_WORKER = {"TESTS_EXTRA_APPS": "tests.remote"}


@task(typing=False)
def unchecked(x):
    return x


@task
def keyword_only(*, name, greeting="hello"):
    return f"{greeting} {name}"


@task
def anything(*args, **kwargs):
    return [args, kwargs]


@task(rate_limit="10/s", exchange="tasks", routing_key="tasks.fast", throws=(KeyError,),
      compression="gzip", store_errors_even_if_ignored=True, expires=600)
def celery_options(x):
    return x


def _nothing_queued():
    return not QueuedMessage.objects.exists()


# -- typing ----------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: add.delay(1),
    lambda: add.delay(1, 2, 3),
    lambda: add.apply_async((1,), {"z": 2}),
    lambda: add.apply_async(kwargs={"x": 1}),
    lambda: add.s(1).delay(),
    lambda: add.s(1).apply_async((2, 3)),
    lambda: add.si(1).delay(5),  # immutable: the 5 is dropped, y is missing
    lambda: record.delay(),  # bind=True: self is not the caller's
    lambda: record.delay("a", "b"),
    lambda: keyword_only.delay("ann"),
    lambda: signature("testproject.tasks.add", args=(1,)).delay(),
])
def test_wrong_arguments_raise_type_error_at_the_call_and_nothing_is_queued(call):
    with pytest.raises(TypeError, match="got wrong arguments"):
        call()
    assert _nothing_queued()


def test_the_message_names_the_task_and_its_parameters():
    with pytest.raises(TypeError) as raised:
        add.delay(1)
    assert "testproject.tasks.add()" in str(raised.value)
    assert "missing a required argument: 'y'" in str(raised.value)
    assert "(x, y)" in str(raised.value)


def test_right_arguments_are_queued_whatever_their_shape():
    add.delay(1, 2)
    add.apply_async(kwargs={"x": 1, "y": 2})
    add.s(1).delay(2)
    add.s(y=2).delay(1)
    add.si(1, 2).delay(3)  # immutable: the extra argument is dropped, as in Celery
    record.delay("k")
    keyword_only.delay(name="ann")
    anything.delay(1, 2, z=3)
    anything.delay()
    assert QueuedMessage.objects.count() == 9


def test_a_failed_call_does_not_spoil_the_next_of_another_shape():
    for _ in range(3):
        with pytest.raises(TypeError):
            add.delay(1)
        add.delay(1, 2)
    assert QueuedMessage.objects.count() == 3


def test_inline_calls_raise_type_error_as_python_does():
    with pytest.raises(TypeError):
        add(1)
    with pytest.raises(TypeError):
        add.s(1)()


def test_typing_false_turns_the_check_off():
    result = unchecked.delay(1, 2, 3)
    assert QueuedMessage.objects.get(task_id=result.id).task_name == unchecked.name


def test_eager_calls_are_checked_before_they_run():
    with override_settings(DJANGO_TASKS={"EAGER": True}):
        with pytest.raises(TypeError, match="got wrong arguments"):
            add.delay(1)
        assert add.delay(1, 2).get() == 3


@pytest.mark.parametrize("canvas", [
    lambda: chain(add.s(1, 2), add.s(3, 4)),  # the second step also gets the first's value
    lambda: chain(add.s(1), add.s(3)),  # the first step lacks y
    lambda: add.s(1, 2) | add.si(3),
    lambda: group(add.s(1), add.s(2)),  # members lack y
    lambda: chord([add.s(1, 2)], add.s()),  # the body gets the list only
    lambda: chord([add.s(1)], xsum.s()),
    lambda: add.s(1, 2).set(link=add.s(1, 2)),  # the callback gets the value too
    lambda: chain(add.s(1, 2), group(add.s(1), add.s(1, 1))),
])
def test_a_canvas_is_checked_where_its_arguments_are_known(canvas):
    with pytest.raises(TypeError, match="got wrong arguments"):
        canvas().delay()
    assert _nothing_queued()


def test_a_canvas_that_fits_is_queued():
    chain(add.s(1, 2), add.s(3), add.si(4, 5)).delay()
    group(add.s(1), add.s(2))(10)
    chord([add.s(1, 2), add.s(3, 4)], xsum.s()).delay()
    add.apply_async((1, 2), link=add.s(10))
    assert QueuedMessage.objects.count() == 6


def test_a_chain_runs_through_a_worker_after_its_check(start_worker):
    start_worker()
    assert chain(add.s(1, 2), add.s(3), add.s(4)).delay().get(timeout=30) == 10


# -- send_task and signatures by name ------------------------------------------

def test_send_task_and_a_signature_by_name_run_on_a_worker_that_has_the_task(start_worker):
    assert "tests.remote.tasks" not in sys.modules  # this process does not import it
    start_worker(env=REMOTE_WORKER)
    assert send_task(REMOTE, (6, 7)).get(timeout=30) == 42
    assert send_task(REMOTE, kwargs={"x": 2, "y": 5}, countdown=0.1).get(timeout=30) == 10
    assert signature(REMOTE, args=(3,)).delay(4).get(timeout=30) == 12
    assert signature(REMOTE, args=(3, 3)).apply_async(queue="default").get(timeout=30) == 9
    assert chain(add.s(1, 1), signature(REMOTE, args=(10,))).delay().get(timeout=30) == 20
    assert "tests.remote.tasks" not in sys.modules


def test_a_worker_without_the_task_ends_it_not_registered(start_worker):
    start_worker()
    result = signature(REMOTE, args=(1, 2)).delay()
    with pytest.raises(NotRegistered, match=REMOTE):
        result.get(timeout=30)
    assert result.state == states.FAILURE
    sent = send_task(REMOTE, (1, 2))
    with pytest.raises(NotRegistered):
        sent.get(timeout=30)


def test_a_signature_by_name_is_sent_even_in_eager_mode():
    with override_settings(DJANGO_TASKS={"EAGER": True}):
        result = signature(REMOTE, args=(1, 2)).delay()
        with pytest.warns(AlwaysEagerIgnored, match="EAGER has no effect on send_task"):
            sent = send_task("testproject.tasks.add", (1, 2))  # always sent, as in Celery
    assert set(QueuedMessage.objects.values_list("task_id", flat=True)) == {result.id, sent.id}


def test_send_task_takes_apply_async_options_and_routes():
    with override_settings(DJANGO_TASKS={"TASK_ROUTES": {"tests.remote.*": {"queue": "remote"}}}):
        sent = send_task(REMOTE, [1, 2], priority=3, expires=60, exchange="x", routing_key="y",
                         retry=True, retry_policy={"max_retries": 3})
    row = QueuedMessage.objects.get(task_id=sent.id)
    assert (row.queue, row.priority, row.task_name) == ("remote", 3, REMOTE)
    assert row.expires is not None
    with pytest.raises(TypeError, match="countdwn"):
        send_task(REMOTE, [1, 2], countdwn=5)
    with pytest.raises(ValueError, match="rate_limit"):
        send_task(REMOTE, [1, 2], rate_limit="fast")


def test_send_task_does_not_check_arguments_it_may_not_know():
    send_task("testproject.tasks.add", (1,))  # as Celery: the worker reports it
    assert QueuedMessage.objects.count() == 1


# -- Celery's options --------------------------------------------------------

def test_celery_task_options_are_accepted_and_kept():
    assert celery_options.rate_limit == "10/s"
    assert celery_options.ignored_options == ["compression", "exchange", "routing_key",
                                              "store_errors_even_if_ignored", "throws"]


def test_a_task_default_expires_applies_to_its_calls():
    before = timezone.now()
    row = QueuedMessage.objects.get(task_id=celery_options.delay(1).id)
    assert before + timedelta(seconds=590) < row.expires < timezone.now() + timedelta(seconds=610)
    row = QueuedMessage.objects.get(task_id=celery_options.apply_async((1,), expires=30).id)
    assert row.expires < timezone.now() + timedelta(seconds=31)


@pytest.mark.parametrize("rate", ["10", "10/s", "2.5/m", "100/h", 5, 0.5])
def test_rate_limits_in_celerys_syntax_are_accepted(rate):
    task(name=f"tests.rate.{rate}", rate_limit=rate)(lambda: None)
    add.apply_async((1, 2), rate_limit=rate)


@pytest.mark.parametrize("rate", ["10/d", "fast", "/s", "-1", -1, True, "10/s/m", [10]])
def test_a_bad_rate_limit_is_a_value_error_where_it_is_given(rate):
    with pytest.raises(ValueError, match="rate_limit"):
        task(name="tests.rate.bad", rate_limit=rate)(lambda: None)
    with pytest.raises(ValueError, match="rate_limit"):
        add.apply_async((1, 2), rate_limit=rate)
    assert _nothing_queued()


def test_celerys_apply_async_options_are_accepted():
    result = add.apply_async((1, 2), exchange="e", routing_key="r", compression="zlib",
                             retry=False, retry_policy={}, shadow="alias", add_to_parent=True)
    assert QueuedMessage.objects.filter(task_id=result.id).exists()


def test_a_typo_is_still_a_type_error():
    with pytest.raises(TypeError, match="unknown task options: rate_limt"):
        task(rate_limt="1/s")(lambda: None)
    with pytest.raises(TypeError, match="unknown options: countdwn"):
        add.apply_async((1, 2), countdwn=5)
