"""self.replace(sig), raise Reject(requeue=...), raise Ignore(), with real workers."""

import uuid

import pytest

from django_tasks import AsyncResult, chain, chord, states
from django_tasks.exceptions import ChordError, ImproperlyConfigured, Reject
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.testing import eager
from tests.canvas_tasks import note_error
from tests.models import Execution, Note
from tests.taskclass_tasks import (
    atomic_note_then_replace,
    ignores,
    ignores_after_progress,
    rejects,
    rejects_with_requeue,
    replaced_by_add,
    replaced_by_chain,
    replaced_by_chain_to_group,
    replaced_by_chord,
    replaced_by_chord_member,
    replaced_by_empty_chain,
    replaced_by_group,
    replaced_by_starmap,
    total,
)
from tests.tasks import add, echo
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def gone(result):
    return wait_until(lambda: not QueuedMessage.objects.filter(task_id=result.id).exists(),
                      message=f"message of {result.id} acknowledged")


# -- Ignore -----------------------------------------------------------------------

def test_ignore_acknowledges_and_stores_nothing(start_worker):
    worker = start_worker()
    result = ignores.delay()
    gone(result)
    worker.wait_for(f"Task tests.taskclass_tasks.ignores[{result.id}] ignored")
    assert not TaskResult.objects.filter(task_id=result.id).exists()
    assert AsyncResult(result.id).state == states.PENDING
    assert echo.delay("next").get(timeout=60) == "next"  # nothing else held up
    assert "raised unexpected" not in worker.output


def test_ignore_keeps_the_last_custom_state(start_worker):
    start_worker()
    result = ignores_after_progress.delay()
    gone(result)
    assert AsyncResult(result.id).state == "PROGRESS"
    assert AsyncResult(result.id).info == {"step": 3}


# -- Reject -----------------------------------------------------------------------

def test_reject_ends_rejected_and_get_raises_it(start_worker):
    start_worker()
    result = rejects.delay("not for us")
    with pytest.raises(Reject, match="not for us"):
        result.get(timeout=60)
    assert result.state == states.REJECTED
    assert not QueuedMessage.objects.filter(task_id=result.id).exists()


