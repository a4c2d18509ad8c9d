"""Task ids are any text, as in Celery; unknown ids are PENDING; ignore_result's
get() returns None at once."""

import asyncio
import re
import uuid

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from django_tasks import AsyncResult, GroupResult, chain, chord, group, send_task, states
from django_tasks.exceptions import DecodeError, TaskRevokedError, TimeoutError
from django_tasks.messages import MAX_TASK_ID_LENGTH
from django_tasks.models import QueuedMessage, TaskGroup, TaskResult, UniqueLock
from testproject.tasks import xsum
from tests.tasks import add, add_ignoring_result, echo
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Ids people choose: words, slashes and underscores (the admin quotes them
# in its URLs), commas (result notifications are comma-separated ids),
# accents, spaces, and the longest the columns hold.
STRING_IDS = ["order-42", "report/2026_01 été", "a,b", "ABCDEF",
              "x" * (MAX_TASK_ID_LENGTH - 1) + "é"]


def test_any_string_is_a_task_id_on_a_worker(start_worker):
    start_worker()
    results = [add.apply_async((i, 1), task_id=task_id) for i, task_id in enumerate(STRING_IDS)]
    assert [r.id for r in results] == STRING_IDS
    assert [r.get(timeout=30) for r in results] == [i + 1 for i in range(len(STRING_IDS))]
    for i, task_id in enumerate(STRING_IDS):
        found = AsyncResult(task_id)
        assert (found.state, found.result, found.name) == (states.SUCCESS, i + 1,
                                                            "tests.tasks.add")
    assert set(TaskResult.objects.values_list("task_id", flat=True)) == set(STRING_IDS)
    # A UUID object is its canonical text, as the ids made here are.
    given = uuid.uuid4()
    assert add.apply_async((1, 1), task_id=given).get(timeout=30) == 2
    assert TaskResult.objects.filter(task_id=str(given)).exists()


@pytest.mark.parametrize("task_id, error, match", [
    ("", ValueError, "cannot be stored: give 1 to 255 characters"),
    ("x" * (MAX_TASK_ID_LENGTH + 1), ValueError, "cannot be stored"),
    ("a\x00b", ValueError, "without NUL"),
    ("\ud800", ValueError, "lone surrogates"),
    (42, TypeError, "task_id must be a str"),
    (b"order-42", TypeError, "task_id must be a str"),
])
def test_a_task_id_no_row_can_hold_is_refused_at_the_call(task_id, error, match):
    with pytest.raises(error, match=match):
        add.apply_async((1, 1), task_id=task_id)
    with pytest.raises(error, match=match):
        add.s(1, 1).apply_async(task_id=task_id)
    with pytest.raises(error, match=match):
        add.s(1, 1).set(task_id=task_id).delay()
    with pytest.raises(error, match=match):
        group(add.s(1, 1), add.s(2, 2)).apply_async(task_id=task_id)
    with pytest.raises(error, match=match):
        chain(add.s(1, 1), add.s(2).set(task_id=task_id)).apply_async()
    with pytest.raises(error, match=match):
        chord([add.s(1, 1)], xsum.s().set(task_id=task_id)).apply_async()
    assert not QueuedMessage.objects.exists()


def test_a_repeated_task_id_is_refused_while_the_first_is_queued():
    add.apply_async((1, 1), task_id="once")
    with pytest.raises(IntegrityError, match="once") as refused:
        add.apply_async((2, 2), task_id="once")
    assert "refused while a message with that id waits or runs" in refused.value.__notes__[0]
    with pytest.raises(IntegrityError, match="once"), transaction.atomic():
        add.apply_async((2, 2), task_id="once")
    assert QueuedMessage.objects.get(task_id="once").body == '{"args":[1,1],"kwargs":{}}'


def test_a_repeated_task_id_leaves_the_callers_transaction_usable():
    add.apply_async((1, 1), task_id="once")
    with transaction.atomic():
        add.delay(5, 5)
        for send in (lambda: add.apply_async((2, 2), task_id="once"),
                     lambda: add.s(2, 2).set(task_id="once").delay(),
                     lambda: send_task("tests.tasks.add", (2, 2), task_id="once"),
                     lambda: add.apply_async((2, 2), task_id="once", unique_key="new-key")):
            with pytest.raises(IntegrityError, match="once"):
                send()
            # Still usable: the refused insert was rolled back alone.
            assert QueuedMessage.objects.count() == 2
        add.delay(6, 6)
    assert QueuedMessage.objects.count() == 3
    assert not UniqueLock.objects.exists()


def test_chains_groups_and_chords_with_string_ids(start_worker):
    start_worker()
    steps = chain(add.s(1, 2).set(task_id="step/1"), add.s(3).set(task_id="step/2"),
                  add.s(4).set(task_id="step/3")).apply_async()
    assert steps.id == "step/3" and steps.parent.id == "step/2"
    assert steps.get(timeout=30) == 10
    rows = {r.task_id: r for r in TaskResult.objects.filter(task_id__startswith="step/")}
    assert (rows["step/2"].parent_id, rows["step/2"].root_id) == ("step/1", "step/1")
    assert (rows["step/3"].parent_id, rows["step/3"].root_id) == ("step/2", "step/1")

    members = group(add.s(1, 1).set(task_id="member a"), add.s(2, 2).set(task_id="member,b"))
    batch = members.apply_async(task_id="batch-7")
    assert batch.id == "batch-7"
    assert batch.get(timeout=30) == [2, 4]
    batch.save()
    restored = GroupResult.restore("batch-7")
    assert [r.id for r in restored.results] == ["member a", "member,b"]
    assert restored.get(timeout=30) == [2, 4]
    assert set(TaskResult.objects.filter(group_id="batch-7")
               .values_list("task_id", flat=True)) == {"member a", "member,b"}

    summed = chord([add.s(1, 1).set(task_id="head-1"), add.s(2, 2).set(task_id="head-2")],
                   xsum.s().set(task_id="body"))()
    assert summed.id == "body"
    assert summed.get(timeout=30) == 6
    head = TaskResult.objects.get(task_id="head-1")
    assert TaskGroup.objects.filter(group_id=head.group_id).exists()
    assert TaskResult.objects.get(task_id="body").state == states.SUCCESS


def test_admin_pages_of_a_result_with_a_string_id(start_worker, admin_client):
    start_worker()
    parent_id, child_id = "invoice/2026_01?x=1", "mail for invoice"
    result = chain(add.s(1, 1).set(task_id=parent_id),
                   add.s(5).set(task_id=child_id)).apply_async()
    assert result.get(timeout=30) == 7
    # The admin's own quoting of a primary key in its URLs.
    from django.contrib.admin.utils import quote
    page = admin_client.get(reverse("admin:django_tasks_taskresult_change",
                                    args=[quote(child_id)]))
    assert page.status_code == 200
    content = page.content.decode()
    assert child_id in content
    parent_url = reverse("admin:django_tasks_taskresult_change", args=[quote(parent_id)])
    assert parent_url in content  # the parent is linked
    parent_page = admin_client.get(parent_url)
    assert parent_page.status_code == 200
    assert child_id in parent_page.content.decode()  # and lists its child
    results = reverse("admin:django_tasks_taskresult_changelist")
    listed = admin_client.get(results, {"q": parent_id}).context["cl"].result_list
    assert [r.task_id for r in listed] == [parent_id]
    # Text that is no id is still searched for in names.
    listed = admin_client.get(results, {"q": "tests.tasks.add"}).context["cl"].result_list
    assert {r.task_id for r in listed} == {parent_id, child_id}
    assert admin_client.get(results).status_code == 200

    waiting = add.apply_async((1, 1), task_id="later/1", countdown=3600)
    queued = reverse("admin:django_tasks_queuedmessage_changelist")
    listed = admin_client.get(queued, {"q": waiting.id}).context["cl"].result_list
    assert [m.task_id for m in listed] == ["later/1"]


def test_revoke_by_string_id(start_worker):
    waiting = echo.apply_async(("never",), task_id="nightly report", countdown=3600)
    assert AsyncResult("nightly report").revoke() == 1
    assert waiting.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        waiting.get(timeout=30)
    assert not QueuedMessage.objects.exists()


# Named ids: a new uuid each collection, and pytest-xdist's processes must
# collect the same tests.
@pytest.mark.parametrize("task_id", ["any-string-that-was-never-sent",
                                     str(uuid.uuid4()), "a\x00b", "x" * 1000],
                         ids=["string", "uuid4", "nul", "long"])
def test_an_id_never_sent_is_pending(task_id):
    result = AsyncResult(task_id)
    assert result.state == states.PENDING
    assert result.status == states.PENDING
    assert result.result is None and result.traceback is None
    assert not result.ready()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.2, interval=0.05)
    result.forget()
    assert result.revoke() == 0
    assert result.revoke(terminate=True) == 0
    assert result.state == states.PENDING
    assert GroupResult.restore(task_id) is None


