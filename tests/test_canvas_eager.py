"""The canvas in EAGER mode: the same results as with workers, nothing stored."""

import json

import pytest

from django_tasks import GroupResult, chain, chord, group, states
from django_tasks.exceptions import ChordError
from django_tasks.models import QueuedMessage
from django_tasks.testing import eager
from testproject.tasks import add, mul, xsum
from tests.canvas_tasks import fail_with_value_error, identity, note_error, note_failure, note_value
from tests.models import Note

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager():
    with eager():
        yield


def test_partial_signature():
    assert add.s(2).delay(8).get() == 10
    assert add.signature((2, 2), countdown=10).apply_async().get() == 4


def test_groups():
    result = group(add.s(i, i) for i in range(5))()
    assert isinstance(result, GroupResult)
    assert result.get() == [0, 2, 4, 6, 8]
    assert result.ready() and result.successful() and result.completed_count() == 5
    assert group(add.s(i) for i in range(10))(10).get() == list(range(10, 20))


def test_chains():
    assert chain(add.s(4, 4) | mul.s(8))().get() == 64
    assert chain(add.s(4) | mul.s(8))(4).get() == 64
    result = (add.s(4, 4) | mul.s(8))()
    assert result.get() == 64
    assert result.parent.get() == 8


def test_chords():
    assert chord((add.s(i, i) for i in range(10)), xsum.s())().get() == 90
    assert (group(add.s(i, i) for i in range(10)) | xsum.s())().get() == 90


def test_map_starmap_chunks():
    assert add.starmap([(2, 2), (4, 4)]).delay().get() == [4, 8]
    assert xsum.map([[1, 2], [3]]).delay().get() == [3, 3]
    assert add.chunks(zip(range(5), range(5), strict=True), 2)().get() == [[0, 2], [4, 6], [8]]


def test_group_in_the_middle_of_a_chain():
    assert chain(add.s(1, 1), group(add.s(1), add.s(2)), xsum.s())().get() == 7


def test_nested_canvases():
    assert group(chain(add.s(i, i), mul.s(10)) for i in range(3))().get() == [0, 20, 40]
    assert chord([add.s(1, 1), chain(add.s(2, 2), mul.s(2))], xsum.s() | mul.s(3))().get() == 30
    # A nested group is unrolled (Celery).
    assert group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3))().get() == [2, 4, 6]
    assert chain(add.s(1, 1), group(add.s(1), add.s(2)))().get() == [3, 4]


def test_failing_chord_member_fails_the_body():
    result = chord([add.s(1, 1), fail_with_value_error.s(7)], xsum.s())()
    with pytest.raises(ChordError, match=result.parent.results[1].id):
        result.get()
    assert result.state == states.FAILURE


def test_failing_chain_step_fails_what_follows():
    result = chain(add.s(1, 1), fail_with_value_error.s(), mul.s(2))()
    with pytest.raises(ValueError, match="failed on"):
        result.get()
    assert result.parent.failed() and result.parent.parent.successful()


def test_link_and_link_error():
    add.apply_async((2, 3), link=note_value.s("ok"))
    fail = fail_with_value_error.apply_async((1,), link_error=note_error.s("err"))
    assert sorted(Note.objects.values_list("text", flat=True)) == [f"err:{fail.id}", "ok:5"]
    assert not QueuedMessage.objects.exists()


def test_errbacks_of_both_styles():
    fail = fail_with_value_error.apply_async((1,), link_error=[note_error.s("old"),
                                                                note_failure.s("new")])
    new, old = sorted(Note.objects.values_list("text", flat=True), reverse=True)
    assert old == f"old:{fail.id}"
    called = json.loads(new)
    assert (called["id"], called["args"]) == (fail.id, [1])
    assert called["exc"] == "ValueError: failed on (1,)"
    assert called["tb"] is True and called["raisable"]


def test_a_chord_bodys_errback_in_the_current_style():
    body = xsum.s()
    body.link_error(note_failure.s("body"))
    result = chord([fail_with_value_error.s(7)], body)()
    called = json.loads(Note.objects.get().text)
    assert called["id"] == result.id and called["exc"].startswith("ChordError: Dependency")
    assert called["tb"] is None


def test_nested_groups_and_chord_headers_are_unrolled():
    nested = group(add.s(1, 1), group(add.s(2, 2), group(add.s(3, 3), add.s(4, 4))))()
    assert len(nested.results) == 4 and nested.get() == [2, 4, 6, 8]
    assert group(group(add.s(1, 1), add.s(2, 2)))().get() == [2, 4]
    assert chord((group(add.s(1, 1), add.s(2, 2)),), identity.s())().get() == [2, 4]
    protected = chord([chain(group(add.s(1, 1), add.s(2, 2)), identity.s())], identity.s())()
    assert protected.get() == [[2, 4]]
    tail = chord(group(chain(identity.s(42), group(identity.s(), identity.s()))), identity.s())()
    assert tail.get() == [[42, 42]]
    mixed = chord([chain(add.s(1, 1), group(add.s(1), add.s(2))), add.s(5, 5)], identity.s())()
    assert mixed.get() == [[3, 4], 10]


def test_a_chain_s_and_a_chord_s_task_id_in_eager_mode():
    chained = chain(add.s(1, 1), mul.s(3)).apply_async(task_id="eager-chain")
    assert chained.id == "eager-chain" and chained.get() == 6
    joined = chord([add.s(1, 1), add.s(2, 2)], xsum.s()).apply_async(task_id="eager-chord")
    assert joined.id == "eager-chord" and joined.get() == 6
    with pytest.raises(ValueError, match="task_id"):
        chain(add.s(1, 1), mul.s(3)).apply_async(task_id="")
    with pytest.raises(TypeError, match="task_id"):
        chord([add.s(1, 1)], xsum.s()).apply_async(task_id=7)