def test_reject_with_requeue_delivers_again(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    # Rejected on its first delivery, runs on its second.
    result = rejects_with_requeue.delay(key, 1)
    assert result.get(timeout=60) == 2
    assert Execution.objects.filter(key=key).count() == 2


def test_reject_with_requeue_forever_stops_at_max_deliveries(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    result = rejects_with_requeue.delay(key, 1000)
    with pytest.raises(Reject, match="MAX_DELIVERIES is 3"):
        result.get(timeout=60)
    assert result.state == states.REJECTED
    assert Execution.objects.filter(key=key).count() == 3


def test_a_rejected_chain_step_fails_the_rest(start_worker):
    start_worker()
    result = chain(rejects.si("stop"), add.s(1)).delay()
    with pytest.raises(Reject, match="stop"):
        result.get(timeout=60)


# -- replace ----------------------------------------------------------------------

def test_replace_gives_the_original_id_the_replacements_value(start_worker):
    start_worker()
    result = replaced_by_add.delay(1)
    assert result.get(timeout=60) == 11
    row = TaskResult.objects.get(task_id=result.id)
    assert row.task_name == "tests.tasks.add"


def test_replace_with_a_chain(start_worker):
    start_worker()
    assert replaced_by_chain.delay(5).get(timeout=60) == 8
    # Inside a chain: the rest of it follows the replacement's last step.
    assert chain(replaced_by_chain.s(1), add.s(10)).delay().get(timeout=60) == 14


def test_replace_keeps_links_chain_and_chord_membership(start_worker):
    start_worker()
    linked = replaced_by_add.apply_async((1,), link=add.s(100))
    assert linked.get(timeout=60) == 11
    wait_until(lambda: TaskResult.objects.filter(state=states.SUCCESS, result="111").exists(),
               message="the link ran with the replacement's value")
    assert chain(replaced_by_add.s(2), add.s(5)).delay().get(timeout=60) == 17
    assert chain(add.s(1, 1), replaced_by_add.s(), add.s(1)).delay().get(timeout=60) == 13
    assert chord([replaced_by_add.s(1), add.s(2, 3)], total.s()).delay().get(timeout=60) == 16


def test_an_atomic_task_replaced_keeps_its_writes(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    assert atomic_note_then_replace.delay(key).get(timeout=60) == 3
    assert Note.objects.filter(text=key).exists()


def test_replace_with_a_group_or_a_chord(start_worker):
    start_worker()
    # As in Celery, a group is made a chord whose body gathers its values:
    # the task's id holds the list.
    replaced = replaced_by_group.delay(1, 2)
    assert replaced.get(timeout=60) == [2, 4]
    assert TaskResult.objects.get(task_id=replaced.id).task_name == "django_tasks.accumulate"
    assert replaced_by_group.delay().get(timeout=60) == []
    assert replaced_by_chord.delay(1, 2).get(timeout=60) == 6
    assert replaced_by_chain_to_group.delay(1).get(timeout=60) == [3, 4]
    # The task's link, the rest of its chain and its chord membership follow.
    linked = replaced_by_group.apply_async((2, 3), link=total.s())
    assert linked.get(timeout=60) == [4, 6]
    wait_until(lambda: TaskResult.objects.filter(state=states.SUCCESS, result="10",
                                                 parent_id=linked.id).exists(),
               message="the link ran with the group's values")
    assert chain(replaced_by_group.s(1, 2), total.s()).delay().get(timeout=60) == 6
    assert chain(replaced_by_chord.s(1, 2), add.s(1)).delay().get(timeout=60) == 7
    assert chord([replaced_by_group.s(1, 2), replaced_by_chord.s(3)],
                 echo.s()).delay().get(timeout=60) == [[2, 4], 6]
    # A failed member fails the replacement, whose id is the task's; the
    # task's errbacks run for it.
    failing = replaced_by_group.apply_async((1, None), link_error=note_error.s("replaced"))
    with pytest.raises(ChordError, match="TypeError"):
        failing.get(timeout=60)
    wait_until(lambda: Note.objects.filter(text=f"replaced:{failing.id}").exists(),
               message="the replaced task's errback")


def test_replace_with_map_starmap_or_chunks_is_refused_with_a_reason(start_worker):
    start_worker()
    result = replaced_by_starmap.delay()
    with pytest.raises(TypeError, match="replace\\(\\) takes a task's signature, a chain, "
                                        "a group or a chord, not xstarmap"):
        result.get(timeout=60)


def test_replace_with_an_empty_chain_or_a_chord_member_is_improperly_configured(start_worker):
    # Celery's messages, and its ImproperlyConfigured (django_tasks.exceptions').
    start_worker()
    empty = replaced_by_empty_chain.delay()
    with pytest.raises(ImproperlyConfigured, match="^Cannot replace with an empty chain$"):
        empty.get(timeout=60)
    member = replaced_by_chord_member.delay(str(uuid.uuid4()))
    with pytest.raises(ImproperlyConfigured,
                       match="^A signature replacing a task must not be part of a chord$"):
        member.get(timeout=60)
    assert not QueuedMessage.objects.filter(task_name=add.name).exists()
    with eager():
        with pytest.raises(ImproperlyConfigured, match="empty chain"):
            replaced_by_empty_chain.delay().get()
        with pytest.raises(ImproperlyConfigured, match="part of a chord"):
            replaced_by_chord_member.delay("x").get()


def test_replace_in_eager_mode_returns_the_value():
    with eager():
        assert replaced_by_add.delay(1).get() == 11
        assert replaced_by_chain.delay(1).get() == 4
        assert ignores.delay().state == states.IGNORED
        rejected = rejects.delay("eager")
        assert replaced_by_group.delay(1, 2).get() == [2, 4]
        assert replaced_by_chord.delay(1, 2).get() == 6
        with pytest.raises(TypeError, match="not xstarmap"):
            replaced_by_starmap.delay().get()
    assert rejected.state == states.REJECTED
