"""A group of plain signatures is planned in one pass (Plan.add_calls): the
rows it stores are those the general path (clone, freeze, plan each member)
stores for the same group."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import transaction
from django.test import override_settings

from django_tasks import group, signals
from django_tasks.canvas import WRITE_EVERY
from django_tasks.exceptions import EncodeError
from django_tasks.message_builder import MessageBuilder
from django_tasks.models import QueuedMessage
from django_tasks.queue import enqueue
from testproject.tasks import add, mul
from tests.rate_tasks import limited
from tests.tasks import add_ignoring_result, echo, limited_span

pytestmark = pytest.mark.django_db(transaction=True)


def _rows_of(result):
    """The stored messages of a group's members, in the members' order, as
    what the two paths must agree on: the ids become their positions."""
    ids = [member.id for member in result.results]
    rows = {str(row.task_id): row for row in QueuedMessage.objects.filter(task_id__in=ids)}
    assert len(rows) == len(ids)
    shapes = []
    for task_id in ids:
        row = rows[task_id]
        headers = dict(row.headers)
        assert headers.pop("group_id") == result.id
        shapes.append((row.task_name, row.queue, row.priority, row.content_type,
                       json.loads(row.body), headers, row.available_at - row.created_at,
                       row.expires and row.expires - row.created_at))
    return shapes


def _both_ways(make_group, *args):
    """Apply ``make_group()`` as it is, then with an id of its own (an
    option of the group: the general path); the rows of each."""
    one_pass = make_group().apply_async(args)
    general = make_group().apply_async(args, task_id="the-general-path")
    assert general.id == "the-general-path"
    return _rows_of(one_pass), _rows_of(general)


def _counting_builds(monkeypatch):
    builds = []
    original = MessageBuilder.build

    def build(builder, *args, **kwargs):
        builds.append(builder.task.name)
        return original(builder, *args, **kwargs)

    monkeypatch.setattr(MessageBuilder, "build", build)
    return builds


def test_a_group_of_plain_signatures_stores_the_rows_of_the_general_path(monkeypatch):
    builds = _counting_builds(monkeypatch)

    def make_group():
        return group([*(add.s(i, i) for i in range(WRITE_EVERY + 3)), mul.si(2, 3),
                      add.s(x=1, y=2), add_ignoring_result.s(4, 5),
                      add_ignoring_result.s(6, 7), limited.s(7), limited.s(8),
                      add.s("text", "é"), mul.s(3, 4)])

    one_pass, general = _both_ways(make_group)
    assert one_pass == general
    # One build per task in the one pass (the others repeat it), one per member otherwise.
    assert builds.count("testproject.tasks.add") == 1 + len(general) - 6
    # The task's own options, in the headers of its repeated members too.
    assert {"ignore_result": True}.items() <= one_pass[-5][5].items()
    assert "rate_limit" in one_pass[-3][5]
    assert one_pass[-2][4] == {"args": ["text", "é"], "kwargs": {}}


def test_the_groups_arguments_are_prepended_as_in_the_general_path():
    one_pass, general = _both_ways(
        lambda: group([add.s(1), add.si(2, 3), mul.s(y=4), add.s(5)]), 10)
    assert one_pass == general
    assert [shape[4]["args"] for shape in one_pass] == [[10, 1], [2, 3], [10], [10, 5]]


def test_members_with_options_or_per_call_headers_take_the_general_path_in_the_same_group(
        monkeypatch):
    def make_group():
        return group([add.s(1, 1), add.s(2, 2).set(queue="elsewhere", priority=7),
                      add.s(3, 3).set(countdown=60, expires=timedelta(hours=2)),
                      limited_span.s("key-a"), limited_span.s("key-b"), add.s(4, 4),
                      add.s(5, 5).set(link=mul.s(2)), add.s(6, 6)])

    builds = _counting_builds(monkeypatch)
    one_pass, general = _both_ways(make_group)
    assert one_pass == general
    # add: its first plain member, and the three with options; each concurrency-limited call.
    assert builds[:6].count("testproject.tasks.add") == 4
    assert builds[:6].count("tests.tasks.limited_span") == 2
    assert one_pass[1][1:3] == ("elsewhere", 7)
    assert one_pass[2][6] == timedelta(seconds=60) and one_pass[2][7] == timedelta(hours=2)
    assert one_pass[3][5]["concurrency"] != one_pass[4][5]["concurrency"]
    assert one_pass[6][5]["link"][0]["task"] == "testproject.tasks.mul"


def test_a_group_with_a_canvas_member_is_planned_as_before():
    one_pass, general = _both_ways(lambda: group([add.s(1, 1), add.starmap([(2, 2), (3, 3)])]))
    assert one_pass == general
    assert [shape[0] for shape in one_pass] == ["testproject.tasks.add", "django_tasks.starmap"]


def test_each_member_meets_the_before_publish_receivers():
    def before(headers, **extra):
        headers["trace"] = f"trace-{headers['id']}"

    signals.before_task_publish.connect(before)
    try:
        result = group(add.s(i, i) for i in range(WRITE_EVERY + 2)).apply_async()
    finally:
        signals.before_task_publish.disconnect(before)
    rows = QueuedMessage.objects.filter(task_id__in=[r.id for r in result.results])
    assert {row.headers["trace"] for row in rows} == {f"trace-{r.id}" for r in result.results}


def test_bad_arguments_of_a_member_fail_the_call_and_write_nothing():
    members = [add.s(i, i) for i in range(2 * WRITE_EVERY)]
    with pytest.raises(TypeError):
        group([*members, add.s(1, 2, 3)]).apply_async()
    with transaction.atomic():
        with pytest.raises(EncodeError, match="not JSON serializable"):
            group([*members, add.s(object(), 1)]).apply_async()
        kept = group(members[:3]).apply_async()
    assert set(map(str, QueuedMessage.objects.values_list("task_id", flat=True))) \
        == {r.id for r in kept.results}


def test_a_members_own_task_id_is_kept_and_checked():
    result = group([add.s(1, 1).set(task_id="mine"), add.s(2, 2)]).apply_async()
    assert result.results[0].id == "mine"
    assert QueuedMessage.objects.filter(task_id__in=["mine", result.results[1].id]).count() == 2
    with pytest.raises(ValueError, match="cannot be stored"):
        group([add.s(1, 1).set(task_id=""), add.s(2, 2)]).apply_async()


def test_a_repeated_members_size_is_checked_in_utf8_bytes():
    # 4-byte characters: the member's text is a quarter of its size.
    with override_settings(DJANGO_TASKS={"MAX_MESSAGE_SIZE": 1000}):
        with pytest.raises(EncodeError, match="too large"):
            group(echo.s(1), echo.s("\U0001f600" * 240)).apply_async()
        sent = group(echo.s(1), echo.s("\U0001f600" * 200)).apply_async()
    assert QueuedMessage.objects.get(task_id=sent.results[1].id).body \
        == json.dumps({"args": ["\U0001f600" * 200], "kwargs": {}}, ensure_ascii=False,
                      separators=(",", ":"))


STORED = ("task_name", "queue", "priority", "available_at", "expires", "content_type", "body",
          "headers", "deliveries", "created_at", "claimed_by", "concurrency_key", "holds_slot")


def test_messages_written_by_copy_are_stored_as_by_insert(postgres_only):
    """A batch of COPY_FROM messages or more goes by COPY (binary rows made
    by the client), fewer by INSERT: the same messages are the same rows."""
    from django_tasks.queue.postgresql import COPY_FROM

    plus_two = timezone(timedelta(hours=2))
    eta = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=plus_two)
    samples = [
        echo.build_message(("plain",)),
        echo.build_message(("tab\there, new\nline, back\\slash, é, \U0001f600",),
                           queue="queue-é\tx", priority=9),
        echo.build_message(({"nested": [1, 2.5, None, True]},), eta=eta,
                           expires=datetime(2031, 2, 4, tzinfo=plus_two)),
        echo.build_message((), countdown=3600, expires=90, headers={"k": "v\\\n"}),
        echo.build_message(("old",), eta=datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC)),
        mul.build_message((2, 3), priority=0, serializer="json"),
    ]
    repeats = -(-COPY_FROM // len(samples))
    by_copy = [dataclasses.replace(m, task_id=f"copy-{n}-{i}")
               for n in range(repeats) for i, m in enumerate(samples)]
    by_insert = [dataclasses.replace(m, task_id=f"insert-{i}") for i, m in enumerate(samples)]
    # Alike but for their ids (a group's members without arguments): spliced at once.
    alike = [dataclasses.replace(samples[3], task_id=f"alike-{n:04}-3") for n in range(COPY_FROM)]
    with transaction.atomic():
        enqueue(by_copy)
        enqueue(by_insert)
        enqueue(alike)

    def stored(prefix):
        return {row["task_id"].split("-")[-1]: tuple(row[c] for c in STORED)
                for row in QueuedMessage.objects.filter(task_id__startswith=prefix).values()}

    copied = {row["task_id"] for row in QueuedMessage.objects.filter(task_id__startswith="copy-")
              .values("task_id")}
    assert len(copied) == len(by_copy)
    inserted = stored("insert-")
    assert len(inserted) == len(samples)
    assert stored("copy-") == inserted
    assert QueuedMessage.objects.filter(task_id__startswith="alike-").count() == COPY_FROM
    assert stored("alike-") == {"3": inserted["3"]}
    assert inserted["2"][3] == eta and inserted["4"][3].year == 1999


def test_a_nul_character_in_a_copied_text_is_refused_as_psycopg_refuses_it(postgres_only):
    from django.db import DataError

    from django_tasks.queue.postgresql import COPY_FROM

    with pytest.raises(DataError, match="NUL"):
        group(add.s(i, i) for i in range(COPY_FROM)).apply_async(queue="bad\x00queue")
    assert not QueuedMessage.objects.exists()
