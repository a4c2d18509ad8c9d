"""Canvas behaviours as Celery has them, through real workers: errbacks in
both styles, nested groups unrolled, and the parent/root ids of a workflow."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_tasks import (
    AsyncResult,
    GroupResult,
    chain,
    chord,
    group,
    send_task,
    signature,
    states,
)
from django_tasks.exceptions import ChordError, TaskRevokedError
from django_tasks.models import QueuedMessage, TaskGroup, TaskResult
from django_tasks.registry import tasks as registry
from testproject.tasks import add, mul, xsum
from tests.canvas_tasks import (
    bound_note_failure,
    fail_with_value_error,
    identity,
    note_error,
    note_failure,
    sleep_past_time_limit,
)
from tests.models import Note
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _notes(count):
    wait_until(lambda: Note.objects.count() >= count, timeout=30, message=f"{count} notes")
    return list(Note.objects.values_list("text", flat=True))


def _called_with(texts, key):
    """What note_failure recorded for ``key``."""
    (called,) = [data for data in map(_json_or_none, texts) if data and data["key"] == key]
    return called


def _json_or_none(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- errbacks ------------------------------------------------------------------

def test_errbacks_of_both_styles_on_a_failure(start_worker):
    start_worker()
    failed = fail_with_value_error.apply_async(
        (1, "a"), link_error=[note_error.s("old"), note_failure.s("new"), bound_note_failure.s()])
    texts = _notes(3)
    # One argument: the task id, as before (Celery's old style).
    assert f"old:{failed.id}" in texts
    # (request, exc, traceback) and its own arguments after them (Celery's style).
    called = _called_with(texts, "new")
    assert called["id"] == failed.id and called["task"] == "fail_with_value_error"
    assert called["args"] == [1, "a"] and called["root"]
    assert called["exc"] == "ValueError: failed on (1, 'a')" and called["raisable"]
    assert called["tb"] is True
    # A bound errback: self first, then the failure.
    (bound,) = [text for text in texts if text.startswith("bound:")]
    _, request_id, exc_name, own_id = bound.split(":")
    assert (request_id, exc_name) == (failed.id, "ValueError") and own_id != failed.id
    # Each errback is a task of its own whose parent is the failed task.
    errback_rows = TaskResult.objects.filter(parent_id=failed.id, state="SUCCESS")
    wait_until(lambda: errback_rows.count() == 3, message="the errbacks' results")


def test_an_errback_of_a_task_stopped_by_its_time_limit(start_worker):
    start_worker()
    stopped = sleep_past_time_limit.apply_async((60,), link_error=note_failure.s("limit"))
    called = _called_with(_notes(1), "limit")
    assert called["id"] == stopped.id and called["args"] == [60]
    assert called["exc"] == "TimeLimitExceeded: time limit (1s) exceeded"
    # The traceback where the limit stopped the task, when there is one.
    assert called["tb"] is not False


def test_errbacks_the_producer_does_not_import_and_a_revoke_runs_none(
        start_worker, monkeypatch):
    # The web process imports neither errback; the worker does.
    monkeypatch.delitem(registry, note_failure.name)
    monkeypatch.delitem(registry, note_error.name)
    waiting = add.apply_async((1, 1), countdown=3600, link_error=[
        signature(note_failure.name, args=("revoked",)), signature(note_error.name, ("old",))])
    # As in Celery, a revoked task runs no errbacks: the revoke's transaction,
    # which would have enqueued them, enqueued nothing.
    assert waiting.revoke() == 1 and waiting.state == "REVOKED"
    assert not QueuedMessage.objects.filter(
        task_name__in=[note_failure.name, note_error.name]).exists()
    failed = fail_with_value_error.apply_async(
        (2,), link_error=[signature(note_failure.name, args=("failed",)),
                          signature(note_error.name, ("old",))])
    start_worker()
    texts = _notes(2)
    assert _called_with(texts, "failed")["id"] == failed.id
    assert f"old:{failed.id}" in texts
    assert not any(waiting.id in text for text in texts)


def test_a_revoked_chain_step_runs_no_errback_and_fails_the_rest_silently(start_worker):
    start_worker()
    steps = chain(add.s(1, 1).set(countdown=3600), add.s(1), mul.s(2))
    result = steps.apply_async(link_error=note_failure.s("chain"))
    first = result.parent.parent
    assert first.revoke() == 1
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert result.parent.state == "FAILURE"
    assert not QueuedMessage.objects.filter(task_name=note_failure.name).exists()
    # A chord whose member is revoked fails its body, whose errbacks run (Celery too).
    joined = chord([add.s(1, 1), add.s(2, 2).set(countdown=3600)],
                   xsum.s()).apply_async(link_error=note_failure.s("body"))
    assert joined.parent.results[1].revoke() == 1
    with pytest.raises(ChordError, match="TaskRevokedError"):
        joined.get(timeout=20)
    called = _called_with(_notes(1), "body")
    assert called["id"] == joined.id and called["exc"].startswith("ChordError: Dependency")


def test_a_failure_too_large_for_a_small_message_limit_is_shortened_for_the_errback(
        start_worker):
    small = {"MAX_MESSAGE_SIZE": 10000}
    start_worker(env={"TESTS_MAX_MESSAGE_SIZE": "10000"})
    with override_settings(DJANGO_TASKS={**settings.DJANGO_TASKS, **small}):
        failed = fail_with_value_error.apply_async(
            ("x" * 2500,), link_error=[note_failure.s("big"), note_error.s("old")])
    texts = _notes(2)
    called = _called_with(texts, "big")
    # Without its arguments and traceback, its exception's text cut.
    assert called["id"] == failed.id and called["args"] is None and called["tb"] is None
    assert called["exc"].startswith("ValueError: failed on ('xxx")
    assert f"old:{failed.id}" in texts


def test_an_errback_message_whose_failure_cannot_be_read_fails_readably(start_worker):
    start_worker()
    # Sent by name: an errback's message holds the failed task's id, not the
    # (request, exc, traceback) its function takes, so the call-time check
    # of arguments would refuse it.
    result = send_task("tests.canvas_tasks.note_failure", ("some-task-id", "forged"),
                       headers={"errback": {"request": {"id": 1}}})
    with pytest.raises(Exception, match="corrupt message: the 'errback' header's request"):
        result.get(timeout=20)
    # One with a single argument ignores the header it does not use.
    assert note_error.s("plain").set(headers={"errback": "junk"}).delay("x").get(
        timeout=20) == "x"


# -- nested groups ---------------------------------------------------------------

def test_nested_groups_are_unrolled(start_worker):
    start_worker()
    nested = group(add.s(1, 1), group(add.s(2, 2), group(add.s(3, 3), add.s(4, 4))))()
    assert isinstance(nested, GroupResult) and len(nested.results) == 4
    assert not any(isinstance(r, GroupResult) for r in nested.results)
    assert nested.get(timeout=20) == [2, 4, 6, 8]
    assert TaskResult.objects.filter(group_id=nested.id).count() == 4
    only_member = group(group(add.s(1, 1), add.s(2, 2)))()
    assert len(only_member.results) == 2 and only_member.get(timeout=20) == [2, 4]
    # The nested group's options go to its members when it is unrolled.
    queued = group(add.s(5, 5), group(add.s(6, 6), queue="other").set(priority=3))
    assert len(queued) == 2
    queued.freeze()
    assert [m.options.get("queue") for m in queued.tasks] == [None, "other"]
    assert [m.options.get("priority") for m in queued.tasks] == [None, 3]


def test_a_group_alone_in_a_chord_header_is_unrolled_and_one_in_a_chain_is_one_value(
        start_worker):
    start_worker()
    unrolled = chord((group(add.s(1, 1), add.s(2, 2)),), identity.s())()
    assert unrolled.get(timeout=20) == [2, 4]
    assert len(unrolled.parent.results) == 2
    protected = chord([chain(group(add.s(1, 1), add.s(2, 2)), identity.s())], identity.s())()
    assert protected.get(timeout=20) == [[2, 4]]
    # Celery's test_nested_chord_group_chain_group_tail: the chain prevents unrolling.
    tail = chord(group(chain(identity.s(42), group(identity.s(), identity.s()))), identity.s())()
    assert tail.get(timeout=20) == [[42, 42]]
    mixed = chord([chain(add.s(1, 1), group(add.s(1), add.s(2))), add.s(5, 5)], identity.s())()
    assert mixed.get(timeout=20) == [[3, 4], 10]
    # The chord's header as stored has that shape too.
    header = GroupResult.restore(mixed.parent.id)
    assert isinstance(header.results[0], GroupResult) and header.get(timeout=10) == [[3, 4], 10]
    with pytest.raises(ChordError, match="ValueError"):
        chord([chain(add.s(1, 1), group(add.s(1), fail_with_value_error.s())), add.s(5, 5)],
              identity.s())().get(timeout=20)


# -- parent and root ids -----------------------------------------------------------

def _text(task_id):
    return None if task_id is None else str(task_id)


def test_parent_and_root_ids_through_chain_chord_chain(start_worker):
    start_worker()
    result = chain(add.s(1, 1), chord([add.s(1), add.s(2)], xsum.s() | mul.s(10)))()
    assert result.get(timeout=30) == 70
    body = result.parent
    header = body.parent
    first = header.parent
    header_ids = {r.id for r in header.results}
    rows = {str(row.task_id): (_text(row.parent_id), _text(row.root_id))
            for row in TaskResult.objects.all()}
    for member_id in header_ids:  # the header's parent: the task before the chord
        assert rows[member_id] == (first.id, first.id)
    body_parent, body_root = rows[body.id]
    assert body_parent in header_ids and body_root == first.id
    assert rows[result.id] == (body.id, first.id)
    # Looked up by id later, the parents are the stored ones.
    assert AsyncResult(body.id).parent.id in header_ids
    assert AsyncResult(result.id).parent.parent.id in header_ids


# -- a chain's and a chord's task_id ---------------------------------------------

def test_a_chain_s_task_id_is_its_last_task_s_and_a_chord_s_its_body_s(start_worker):
    import uuid

    start_worker()
    chained = chain(add.s(1, 1), mul.s(3)).apply_async(task_id="order-42/total")
    assert chained.id == "order-42/total" and chained.get(timeout=20) == 6
    assert TaskResult.objects.get(task_id="order-42/total").task_name == mul.name
    assert chained.parent.get(timeout=20) == 2 and chained.parent.id != chained.id
    # The option wins over an id the last step was given.
    given = chain(add.s(2, 2), mul.s(2).set(task_id="step")).apply_async(task_id="chain-id")
    assert given.id == "chain-id" and given.get(timeout=20) == 8
    assert not TaskResult.objects.filter(task_id="step").exists()
    # A chain ending in a chord (a group then a task): the chord's body.
    ending = chain(add.s(1, 1), group(mul.s(2), mul.s(3)), xsum.s()).apply_async(
        task_id=uuid.UUID("12345678-1234-5678-1234-567812345678"))
    assert ending.id == "12345678-1234-5678-1234-567812345678"
    assert ending.get(timeout=20) == 10
    # A chain ending in a group: the group's id.
    grouped = chain(add.s(1, 1), group(mul.s(2), mul.s(3))).apply_async(task_id="the-group")
    assert isinstance(grouped, GroupResult) and grouped.id == "the-group"
    assert grouped.get(timeout=20) == [4, 6]
    assert TaskResult.objects.filter(group_id="the-group").count() == 2
    alone = group(add.s(1, 1), add.s(2, 2)).apply_async(task_id="group-id")
    assert alone.id == "group-id" and alone.get(timeout=20) == [2, 4]

    joined = chord([add.s(1, 1), add.s(2, 2)], xsum.s()).apply_async(task_id="report-7")
    assert joined.id == "report-7" and joined.get(timeout=20) == 6
    assert TaskResult.objects.get(task_id="report-7").task_name == xsum.name
    assert joined.parent.get(timeout=20) == [2, 4]
    called = chord([add.s(3, 3)])(xsum.s(), task_id="report-8")
    assert called.id == "report-8" and called.get(timeout=20) == 6
    # A chord whose body is a chain: the chain's last task.
    tail = chord([add.s(1, 1)], xsum.s() | mul.s(5)).apply_async(task_id="report-9")
    assert tail.id == "report-9" and tail.get(timeout=20) == 10


@pytest.mark.parametrize("bad, error", [("", ValueError), ("x" * 256, ValueError),
                                        ("a\0b", ValueError), (42, TypeError),
                                        (b"id", TypeError)])
def test_a_bad_task_id_for_a_chain_or_chord_is_refused_before_anything_is_sent(bad, error):
    canvases = [chain(add.s(1, 1), mul.s(3)), chord([add.s(1, 1)], xsum.s()),
                chain(add.s(1, 1), chord([add.s(1)], xsum.s()))]
    for canvas in canvases:
        with pytest.raises(error, match="task_id"):
            canvas.apply_async(task_id=bad)
    assert not QueuedMessage.objects.exists() and not TaskResult.objects.exists()
    # The canvas is unchanged: it can still be sent with a good id.
    assert canvases[0].apply_async(task_id="good").id == "good"


def test_an_id_sent_twice_through_a_chain_or_chord_is_refused_while_the_first_waits():
    from django.db import IntegrityError

    add.apply_async((1, 1), task_id="twice", countdown=3600)
    # A chain of one step: its last task is sent at once.
    with pytest.raises(IntegrityError):
        chain(add.s(2, 2)).apply_async(task_id="twice")
    # A chord with nothing to wait for: its body is sent at once.
    with pytest.raises(IntegrityError):
        chord([], xsum.s()).apply_async(task_id="twice")
    assert QueuedMessage.objects.count() == 1


def test_a_nested_group_is_one_member_until_the_group_is_applied():
    # Celery: group.__init__ keeps a nested group (only a group given alone
    # is taken apart); applying unrolls it.
    nested = group(add.s(1, 1), group(add.s(2, 2), group(add.s(3, 3), add.s(4, 4))))
    assert len(nested) == 2 and isinstance(nested.tasks[1], group)
    assert len(group(group(add.s(1, 1), add.s(2, 2)))) == 2
    assert len(group(nested)) == 2 and len(group(nested).apply_async().results) == 4
    assert len(group([group(add.s(1, 1), add.s(2, 2))])) == 1
    sent = nested.apply_async()
    assert len(sent.results) == 4 and len(nested) == 2  # the caller's group is unchanged
    frozen = nested.clone().freeze()
    assert len(frozen.results) == 4
    # A group made from a stored one (a worker reading a header) is the same.
    assert len(signature(json.loads(json.dumps(nested)))) == 2


# -- a chord's options ------------------------------------------------------------


def _header_rows(result):
    return QueuedMessage.objects.filter(task_id__in=[r.id for r in result.parent.results])


def test_a_chords_queue_goes_to_its_header_and_its_body(start_worker):
    # Celery's chord passes its options (apply_async's, or set on it) to the
    # header's tasks and to the body.
    header = [add.s(1, 1), add.s(2, 2).set(queue="elsewhere")]
    results = [
        chord(header)(xsum.s(), queue="chordq"),
        chord(header, xsum.s()).apply_async(queue="chordq"),
        chord(header, xsum.s()).set(queue="chordq").apply_async(),
        (group(header) | xsum.s()).apply_async(queue="chordq"),
    ]
    for result in results:
        assert set(_header_rows(result).values_list("queue", flat=True)) == {"chordq"}
    # Only a worker on that queue: a task sent anywhere else never runs.
    start_worker("-Q", "chordq")
    for result in results:
        assert result.get(timeout=30) == 6
        ran = [result.id, *(r.id for r in result.parent.results)]
        assert set(TaskResult.objects.filter(task_id__in=ran)
                   .values_list("queue", flat=True)) == {"chordq"}


def test_a_chords_countdown_delays_its_body_not_its_header(start_worker):
    # Celery's chord.run takes countdown for itself (chord_unlock's), so its
    # header starts at once; apply_async's countdown still reaches the body.
    # Set on the chord, it goes to the body too (Celery drops it: nothing here
    # polls for the header to finish).
    start = timezone.now()
    results = [
        chord([add.s(1, 1), add.s(2, 2)])(xsum.s(), countdown=600),
        chord([add.s(1, 1), add.s(2, 2)], xsum.s()).apply_async(countdown=600),
        chord([add.s(1, 1), add.s(2, 2)], xsum.s()).set(countdown=600).apply_async(),
    ]
    for result in results:
        assert all(row.available_at < start + timedelta(seconds=60)
                   for row in _header_rows(result))
    start_worker()
    for result in results:
        assert result.parent.get(timeout=30) == [2, 4]
        body = wait_until(lambda result=result: QueuedMessage.objects.filter(
            task_id=result.id).first(), message="the body's message")
        assert body.available_at > start + timedelta(seconds=500)
        assert result.state == states.PENDING


def test_a_chords_eta_and_expiry_go_to_its_header_and_its_body():
    later = timezone.now() + timedelta(hours=1)
    result = chord([add.s(1, 1), add.s(2, 2)], xsum.s()).apply_async(
        eta=later, expires=later + timedelta(hours=1), priority=7)
    for row in _header_rows(result):
        assert row.available_at == later and row.priority == 7
        assert row.expires == later + timedelta(hours=1)
    body = TaskGroup.objects.get(group_id=result.parent.id).chord_body
    options = body["options"]
    assert options["priority"] == 7 and options["eta"] and options["expires"]


def test_a_chord_refuses_unique_options_at_call_time():
    for options in ({"unique_key": "k"}, {"unique_for": 60}):
        with pytest.raises(TypeError, match="not applied to the members"):
            chord([add.s(1, 1)], xsum.s()).apply_async(**options)
        with pytest.raises(TypeError, match="not applied to the members"):
            chord([add.s(1, 1)], xsum.s()).set(**options).apply_async()
    assert not QueuedMessage.objects.exists() and not TaskGroup.objects.exists()
