"""The database connection dropping in the middle of a flow-control gate.

The consumer retries a gate that a database error cut short, on the same
claimed messages (worker/flow_gate.py): none is lost, none runs twice, and
the limit holds. The connection is cut where it hurts by the server itself:
a trigger terminates the session doing the gate's write, once.
"""

import math
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_tasks import states
from django_tasks.models import QueuedMessage, RateBucket, TaskResult
from django_tasks.queue import get_backend
from django_tasks.queue.base import PARKED
from django_tasks.rate_limits import TOLERANCE
from django_tasks.testing import TEST_WORKER_ID, _register_test_worker
from django_tasks.worker import flow_gate
from tests.models import Execution
from tests.rate_tasks import limited_record
from tests.tasks import limited_span
from tests.test_concurrency_limit import _all_done, _most_at_once, _spans
from tests.test_rate_limit import JITTER, _most_in_a_second, _starts

pytestmark = pytest.mark.django_db(transaction=True)

# Cuts the session that fires it, the first time only (a sequence: not
# rolled back with the transaction the cut aborts).
CUT_FUNCTION = """
CREATE FUNCTION tests_cut_once() RETURNS trigger AS $$
BEGIN
    IF nextval('tests_cuts') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql
"""


@pytest.fixture
def cut_once(postgres_only, transactional_db):
    """``cut_once(when)``: terminate the session whose update of a queued
    message first matches ``when`` (a trigger's WHEN condition); returns a
    function telling whether it did."""

    def install(when):
        with connection.cursor() as cursor:
            cursor.execute("CREATE SEQUENCE tests_cuts")
            cursor.execute(CUT_FUNCTION)
            cursor.execute("CREATE TRIGGER tests_cut AFTER UPDATE ON django_tasks_queuedmessage "
                           f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION tests_cut_once()")

        def fired():
            with connection.cursor() as cursor:
                cursor.execute("SELECT last_value, is_called FROM tests_cuts")
                _value, called = cursor.fetchone()
            return called

        return fired

    yield install
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS tests_cut ON django_tasks_queuedmessage")
        cursor.execute("DROP FUNCTION IF EXISTS tests_cut_once()")
        cursor.execute("DROP SEQUENCE IF EXISTS tests_cuts")


def test_a_slot_admission_cut_short_is_decided_once_reconnected(start_worker, cut_once):
    fired = cut_once("NEW.holds_slot AND NOT OLD.holds_slot")
    results = [limited_span.delay(f"k{i % 2}", 0.2) for i in range(12)]
    worker = start_worker("-P", "threads", "-c", "4")
    _all_done(results)
    assert fired()
    worker.wait_for("Database unavailable")
    spans = _spans("limited")
    assert sorted(spans) == ["k0", "k1"]
    # Each message ran once, and never more than the limit of a key at once.
    assert sum(len(s) for s in spans.values()) == len(results)
    assert max(_most_at_once(s) for s in spans.values()) <= 2
    assert set(TaskResult.objects.values_list("deliveries", flat=True)) == {1}


def test_a_rate_hand_back_cut_short_after_its_take_loses_nothing(start_worker, cut_once):
    # The hand-back of the messages the bucket refused (a claimed message
    # made unclaimed, its delivery not counted, due at its turn; a prefetched
    # one handed back keeps its time). The take before it committed.
    fired = cut_once("OLD.claimed_by IS NOT NULL AND NEW.claimed_by IS NULL "
                     "AND NEW.deliveries = OLD.deliveries - 1 "
                     "AND NEW.available_at IS DISTINCT FROM OLD.available_at")
    keys = [f"k{i}" for i in range(30)]
    results = [limited_record.delay(key, 0.0) for key in keys]
    worker = start_worker("-P", "threads", "-c", "4")
    starts = _starts(results)
    assert fired()
    worker.wait_for("Database unavailable")
    assert all(r.state == states.SUCCESS for r in results)
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert runs == Counter(keys)
    assert _most_in_a_second(starts) <= 10 + math.floor(TOLERANCE * 10) + 1 + JITTER
    # The hand-back run again did not count a delivery off twice.
    assert set(TaskResult.objects.values_list("deliveries", flat=True)) == {1}


def test_a_gate_run_again_decides_only_what_the_worker_still_holds(transactional_db):
    # As when the answer to a hand-back that committed is lost with the
    # connection: the gate runs again after its first run's writes are in,
    # and the bucket refilled during the retry's backoff.
    backend = get_backend()
    _register_test_worker("gate", ["default"])
    for i in range(20):
        limited_record.delay(f"k{i}", 0.0)
    later = timezone.now() + timedelta(hours=1)
    RateBucket.objects.create(task_name=limited_record.name, tat=later, horizon=later)
    claimed = backend.claim(TEST_WORKER_ID, ["default"], 20, start=20)
    first_runs = []

    def answer_lost(operation):
        first_runs.append(operation())  # its writes commit, its answer is lost
        if len(first_runs) == 2:  # the rate gate's (the concurrency gate runs first)
            RateBucket.objects.all().delete()
        return operation()

    admitted, _wake_at = flow_gate.admit(backend, claimed, TEST_WORKER_ID, answer_lost)
    first, _ = first_runs[1]
    # The first run handed every message back; the second admits none of
    # them, though the refilled bucket would let one start.
    assert len(claimed) == 20 and first == [] and admitted == []
    assert not backend.claimed_by_worker(TEST_WORKER_ID).exists()
    assert QueuedMessage.objects.filter(deliveries=0, available_at__gt=timezone.now()).count() == 20


def test_a_concurrency_gate_run_again_keeps_the_slots_its_first_run_took(transactional_db):
    # As when the answer to an admission that committed is lost with the
    # connection (or PostgreSQL's contended key fails after the others
    # committed): the gate runs again on the messages it admitted.
    backend = get_backend()
    _register_test_worker("gate", ["default"])
    for key in ["a", "a", "a", "b"]:
        limited_span.delay(key)  # a limit of 2 per key
    claimed = backend.claim(TEST_WORKER_ID, ["default"], 10, start=10)
    first_runs = []

    def answer_lost(operation):
        first_runs.append(operation())  # its writes commit, its answer is lost
        return operation()

    admitted, _wake_at = flow_gate.admit(backend, claimed, TEST_WORKER_ID, answer_lost)
    first, _ = first_runs[0]  # the concurrency gate's
    holders = QueuedMessage.objects.filter(holds_slot=True)
    # Two of "a" and the "b" hold their slots, the third "a" is parked once.
    assert len(claimed) == 4 and len(first) == 3
    assert sorted(m.id for m in admitted) == sorted(m.id for m in first)
    assert set(holders.values_list("id", flat=True)) == {m.id for m in first}
    assert set(backend.claimed_by_worker(TEST_WORKER_ID).values_list("id", flat=True)) \
        == {m.id for m in first}
    assert QueuedMessage.objects.filter(available_at=PARKED).count() == 1
    assert set(QueuedMessage.objects.filter(holds_slot=True).values_list(
        "deliveries", flat=True)) == {1}
