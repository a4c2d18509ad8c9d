"""Behind a real PgBouncer in transaction pooling mode (LISTEN_NOTIFY and
PREPARED_STATEMENTS off, as docs/worker.rst says for it): workers, producers and
result waits work through it, nothing is lost or run twice, and nothing the
worker does stays in a server session for the next client (PgBouncer's
single server connection here is shared by every client in turn)."""

from collections import Counter

import pytest
from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings

from django_tasks import chord, group, states
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.queue import enqueue
from tests.canvas_tasks import succeed_on_third_attempt, sum_and_record
from tests.models import Execution
from tests.pgbouncer import django_connected_through, session_state
from tests.tasks import add, record, sleep_for
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# What a user sets behind PgBouncer in transaction mode (version 1.18 here,
# which passes named prepared statements to whichever server it picks).
BEHIND_PGBOUNCER = {"TESTS_LISTEN_NOTIFY": "0", "TESTS_PREPARED_STATEMENTS": "0"}


@pytest.fixture
def through_pgbouncer(pgbouncer):
    """This process's queue calls through ``pgbouncer``, set up as behind it."""
    user_settings = {**settings.DJANGO_TASKS, "LISTEN_NOTIFY": False,
                     "PREPARED_STATEMENTS": False}
    with override_settings(DJANGO_TASKS=user_settings), django_connected_through(pgbouncer):
        yield pgbouncer


def start_behind(start_worker, pgbouncer, *args):
    return start_worker(*args, env=BEHIND_PGBOUNCER, database=pgbouncer.database)


POOLS = {"prefork": ("-P", "prefork", "-c", "2"), "threads": ("-P", "threads", "-c", "4")}


@pytest.mark.parametrize("pool", POOLS)
def test_a_worker_drains_a_batch_through_pgbouncer_each_task_once(start_worker, pgbouncer,
                                                                   pool):
    count = 120
    enqueue([record.build_message((f"k{i}",)) for i in range(count)]
            + [succeed_on_third_attempt.build_message((f"retried{i}", 0)) for i in range(3)])
    start_behind(start_worker, pgbouncer, *POOLS[pool])

    wait_until(lambda: not QueuedMessage.objects.exists(), timeout=120,
               message="the queue to drain")
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert runs == {**{f"k{i}": 1 for i in range(count)},
                    **{f"retried{i}": 3 for i in range(3)}}
    assert Counter(TaskResult.objects.values_list("state", flat=True)) \
        == {states.SUCCESS: count + 3}


def test_producers_and_result_waits_work_through_pgbouncer(start_worker, through_pgbouncer):
    start_behind(start_worker, through_pgbouncer, *POOLS["prefork"])

    assert add.delay(2, 3).get(timeout=60) == 5
    # Sent for later: get() polls until the worker has run it.
    assert add.apply_async((4, 5), countdown=1).get(timeout=60) == 9
    with transaction.atomic():
        in_transaction = add.delay(1, 1)
    assert in_transaction.get(timeout=60) == 2
    assert group(add.s(i, i) for i in range(10)).apply_async().get(timeout=60) \
        == [2 * i for i in range(10)]
    # A group this large is streamed with COPY.
    assert group(add.s(i, 1) for i in range(250)).apply_async().get(timeout=120) \
        == [i + 1 for i in range(250)]
    header = group(sleep_for.s(0.01) for _ in range(3))
    assert chord(header)(sum_and_record.s("chord")).get(timeout=60) == pytest.approx(0.03)
    assert Execution.objects.filter(key="chord").count() == 1


@pytest.mark.parametrize("pool", POOLS)
def test_nothing_the_worker_does_stays_in_the_session_for_the_next_client(
        start_worker, pgbouncer, pool):
    worker = start_behind(start_worker, pgbouncer, *POOLS[pool])
    enqueue([record.build_message((f"k{i}",)) for i in range(20)]
            + [succeed_on_third_attempt.build_message(("retried", 0))])
    wait_until(lambda: TaskResult.objects.filter(state=states.SUCCESS).count() == 21,
               timeout=60, message="the tasks to succeed")
    assert worker.proc.poll() is None

    with pgbouncer.connect() as client:
        # The server session every client of this PgBouncer gets in turn.
        assert client.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert session_state(client) == {}


def test_prepared_statements_left_on_behind_this_pgbouncer_fail_saying_what_to_set(
        start_worker, pgbouncer):
    # PgBouncer 1.18 hands every client's prepared statements to whichever
    # client gets the server session next: the two children's claims collide.
    # Two queues: a one-queue claim goes through libpq, prepared under a name
    # its text decides, which both children may share; the claim of several
    # queues is psycopg's, under names each connection numbers for itself.
    worker = start_worker(*POOLS["prefork"], "-Q", "default,other",
                          env={**BEHIND_PGBOUNCER, "TESTS_PREPARED_STATEMENTS": "1"},
                          database=pgbouncer.database, ready=False)
    worker.wait_for("set DJANGO_TASKS['PREPARED_STATEMENTS'] = False", timeout=60)
