"""Canvas behaviours as Celery has them, through real workers: errbacks in
both styles, nested groups unrolled, and the parent/root ids of a workflow."""

import json

import pytest
from django.conf import settings
from django.test import override_settings

from django_tasks import AsyncResult, GroupResult, chain, chord, group, send_task, signature
from django_tasks.exceptions import ChordError
from django_tasks.models import TaskResult
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


def test_errbacks_the_producer_does_not_import_on_a_revoke_and_a_failure(
        start_worker, monkeypatch):
    # The web process imports neither errback; the worker does.
    monkeypatch.delitem(registry, note_failure.name)
    monkeypatch.delitem(registry, note_error.name)
    waiting = add.apply_async((1, 1), countdown=3600, link_error=[
        signature(note_failure.name, args=("revoked",)), signature(note_error.name, ("old",))])
    # Followed in this process, which cannot look at the errbacks' functions.
    assert waiting.revoke() == 1
    failed = fail_with_value_error.apply_async(
        (2,), link_error=signature(note_failure.name, args=("failed",)))
    start_worker()
    texts = _notes(3)
    revoked = _called_with(texts, "revoked")
    assert revoked["id"] == waiting.id and revoked["args"] == [1, 1]
    assert revoked["exc"] == "TaskRevokedError: revoked" and revoked["tb"] is None
    assert f"old:{waiting.id}" in texts
    assert _called_with(texts, "failed")["id"] == failed.id


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
    # The nested group's options go to its members.
    queued = group(add.s(5, 5), group(add.s(6, 6), queue="other").set(priority=3))
    assert [m.options.get("queue") for m in queued.tasks] == [None, "other"]


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
