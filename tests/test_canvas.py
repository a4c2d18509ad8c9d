"""The canvas examples of the docs (docs/workflows.rst), run by real worker processes."""

import gc
import json
import uuid
import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks import AsyncResult, GroupResult, chain, chord, group, signature, states
from django_tasks.canvas import WRITE_EVERY, Plan
from django_tasks.exceptions import ChordError, EncodeError
from django_tasks.models import QueuedMessage, TaskGroup, TaskResult
from django_tasks.queue import enqueue, get_backend
from django_tasks.signatures import chunks, xmap, xstarmap
from testproject.tasks import add, mul, xsum
from tests.canvas_tasks import fail_with_value_error, note_error, note_value, sum_and_record
from tests.models import Execution, Note
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_signature_parts_and_repr():
    sig = add.s(2, 2)
    assert repr(sig) == "testproject.tasks.add(2, 2)"
    assert sig.args == (2, 2) and sig.kwargs == {} and not sig.immutable
    assert add.si(2, 2).immutable
    assert add.s(2).clone((8,)).args == (8, 2)
    assert add.si(2, 2).clone((8,)).args == (2, 2)
    assert add.signature((2, 2), countdown=10).options == {"countdown": 10}
    assert add.s(2).set(queue="q").options == {"queue": "q"}
    # A plain dict, and back: it can be stored with a message.
    copy = signature(dict(add.s(1, y=2).set(priority=3)))
    assert copy == add.s(1, y=2).set(priority=3) and repr(copy) == "testproject.tasks.add(1, y=2)"
    assert signature("testproject.tasks.add", args=(1, 1)).type is add
    assert repr(add.s(4, 4) | mul.s(8)) == "testproject.tasks.add(4, 4) | testproject.tasks.mul(8)"


def test_partial_signature_and_countdown(start_worker):
    start_worker()
    assert add.s(2).delay(8).get(timeout=10) == 10
    later = add.signature((2, 2), countdown=600).apply_async()
    row = QueuedMessage.objects.get(task_id=later.id)
    assert (row.available_at - timezone.now()).total_seconds() > 500
    assert later.state == states.PENDING


def test_group_results_in_call_order(start_worker):
    start_worker()
    result = group(add.s(i, i) for i in range(5))()
    assert isinstance(result, GroupResult)
    assert result.get(timeout=20) == [0, 2, 4, 6, 8]
    assert result.ready() and result.successful() and not result.failed()
    assert result.completed_count() == 5
    assert [r.id for r in result.results] == [r.id for r in result]
    assert group(add.s(i) for i in range(10))(10).get(timeout=20) == list(range(10, 20))


def test_group_enqueues_all_members_in_one_statement():
    table = QueuedMessage._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        result = group(add.s(i, i) for i in range(50)).apply_async()
    inserts = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT",
               "WITH")) and table in q["sql"]]
    assert len(inserts) == 1, inserts
    assert QueuedMessage.objects.filter(task_id__in=[r.id for r in result]).count() == 50



def _members():
    """Plain calls with every kind of option a member may carry (each completed by
    the group's one argument: a call that does not fit is a TypeError)."""
    return [add.s(2), add.si(3, 4).set(queue="other", priority=5), add.s(y=6),
            add.s(7).set(countdown=600, headers={"trace": "t-1"}),
            add.s(9).set(link=mul.s(2), expires=3600),
            add.s(11).set(task_id="0c0ffee0-0000-4000-8000-000000000001")]


def _stored(result):
    """The stored messages of a group's members, in call order, ids set aside."""
    rows = {row.task_id: row for row in QueuedMessage.objects.filter(
        task_id__in=[r.id for r in result])}
    stored = []
    for member in result:
        row = rows[member.id]
        headers = dict(row.headers)
        assert headers.pop("group_id") == result.id
        stored.append((row.task_name, row.queue, row.priority, row.body, headers,
                       round((row.available_at - row.created_at).total_seconds()),
                       None if row.expires is None
                       else round((row.expires - row.created_at).total_seconds())))
    return stored


def test_a_group_of_plain_calls_is_planned_without_copies_and_stores_what_the_general_path_does():
    plain = _members()
    before = [dict(member, options=dict(member.options)) for member in plain]
    fused = group(plain).apply_async(["front"])
    # The caller's signatures are left as they were: applying again gives new ids.
    assert [dict(member, options=dict(member.options)) for member in plain] == before
    assert fused.results[-1].id == "0c0ffee0-0000-4000-8000-000000000001"
    again = group(plain[:-1]).apply_async(["front"])
    assert not {r.id for r in again} & {r.id for r in fused} and again.id != fused.id
    # An option given to apply_async (here one that changes nothing) takes the
    # general path: copy, freeze, plan.
    stored = _stored(fused)
    QueuedMessage.objects.filter(task_id="0c0ffee0-0000-4000-8000-000000000001").delete()
    general = group(_members()).apply_async(["front"], serializer="json")
    assert stored == _stored(general)
    assert [r.id for r in general][-1] == "0c0ffee0-0000-4000-8000-000000000001"