def test_group_result_restore_of_an_id_never_saved_is_none():
    assert GroupResult.restore("not-a-uuid") is None
    assert GroupResult.restore(uuid.uuid4()) is None


def test_get_of_an_ignored_result_returns_none_at_once(start_worker):
    # Sent where no worker consumes: a get() that waited would time out.
    options = {"queue": "nobody-consumes"}
    ignored = add.apply_async((1, 2), ignore_result=True, **options)
    by_task = add_ignoring_result.apply_async((1, 2), **options)
    by_signature = add.s(1, 2).set(ignore_result=True).apply_async(**options)
    by_task_signature = add_ignoring_result.s(1, 2).apply_async(**options)
    for result in (ignored, by_task, by_signature, by_task_signature):
        assert result.ignored
        assert result.get(timeout=30) is None
        assert asyncio.run(result.aget(timeout=30)) is None
    assert not add.apply_async((1, 2), **options).ignored
    assert not add_ignoring_result.apply_async((1, 2), ignore_result=False, **options).ignored

    # Run: no success is stored, and an AsyncResult made from the id alone
    # cannot know it was ignored: PENDING, as in Celery.
    start_worker("-Q", "nobody-consumes")
    wait_until(lambda: not QueuedMessage.objects.filter(task_id=by_task.id).exists(),
               message="the ignored task to be acknowledged")
    assert not TaskResult.objects.filter(task_id=by_task.id).exists()
    later = AsyncResult(by_task.id)
    assert not later.ignored
    assert later.state == states.PENDING


@pytest.mark.parametrize("headers, problem", [
    ({"parent_id": 12345}, "header 'parent_id' is 12345"),
    ({"root_id": ["x"]}, "header 'root_id' is ['x']"),
    ({"group_id": ""}, "header 'group_id' is ''"),
    ({"chord": "x" * (MAX_TASK_ID_LENGTH + 1)}, "header 'chord' is 'xxx"),
])
def test_a_stored_message_whose_id_header_is_no_id_fails_and_the_worker_carries_on(
        start_worker, headers, problem):
    # A row of an older version, or forged: no result row could hold the id.
    forged = _forged_message(headers)
    start_worker("-P", "solo")
    with pytest.raises(DecodeError, match=f"corrupt message: {re.escape(problem)}"):
        forged.get(timeout=30)
    assert add.apply_async((1, 2), task_id="after the forged one").get(timeout=30) == 3


def _forged_message(headers):
    message = QueuedMessage.objects.create(
        task_id="forged", task_name="tests.tasks.add", queue="default",
        body='{"args": [1, 1], "kwargs": {}}', headers=headers)
    return AsyncResult(message.task_id)
