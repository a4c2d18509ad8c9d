"""Deep queues: the claim keeps run order behind future messages and stays
index-bound; the expiry sweep and the dashboard read a few index pages,
not the whole queue table."""

import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_tasks import AsyncResult, monitoring, states
from django_tasks.admin.dashboard import dashboard_figures
from django_tasks.exceptions import TaskRevokedError
from django_tasks.models import QueuedMessage
from django_tasks.queue import get_backend
from tests.tasks import add
from tests.workers import live_worker

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "deep"
# Rows a test puts behind the due ones: enough that reading them costs
# hundreds of pages (a claim stepping over them: 264; the sweep's scan:
# 1,006), where an index-bound query reads a few dozen (32; 3).
MANY = 50_000
FEW_BUFFERS = 100


def _message(priority, available_at, queue=QUEUE, expires=None):
    return QueuedMessage(task_id=uuid.uuid4(), task_name="tests.tasks.add", queue=queue,
                         priority=priority, available_at=available_at, expires=expires,
                         body='{"args": [1, 1], "kwargs": {}}', headers={})


def _claimed_in_order(claim):
    taken = []
    while batch := claim():
        taken += [(m.priority, m.available_at, m.id) for m in batch]
    return taken


@pytest.mark.parametrize("limit, start, queues", [
    (2, 2, [QUEUE]),            # one queue, all started: the one-queue statement
    (3, 1, [QUEUE, "other"]),   # several queues: the merged statement
])
def test_the_claim_takes_due_messages_in_run_order_behind_future_higher_ones(
        limit, start, queues):
    now = timezone.now()
    future = [_message(priority, now + timedelta(hours=1)) for priority in (9, 5, 5, 0)]
    due = [_message(5, now - timedelta(minutes=1)), _message(0, now - timedelta(minutes=3)),
           _message(0, now - timedelta(minutes=2)), _message(-2, now - timedelta(hours=1)),
           _message(9, now - timedelta(seconds=1)), _message(0, now - timedelta(minutes=3)),
           _message(3, now - timedelta(minutes=1), queue="other")]
    QueuedMessage.objects.bulk_create(future + due)
    backend, worker = get_backend(), live_worker()
    taken = _claimed_in_order(lambda: backend.claim(worker, queues, limit, start=start, pid=1))
    expected = sorted(((m.priority, m.available_at, m.id) for m in due if m.queue in queues),
                      key=lambda key: (-key[0], key[1], key[2]))
    assert taken == expected
    # The future ones were left alone.
    assert set(QueuedMessage.objects.filter(claimed_by__isnull=True, queue=QUEUE)
               .values_list("id", flat=True)) == {m.id for m in future}


def _fill(count, priority, available_at, expires=None):
    """``count`` messages in one statement (PostgreSQL's generate_series)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {QueuedMessage._meta.db_table} (task_id, task_name, queue, priority,"
            " available_at, expires, content_type, body, headers, deliveries, created_at)"
            " SELECT gen_random_uuid(), 'tests.tasks.add', %s, %s, %s, %s, 'json',"
            " '{\"args\": [1, 1], \"kwargs\": {}}', '{}', 0, now()"
            " FROM generate_series(1, %s)", [QUEUE, priority, available_at, expires, count])
        cursor.execute(f"ANALYZE {QueuedMessage._meta.db_table}")


def _buffers(sql, params=None, plan_cache_mode="auto"):
    """Pages ``sql`` reads, under EXPLAIN ANALYZE, rolled back; its
    parameters bound by the server, as the queue's own statements are."""
    with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
        # Custom plans are made for the parameters' values; a prepared
        # statement run often gets a generic one.
        cursor.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    plan = plan[0]["Plan"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def _buffers_of_queries(call):
    """Pages each SELECT that ``call()`` runs reads: [(buffers, sql)]."""
    with CaptureQueriesContext(connection) as queries:
        call()
    return [(_buffers(q["sql"]), q["sql"]) for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))]


@pytest.mark.usefixtures("postgres_only")
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("statement, queues", [("CLAIM_ONE_QUEUE_SQL", [QUEUE]),
                                               ("CLAIM_SQL", [QUEUE, "other"])])