def test_a_large_group_is_one_copy_in_one_transaction_and_wakes_an_idle_worker(
        start_worker, postgres_only):
    poll_interval = 30.0
    start_worker("-c", "2", env={"TESTS_POLL_INTERVAL": str(poll_interval)})
    size = 300  # above the size from which the members are streamed with COPY
    with CaptureQueriesContext(connection) as queries:
        result = group(add.s(i, i) for i in range(size)).apply_async()
    statements = [q["sql"].split()[0].upper() for q in queries]
    assert statements.count("COPY") == 1 and "INSERT" not in statements, statements
    # The idle worker was woken by the group's NOTIFY, not by its next poll.
    assert result.get(timeout=poll_interval / 2) == [2 * i for i in range(size)]
    rows = TaskResult.objects.filter(group_id=result.id)
    assert rows.count() == size
    assert {r.date_created for r in rows} == {rows[0].date_created}  # one enqueue instant


def test_a_large_group_rolled_back_leaves_nothing():
    with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
        result = group(add.s(i, i) for i in range(300)).apply_async()
        assert QueuedMessage.objects.filter(task_id__in=[r.id for r in result]).count() == 300
        raise RuntimeError("roll back")
    assert not QueuedMessage.objects.exists()


def test_a_large_group_failing_midway_leaves_the_callers_transaction_usable():
    bad = group([*(add.s(i, i) for i in range(3 * WRITE_EVERY)), add.s(object(), 1)])
    with transaction.atomic():
        kept = add.delay(1, 1)
        # Its first members were already streamed when the last one failed.
        with pytest.raises(EncodeError, match="not JSON serializable"):
            bad.apply_async()
        after = group(add.s(i, i) for i in range(5)).apply_async()
    ids = {str(i) for i in QueuedMessage.objects.values_list("task_id", flat=True)}
    assert ids == {kept.id, *(r.id for r in after)}


def test_a_large_bulk_enqueue_outside_a_transaction_is_all_or_nothing():
    messages = [add.build_message((i, i)) for i in range(300)]
    messages[-1].task_id = messages[0].task_id
    with pytest.raises(IntegrityError):
        enqueue(messages)
    assert not QueuedMessage.objects.exists()
    enqueue(messages[:-1])
    assert QueuedMessage.objects.count() == 299


def test_a_large_group_is_written_in_batches_while_it_is_planned(monkeypatch):
    planned, batches = [], []
    original_add = Plan.add
    writer_class = type(get_backend().message_writer())
    original_write = writer_class.write

    def add_and_count(plan, message):
        planned.append(1)
        return original_add(plan, message)

    def write_and_record(writer, messages):
        batches.append((len(messages), len(planned)))
        original_write(writer, messages)

    monkeypatch.setattr(Plan, "add", add_and_count)
    monkeypatch.setattr(writer_class, "write", write_and_record)
    size = 2 * WRITE_EVERY + 7
    with CaptureQueriesContext(connection) as queries:
        result = group(add.s(i, i) for i in range(size)).apply_async()
    # Each batch went out as soon as it was planned, long before the last member.
    assert batches[:2] == [(WRITE_EVERY, WRITE_EVERY), (WRITE_EVERY, 2 * WRITE_EVERY)]
    assert QueuedMessage.objects.filter(task_id__in=[r.id for r in result]).count() == size
    if connection.vendor == "postgresql":  # all of it one COPY, then its NOTIFY
        statements = [q["sql"].split()[0].upper() for q in queries]
        assert statements.count("COPY") == 1 and "INSERT" not in statements, statements


def test_a_large_bulk_enqueue_stores_every_timestamp_and_header_as_given():
    india = zoneinfo.ZoneInfo("Asia/Kolkata")  # +05:30: not the database's time zone
    eta = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=india)
    messages = [add.build_message((i, i), countdown=i, expires=timedelta(hours=i + 1),
                                  headers={"note": f"café {i}"}) for i in range(300)]
    messages += [add.build_message((0, 0), eta=eta, expires=eta + timedelta(days=1)),
                 add.build_message((0, 0))]
    enqueue(messages)
    rows = {str(row.task_id): row for row in QueuedMessage.objects.all()}
    assert len(rows) == len(messages)
    for message in messages:
        row = rows[message.task_id]
        assert (row.available_at, row.expires, row.created_at) == (
            message.available_at, message.expires, message.created_at), message.task_id
        assert row.headers == message.headers
    assert rows[messages[-1].task_id].expires is None
    assert rows[messages[-2].task_id].available_at == eta


