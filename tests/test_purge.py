"""purge_results deletes results older than RESULT_EXPIRES, in batches."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_tasks import states
from django_tasks.maintenance import purge_expired_results
from django_tasks.models import TaskGroup, TaskResult

pytestmark = pytest.mark.django_db(transaction=True)


def _results(count, age):
    done = timezone.now() - age
    TaskResult.objects.bulk_create(
        TaskResult(task_id=f"00000000-0000-0000-{int(age.total_seconds()) % 10000:04d}-{i:012d}",
                   task_name="tests.tasks.add", state=states.SUCCESS, result="1",
                   date_done=done)
        for i in range(count))


def test_purge_command_deletes_only_expired_results():
    _results(25, timedelta(days=2))
    _results(5, timedelta(hours=1))
    out = StringIO()
    call_command("purge_results", "--batch-size", "7", stdout=out)
    assert "Purged 25 expired result(s) and 0 group/chord row(s)." in out.getvalue()
    assert TaskResult.objects.count() == 5


def test_purge_honours_result_expires_setting():
    _results(3, timedelta(minutes=20))
    with override_settings(DJANGO_TASKS={"RESULT_EXPIRES": timedelta(minutes=10)}):
        assert purge_expired_results().results == 3
    assert not TaskResult.objects.exists()


def test_result_expires_none_keeps_everything():
    _results(3, timedelta(days=400))
    out = StringIO()
    with override_settings(DJANGO_TASKS={"RESULT_EXPIRES": None}):
        call_command("purge_results", stdout=out)
    assert "nothing purged" in out.getvalue()
    assert TaskResult.objects.count() == 3


def test_older_than_option():
    _results(4, timedelta(minutes=5))
    out = StringIO()
    call_command("purge_results", "--older-than", "60", stdout=out)
    assert "Purged 4 expired result(s) and 0 group/chord row(s)." in out.getvalue()


def test_purge_deletes_old_groups_and_finished_chords_but_keeps_an_unfinished_chord():
    old = timezone.now() - timedelta(days=2)
    rows = {"old group": (old, None, None), "old finished chord": (old, {"task": "b"}, 0),
            "old unfinished chord": (old, {"task": "b"}, 2),
            "new group": (timezone.now(), None, None)}
    ids = {}
    for name, (created, body, remaining) in rows.items():
        ids[name] = TaskGroup.objects.create(group_id=str(uuid.uuid4()), results=[],
                                             chord_body=body, remaining=remaining,
                                             date_created=created).group_id
    out = StringIO()
    call_command("purge_results", "--batch-size", "1", stdout=out)
    assert "and 2 group/chord row(s)." in out.getvalue()
    kept = set(TaskGroup.objects.values_list("group_id", flat=True))
    assert kept == {ids["old unfinished chord"], ids["new group"]}