def test_a_claim_behind_many_future_higher_priority_messages_reads_few_pages(
        statement, queues, plan_cache_mode):
    from django_tasks.queue import postgresql

    now = timezone.now()
    _fill(MANY, 5, now + timedelta(days=1))
    QueuedMessage.objects.bulk_create([_message(0, now - timedelta(minutes=1))])
    sql = postgresql._written_in(getattr(postgresql, statement), 4, len(queues))
    worker = live_worker()
    params = {"worker": str(worker), "pid": 1, "queue": QUEUE, "queues": queues, "start": 4}
    assert _buffers(sql, params, plan_cache_mode) < FEW_BUFFERS
    claimed = get_backend().claim(worker, queues, 4, start=4, pid=1)
    assert [m.priority for m in claimed] == [0]


@pytest.mark.usefixtures("postgres_only")
def test_the_expiry_sweep_reads_few_pages_of_a_deep_queue():
    now = timezone.now()
    _fill(MANY, 0, now - timedelta(hours=1))
    _fill(MANY // 10, 0, now - timedelta(hours=1), expires=now + timedelta(days=1))
    QueuedMessage.objects.bulk_create([_message(0, now, expires=now - timedelta(minutes=1))
                                       for _ in range(3)])
    from django_tasks.queue.postgresql import EXPIRED_WAITING_SQL

    sweep_at = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        expired = get_backend().expired_waiting(sweep_at, 1000)
    assert len(expired) == 3
    # The sweep's statement (its rows read tolerantly: see postgresql._tolerant).
    assert [q["sql"] for q in queries.captured_queries] == [EXPIRED_WAITING_SQL]
    assert _buffers(EXPIRED_WAITING_SQL, [sweep_at, 1000]) < FEW_BUFFERS


@pytest.mark.usefixtures("postgres_only")
def test_the_dashboard_reads_few_pages_of_a_deep_queue():
    now = timezone.now()
    _fill(MANY, 0, now - timedelta(hours=1))
    _fill(MANY, 5, now + timedelta(days=1))
    oldest = _message(0, now - timedelta(hours=2))
    QueuedMessage.objects.bulk_create([oldest])
    figures = dashboard_figures()
    (deep,) = figures["queues"]
    assert deep.waiting_capped and deep.waiting == monitoring.DEPTH_CAP
    assert deep.oldest.id == oldest.id
    # Counting DEPTH_CAP waiting messages reads about 180 pages (index and
    # heap); grouping the whole table read 1,819.
    heavy = [(buffers, sql) for buffers, sql in _buffers_of_queries(dashboard_figures)
             if buffers >= 3 * FEW_BUFFERS]
    assert not heavy


def test_the_dashboard_says_over_when_a_queue_is_deeper_than_it_counts(
        admin_client, monkeypatch):
    monkeypatch.setattr(monitoring, "DEPTH_CAP", 3)
    now = timezone.now()
    QueuedMessage.objects.bulk_create(
        [_message(0, now - timedelta(minutes=1)) for _ in range(5)]
        + [_message(0, now - timedelta(minutes=1), queue="shallow") for _ in range(2)])
    page = admin_client.get(reverse("admin:django_tasks_dashboard_fragment")).content.decode()
    assert '<td class="number waiting">over 3</td>' in page
    assert '<td class="number waiting">2</td>' in page
    assert '<span class="value" id="dashboard-waiting">over 5</span>' in page


def test_expired_messages_are_swept_by_housekeeping(start_worker):
    # Messages of a queue no worker consumes: only housekeeping ends them.
    now = timezone.now()
    messages = [_message(priority, now - timedelta(minutes=1), queue="nobody",
                         expires=now - timedelta(seconds=1)) for priority in (0, 9)]
    kept = _message(0, now - timedelta(minutes=1), queue="nobody",
                    expires=now + timedelta(days=1))
    QueuedMessage.objects.bulk_create([*messages, kept])
    start_worker()
    for message in messages:
        with pytest.raises(TaskRevokedError, match="expired"):
            AsyncResult(message.task_id).get(timeout=30)
        assert AsyncResult(message.task_id).state == states.REVOKED
    assert add.delay(1, 2).get(timeout=30) == 3
    assert QueuedMessage.objects.filter(id=kept.id, claimed_by__isnull=True).exists()