def test_applying_a_large_group_holds_off_the_cyclic_collector_and_restores_it():
    collections = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    large = group(add.s(i, i) for i in range(2000))
    gc.callbacks.append(count)
    try:
        large.apply_async()
        during_apply = len(collections)
        assert gc.isenabled()
        # A failing member (an argument JSON cannot store) turns it back on too.
        with pytest.raises(EncodeError):
            group([*(add.s(i, i) for i in range(1500)), add.s(object(), 1)]).apply_async()
        assert gc.isenabled()
        # A chain whose first step is a large group (applied as a chord).
        chained = chain(group(add.s(i, i) for i in range(2000)), xsum.s())
        before = len(collections)
        chained.apply_async()
        during_chain = len(collections) - before
        assert gc.isenabled()
        # Left off if the caller had turned it off.
        gc.disable()
        try:
            group(add.s(i, i) for i in range(2000)).apply_async()
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        gc.callbacks.remove(count)
    # Unpaused, 2,000 members start dozens of collections (one per 700 new
    # objects); paused, at most the one put off until the way out.
    assert during_apply <= 1 and during_chain <= 1, (during_apply, during_chain)
    assert QueuedMessage.objects.count() == 6000


def test_chains_and_parent(start_worker):
    start_worker()
    assert chain(add.s(4, 4) | mul.s(8))().get(timeout=10) == 64
    assert chain(add.s(4) | mul.s(8))(4).get(timeout=10) == 64
    result = (add.s(4, 4) | mul.s(8))()
    assert result.get(timeout=10) == 64
    assert result.parent.get(timeout=10) == 8
    # The parent link is stored too, for results looked up by id later.
    assert AsyncResult(result.id).parent.id == result.parent.id
    assert AsyncResult(result.id).parent.get(timeout=10) == 8


def test_chords(start_worker):
    start_worker()
    result = chord((add.s(i, i) for i in range(10)), xsum.s())()
    assert result.get(timeout=20) == 90
    assert result.parent.get(timeout=10) == [2 * i for i in range(10)]
    assert (group(add.s(i, i) for i in range(10)) | xsum.s())().get(timeout=20) == 90
    assert chord([], xsum.s())().get(timeout=10) == 0


def test_map_starmap_chunks(start_worker):
    start_worker()
    assert add.starmap([(2, 2), (4, 4)]).delay().get(timeout=10) == [4, 8]
    assert xsum.map([[1, 2], [3]]).delay().get(timeout=10) == [3, 3]
    a, b = range(10), range(10, 20)
    result = add.chunks(zip(a, b, strict=True), 4)()
    assert result.get(timeout=20) == [[10, 12, 14, 16], [18, 20, 22, 24], [26, 28]]


def test_map_starmap_chunks_repr_and_round_trip():
    """Their repr is Celery's, and as stored with a message (a dict, through
    JSON) they come back as the same class with the same repr and options."""
    cases = [
        (xsum.map([[1, 2], [3]]).set(queue="q"), xmap,
         "[testproject.tasks.xsum(x) for x in [[1, 2], [3]]]"),
        (add.starmap([(2, 2)]).set(priority=3), xstarmap,
         "[testproject.tasks.add(*x) for x in [(2, 2)]]"),
        (add.chunks([(1, 1), (2, 2), (3, 3)], 2).set(queue="q"), chunks,
         "chunks(testproject.tasks.add(), 2)"),
    ]
    for sig, cls, text in cases:
        assert type(sig) is cls and repr(sig) == text
        back = signature(json.loads(json.dumps(sig)))
        assert type(back) is cls and back == json.loads(json.dumps(sig))
        assert back.options == sig.options and back.immutable == sig.immutable
        assert repr(back) == text.replace("(2, 2)", "[2, 2]")
        assert type(back.kwargs["task"]) is type(sig.kwargs["task"])
        assert signature(dict(sig)) == sig and repr(signature(dict(sig))) == text


def test_group_in_the_middle_of_a_chain(start_worker):
    start_worker()
    result = chain(add.s(1, 1), group(add.s(1), add.s(2)), xsum.s(), mul.s(10))()
    assert result.get(timeout=20) == 70


