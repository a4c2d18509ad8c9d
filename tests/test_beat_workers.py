"""Beat inside real worker processes: each tick once, however many beats run."""

import itertools
import json
import signal
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_tasks.beat.models import PeriodicTask, PeriodicTick
from django_tasks.models import QueuedMessage, TaskResult
from tests.models import Execution
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_SECOND = {"tick": {"task": "tests.tasks.record_tick", "seconds": 1, "catch_up": "all"}}


def beat_env(schedule):
    return {"TESTS_BEAT_SCHEDULE": json.dumps(schedule)}


def sent_ticks():
    return list(PeriodicTick.objects.filter(name="tick").order_by("tick_at"))


def test_three_workers_with_beat_send_each_tick_once_and_survive_losing_the_sender(
        start_worker):
    workers = [start_worker("--beat", "-n", f"beat{i}@test", env=beat_env(EVERY_SECOND))
               for i in range(3)]
    wait_until(lambda: Execution.objects.count() >= 5, timeout=60, message="5 ticks run")
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert runs and set(runs.values()) == {1}, f"a tick ran more than once: {runs}"

    newest = sent_ticks()[-1]
    sender = wait_until(lambda: next((w for w in workers if str(newest.task_id) in w.output),
                                     None), timeout=10, message="the log of the last send")
    sender.proc.kill()
    sender.wait_exit()
    killed_at = timezone.now()
    wait_until(lambda: Execution.objects.filter(key__gt=killed_at.isoformat()).count() >= 3,
               timeout=60, message="3 ticks run after the sender was killed")
    for worker in workers:
        worker.stop()

    ticks = sent_ticks()
    steps = {later.tick_at - earlier.tick_at for earlier, later in itertools.pairwise(ticks)}
    assert steps == {timedelta(seconds=1)}, "a tick was skipped or sent twice"
    # One message per tick: nothing was enqueued beside the tick rows.
    task_ids = {str(t.task_id) for t in ticks}
    assert len(task_ids) == len(ticks)
    queued = {str(i) for i in QueuedMessage.objects.values_list("task_id", flat=True)}
    stored = {str(i) for i in TaskResult.objects.values_list("task_id", flat=True)}
    assert queued | stored == task_ids
    # Every run belongs to its own tick (a run of the killed worker may repeat, same id).
    for key, task_id in Execution.objects.values_list("key", "task_id"):
        assert {t.tick_at.isoformat() for t in ticks if str(t.task_id) == task_id} == {key}


def test_a_schedule_edited_in_the_admin_takes_effect_without_restarting(start_worker):
    start_worker("--beat")
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    form = {"name": "job", "task": "tests.tasks.record", "enabled": "on", "description": "",
            "crontab": "", "interval": "00:00:01", "run_at_0": "", "run_at_1": "",
            "catch_up": "once", "args": '["a"]', "kwargs": "{}", "queue": "",
            "priority": "", "expire_seconds": ""}
    assert client.post(reverse("admin:django_tasks_periodictask_add"), form).status_code == 302
    wait_until(lambda: Execution.objects.filter(key="a").exists(), timeout=30,
               message="the new schedule to run")

    job = PeriodicTask.objects.get(name="job")
    change_url = reverse("admin:django_tasks_periodictask_change", args=[job.pk])
    assert client.post(change_url, {**form, "args": '["b"]'}).status_code == 302
    wait_until(lambda: Execution.objects.filter(key="b").exists(), timeout=30,
               message="the edited arguments to be used")

    changelist = reverse("admin:django_tasks_periodictask_changelist")
    client.post(changelist, {"action": "disable", "_selected_action": [job.pk]})
    disabled_at = timezone.now()
    now = timezone.localtime()
    one_off = {**form, "name": "later", "interval": "", "args": '["c"]',
               "run_at_0": now.strftime("%Y-%m-%d"), "run_at_1": now.strftime("%H:%M:%S")}
    assert client.post(reverse("admin:django_tasks_periodictask_add"),
                       one_off).status_code == 302
    wait_until(lambda: Execution.objects.filter(key="c").exists(), timeout=30,
               message="the one-off to run")
    assert not PeriodicTick.objects.filter(name="job", sent_at__gt=disabled_at).exists()
    later = PeriodicTask.objects.get(name="later")
    assert not later.enabled and later.total_run_count == 1


def test_runbeat_sends_ticks_and_stops_on_sigterm(transactional_db):
    beat = WorkerProcess(env=beat_env(EVERY_SECOND), command="runbeat")
    try:
        beat.wait_for("beat: Starting...")
        wait_until(lambda: QueuedMessage.objects.filter(
            task_name="tests.tasks.record_tick").count() >= 2, timeout=30,
            message="two ticks queued")
        beat.send(signal.SIGTERM)
        assert beat.wait_exit() == 0
        assert "beat: Stopped." in beat.output
    finally:
        beat.stop()
