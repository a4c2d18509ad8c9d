"""app.control.rate_limit(): a task's rate changed at run time, for every
worker at once, kept in the database until removed."""

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from django_tasks import Celery, states
from django_tasks.exceptions import NotRegistered
from django_tasks.models import QueuedMessage, RateBucket, RateOverride
from django_tasks.rate_control import REFRESH
from django_tasks.rate_limits import TOLERANCE
from tests.rate_tasks import limited, unlimited
from tests.test_rate_limit import JITTER, _most_in_a_second, _starts
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

app = Celery("tests")


def _set(name, rate, **options):
    """The call, then the delay a worker may go on with the rate it read
    before (rate_control.REFRESH, on every process's monotonic clock):
    whatever a worker claims after it, it claims under the new rate."""
    replies = app.control.rate_limit(name, rate, **options)
    after = time.monotonic() + REFRESH
    wait_until(lambda: time.monotonic() > after, timeout=REFRESH + 5,
               message="the workers' overrides to be out of date")
    return replies


# -- call time ------------------------------------------------------------

@pytest.mark.parametrize("rate", ["10/d", "fast", "-1", -1, True, "2000000/s", "",
                                  float("nan"), [5]])
def test_a_rate_celery_would_not_take_is_a_value_error_at_the_call(rate):
    with pytest.raises(ValueError, match="rate_limit"):
        app.control.rate_limit(limited.name, rate)
    assert not RateOverride.objects.exists()


def test_a_bad_task_name_or_a_destination_is_refused_at_the_call():
    with pytest.raises(TypeError, match="task_name"):
        app.control.rate_limit(limited, "1/s")
    with pytest.raises(ValueError, match="task_name"):
        app.control.rate_limit("", "1/s")
    with pytest.raises(NotRegistered, match="tests.rate_tasks.limitd"):
        app.control.rate_limit("tests.rate_tasks.limitd", "1/s")
    with pytest.raises(ValueError, match="destination"):
        app.control.rate_limit(limited.name, "1/s", destination=["celery@host"])
    assert not RateOverride.objects.exists()
    # Removing needs no registered task (a renamed one's override is removable).
    assert app.control.rate_limit("tests.gone", None) is None


def test_an_override_is_kept_until_removed_and_resets_the_bucket():
    RateBucket.objects.create(task_name=limited.name, tat=timezone.now() + timedelta(hours=1),
                              horizon=timezone.now() + timedelta(hours=2))
    assert app.control.rate_limit(limited.name, "5/m") is None
    assert RateOverride.objects.get().rate_limit == "5/m"
    # The old rate's start times do not hold the new rate back.
    assert not RateBucket.objects.exists()
    assert app.control.rate_limit(limited.name, 0, reply=True) == []
    assert RateOverride.objects.get().rate_limit == 0
    app.control.rate_limit(limited.name, None)
    assert not RateOverride.objects.exists()


def test_reply_names_each_live_worker(start_worker):
    worker = start_worker("-P", "solo")
    replies = app.control.rate_limit(limited.name, "1/s", reply=True, timeout=5)
    assert replies == [{f"{name} (pid {worker.pid})": {"ok": "new rate limit set successfully"}}
                       for name in _hostnames()]


def _hostnames():
    from django_tasks.models import Worker
    return list(Worker.objects.filter(stopped_at__isnull=True).values_list("hostname", flat=True))


def test_the_rate_in_force_is_shown(admin_client):
    waiting = limited.apply_async((1,), rate_limit="1/h", countdown=3600)
    row = QueuedMessage.objects.get(task_id=waiting.id)
    page = reverse("admin:django_tasks_queuedmessage_change", args=[row.pk])
    assert "1/h across all workers" in admin_client.get(page).content.decode()
    app.control.rate_limit(limited.name, "7/m")
    text = admin_client.get(page).content.decode()
    assert "7/m across all workers (set by app.control.rate_limit(); sent with 1/h" in text
    app.control.rate_limit(unlimited.name, "0")
    out = StringIO()
    call_command("tasks_status", stdout=out)
    assert (f"Rate limits set by app.control.rate_limit() (every worker obeys them)\n"
            f"  {limited.name}  7/m\n  {unlimited.name}  no limit\n") in out.getvalue()
    app.control.rate_limit(limited.name, 0)
    assert "none (set by app.control.rate_limit(); sent with 1/h)" in \
        admin_client.get(page).content.decode()


