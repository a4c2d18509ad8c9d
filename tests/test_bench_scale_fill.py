"""bench/run.py --scale fills its tables with SQL of its own (bench/drain_scale.py):
the rows must be what the worker and the site would have, or the bench
measures something else. Small counts, on the test database."""

import sys
from pathlib import Path

import pytest
from django.db import connection

from django_tasks.messages import is_task_id
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue import enqueue, get_backend
from django_tasks.testing import TEST_WORKER_ID, _register_test_worker
from tests.tasks import add

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import drain_scale  # noqa: E402

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres_only")]


def test_stored_results_are_a_day_of_time_ordered_ids_none_expired():
    with connection.cursor() as cursor:
        cursor.execute(drain_scale.FILL_RESULTS, {"count": 50})
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    results = list(TaskResult.objects.order_by("task_id"))
    assert len(results) == 50
    assert all(is_task_id(r.task_id) for r in results)
    # Ordered by id is ordered by date_done, as new_task_id()'s ids are.
    done = [r.date_done for r in results]
    assert done == sorted(done) and len(set(done)) == 50
    hours = [(now - d).total_seconds() / 3600 for d in done]
    assert all(0 < h <= 23 for h in hours)  # within RESULT_EXPIRES' default day


@pytest.mark.parametrize("behind", sorted(drain_scale.BEHIND))
def test_backlog_is_claimed_after_the_drained_tasks(behind):
    enqueue([add.build_message((1, 2)) for _ in range(3)])
    drained = set(QueuedMessage.objects.values_list("id", flat=True))
    priority, available_at, shift = drain_scale.BEHIND[behind]
    template = drain_scale.FILL_BACKLOG.replace(f"'{drain_scale.DRAINED}'",
                                                f"'{add.name}'")
    with connection.cursor() as cursor:
        if shift:
            cursor.execute(f"UPDATE {drain_scale.QUEUE_TABLE} "
                           f"SET available_at = available_at - {shift}")
        cursor.execute(template.format(available_at=available_at),
                       {"priority": priority, "count": 5})
    backlog = QueuedMessage.objects.exclude(id__in=drained)
    assert backlog.count() == 5
    assert set(backlog.values_list("task_name", flat=True)) == {drain_scale.BACKLOG}
    _register_test_worker("bench", ["default"])
    claimed = get_backend().claim(TEST_WORKER_ID, ["default"], 3, start=3)
    assert {m.id for m in claimed} == drained