def test_nested_canvases(start_worker):
    start_worker()
    chains = group(chain(add.s(i, i), mul.s(10)) for i in range(3))()
    assert chains.get(timeout=20) == [0, 20, 40]
    body_is_chain = chord([add.s(1, 1), chain(add.s(2, 2), mul.s(2))], xsum.s() | mul.s(3))()
    assert body_is_chain.get(timeout=20) == (2 + 8) * 3
    nested_groups = group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3))()
    assert nested_groups.get(timeout=20) == [2, 4, 6]  # unrolled, as in Celery
    chord_in_chord = chord([chord([add.s(1, 1), add.s(2, 2)], xsum.s()), add.s(5, 5)], xsum.s())()
    assert chord_in_chord.get(timeout=20) == 16
    ends_in_group = chain(add.s(1, 1), group(add.s(1), add.s(2)))()
    assert isinstance(ends_in_group, GroupResult)
    assert ends_in_group.get(timeout=20) == [3, 4]
    assert ends_in_group.parent.get(timeout=10) == 2


def test_chord_body_runs_once_with_two_workers(start_worker):
    start_worker()
    start_worker()
    key = str(uuid.uuid4())
    result = chord((add.s(i, i) for i in range(40)), sum_and_record.s(key))()
    assert result.get(timeout=60) == sum(2 * i for i in range(40))
    wait_until(lambda: not QueuedMessage.objects.exists(), message="an empty queue")
    assert Execution.objects.filter(key=key).count() == 1
    assert TaskGroup.objects.get(group_id=result.parent.id).remaining == 0


@pytest.mark.parametrize("repeat", range(3))
def test_chord_of_1000_members_on_two_workers_finishes_body_exactly_once(
        postgres_only, start_worker, repeat):
    start_worker("--prefetch-multiplier=10")
    start_worker("--prefetch-multiplier=10")
    key = str(uuid.uuid4())
    result = chord((add.s(i, i) for i in range(1000)), sum_and_record.s(key))()
    assert result.get(timeout=300) == sum(2 * i for i in range(1000))
    wait_until(lambda: not QueuedMessage.objects.exists(), message="an empty queue")
    assert Execution.objects.filter(key=key).count() == 1
    assert TaskGroup.objects.get(group_id=result.parent.id).remaining == 0


def test_failing_chord_member_fails_body_with_chord_error(start_worker):
    start_worker()
    key = str(uuid.uuid4())
    body = sum_and_record.s(key)
    body.link_error(note_error.s("chord"))
    result = chord([add.s(1, 1), fail_with_value_error.s(7), add.s(2, 2)], body)()
    failed_member = result.parent.results[1]
    with pytest.raises(ChordError, match=f"Dependency {failed_member.id} raised ValueError"):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    assert result.parent.failed() and result.parent.completed_count() == 2
    assert not Execution.objects.filter(key=key).exists()
    wait_until(lambda: Note.objects.filter(text=f"chord:{result.id}").exists(),
               message="the body's errback")


def test_failing_chain_step_fails_the_rest(start_worker):
    start_worker()
    result = chain(add.s(1, 1), fail_with_value_error.s(), mul.s(2), add.s(1))()
    with pytest.raises(ValueError, match=r"failed on \(2,\)"):
        result.get(timeout=20)
    assert result.parent.parent.state == states.FAILURE
    assert result.parent.parent.parent.get(timeout=10) == 2


def test_failing_chain_member_of_a_chord(start_worker):
    start_worker()
    result = chord([chain(add.s(1, 1), fail_with_value_error.s(), mul.s(2)), add.s(1, 1)],
                   xsum.s())()
    with pytest.raises(ChordError):
        result.get(timeout=20)


def test_link_and_link_error(start_worker):
    start_worker()
    ok = add.apply_async((2, 3), link=note_value.s("ok"))
    fail = fail_with_value_error.apply_async((1,), link_error=[note_error.s("err")])
    assert ok.get(timeout=10) == 5
    with pytest.raises(ValueError):
        fail.get(timeout=10)
    wait_until(lambda: Note.objects.count() == 2, message="both callbacks")
    assert sorted(Note.objects.values_list("text", flat=True)) == [f"err:{fail.id}", "ok:5"]


def test_group_result_save_restore_and_revoke():
    result = group(add.s(i, i) for i in range(3)).apply_async()
    result.save()
    restored = GroupResult.restore(result.id)
    assert [r.id for r in restored.results] == [r.id for r in result.results]
    assert GroupResult.restore(uuid.uuid4()) is None
    assert not restored.ready() and restored.completed_count() == 0
    assert restored.revoke() == 3
    assert [r.state for r in restored.results] == [states.REVOKED] * 3
    assert restored.ready() and restored.failed() is False and not restored.successful()


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_workflows_advance_in_every_pool(start_worker, pool):
    start_worker("-P", pool, "-c", "1" if pool == "solo" else "2")
    assert (add.s(4, 4) | mul.s(8))().get(timeout=20) == 64
    assert (group(add.s(i, i) for i in range(10)) | xsum.s())().get(timeout=20) == 90
    with pytest.raises(ChordError):
        chord([fail_with_value_error.s(1)], xsum.s())().get(timeout=20)