# -- real workers ---------------------------------------------------------

@pytest.mark.parametrize("pool", [("-P", "threads", "-c", "4"), ("-P", "prefork", "-c", "2")],
                         ids=["threads", "prefork"])
def test_an_override_slows_a_running_workers_unlimited_task(start_worker, pool):
    """Prefork children run the rate gate in their own processes: they read
    the overrides themselves."""
    start_worker(*pool)
    # Each process read the overrides (none) and goes on with them for a while.
    _starts([unlimited.delay(i) for i in range(8)], timeout=60)
    rate = 4
    _set(unlimited.name, f"{rate}/s")
    starts = _starts([unlimited.delay(i) for i in range(6 * rate)])
    # Unlimited, 24 trivial tasks start within a fraction of a second.
    assert _most_in_a_second(starts) <= rate + int(TOLERANCE * rate) + 1 + JITTER, \
        sorted(starts)


def test_zero_lifts_the_sent_rate_and_none_restores_it(start_worker):
    worker = start_worker("-P", "threads", "-c", "2")
    # A "1/h" start: the bucket holds the next one for an hour.
    assert limited.apply_async((0,), rate_limit="1/h").get(timeout=30)
    _set(limited.name, 0)
    lifted = [limited.apply_async((i,), rate_limit="1/h") for i in range(5)]
    assert all(_starts(lifted, timeout=30))
    _set(limited.name, None)
    first = limited.apply_async((10,), rate_limit="1/h")
    assert first.get(timeout=30)
    second = limited.apply_async((11,), rate_limit="1/h")
    wait_until(lambda: QueuedMessage.objects.filter(
        task_id=second.id, claimed_by__isnull=True, available_at__gt=timezone.now()
        + timedelta(minutes=30)).exists(), message="the second to wait for its turn again")
    assert second.state == states.PENDING
    assert worker.proc.poll() is None


def test_starts_a_worker_took_at_the_old_rate_do_not_hold_the_new_one_back(monkeypatch):
    """A worker goes on with the rate it read for up to REFRESH seconds after
    the call: a "1/h" start taken then would hold the bucket for an hour.
    Reading the change, the process that took it resets the bucket."""
    from django_tasks import rate_control
    from django_tasks.queue import get_backend
    from django_tasks.testing import TEST_WORKER_ID, _register_test_worker
    from django_tasks.worker.rate_gate import RateGate

    backend, gate = get_backend(), RateGate()
    _register_test_worker("gate", ["default"])

    def run(count):
        sent = [limited.apply_async((i,), rate_limit="1/h") for i in range(count)]
        claimed = backend.claim(TEST_WORKER_ID, ["default"], count)
        assert sorted(m.task_id for m in claimed) == sorted(r.id for r in sent)
        admitted, _wake_at = gate(backend, claimed, TEST_WORKER_ID)
        return [m.task_id for m in admitted], sent

    monkeypatch.setattr(rate_control, "REFRESH", 3600.0)
    assert len(run(1)[0]) == 1  # read the overrides (none)
    app.control.rate_limit(limited.name, "10/s")
    assert len(run(1)[0]) == 1  # at the old rate: the bucket held for an hour
    monkeypatch.setattr(rate_control, "REFRESH", 0.0)
    admitted, sent = run(2)
    assert admitted == [sent[0].id]
    # The other waits a tenth of a second (10/s), not an hour.
    waiting = QueuedMessage.objects.get(task_id=sent[1].id)
    assert waiting.claimed_by is None
    assert waiting.available_at < timezone.now() + timedelta(seconds=1)
