"""Periodic tasks in the admin: validation on save, read-only settings schedules, run now."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse

from django_tasks.beat.models import PeriodicTask
from django_tasks.models import QueuedMessage

pytestmark = pytest.mark.django_db(transaction=True)

ADD_URL = reverse("admin:django_tasks_periodictask_add")
LIST_URL = reverse("admin:django_tasks_periodictask_changelist")


def form(**fields):
    data = {"name": "job", "task": "tests.tasks.add", "enabled": "on", "description": "",
            "crontab": "", "interval": "", "run_at_0": "", "run_at_1": "",
            "catch_up": "once", "args": "[1, 2]", "kwargs": "{}", "queue": "",
            "priority": "", "expire_seconds": ""}
    data.update(fields)
    return data


def errors_of(response):
    assert response.status_code == 200, "the form was accepted"
    form_errors = response.context["adminform"].form.errors
    return {name: list(errors) for name, errors in form_errors.items()}


def test_a_valid_schedule_saves_with_its_next_run(admin_client):
    response = admin_client.post(ADD_URL, form(crontab="*/15 * * * *"))
    assert response.status_code == 302
    periodic = PeriodicTask.objects.get()
    assert periodic.next_run_at is not None and periodic.next_run_at.minute % 15 == 0
    assert periodic.source == PeriodicTask.ADMIN


@pytest.mark.parametrize("fields, field, message", [
    ({"crontab": "61 * * * *"}, "crontab", "invalid cron expression '61 * * * *'"),
    ({"crontab": "* * *"}, "crontab", "has 3 field(s); it needs 5"),
    ({}, "crontab", "Give exactly one of a cron expression, an interval or a one-off"),
    ({"crontab": "* * * * *", "interval": "00:00:30"}, "crontab",
     "Give exactly one of a cron expression, an interval or a one-off run-at time "
     "(got crontab, interval)."),
    ({"interval": "00:00:00"}, "interval", "The interval must be longer than zero."),
    ({"interval": "00:00:30", "args": "[1, 2"}, "args", "Not valid JSON ("),
    ({"interval": "00:00:30", "args": '{"x": 1}'}, "args",
     "Must be a JSON list, e.g. [2, 3], not dict."),
    ({"interval": "00:00:30", "kwargs": "[]"}, "kwargs", "Must be a JSON object"),
    ({"interval": "00:00:30", "args": "[1, 2, 3]"}, "args",
     "The arguments do not fit tests.tasks.add(x, y): too many positional arguments."),
    ({"interval": "00:00:30", "args": "[1]"}, "args",
     "The arguments do not fit tests.tasks.add(x, y): missing a required argument: 'y'."),
    ({"interval": "00:00:30", "task": "tests.tasks.nope"}, "task",
     "No task named 'tests.tasks.nope' is registered."),
])
def test_invalid_schedules_and_arguments_are_rejected_with_clear_messages(
        admin_client, fields, field, message):
    errors = errors_of(admin_client.post(ADD_URL, form(**fields)))
    assert any(message in text for text in errors.get(field, [])), errors
    assert not PeriodicTask.objects.exists()


@override_settings(DJANGO_TASKS={"BEAT_SCHEDULE": {
    "nightly": {"task": "tests.tasks.add", "schedule": timedelta(hours=1), "args": (1, 1)}}})
def test_settings_schedules_are_shown_read_only_with_their_next_run(admin_client):
    page = admin_client.get(LIST_URL).content.decode()
    row = PeriodicTask.objects.get(name="nightly")
    assert row.source == PeriodicTask.SETTINGS and row.next_run_at is not None
    assert "nightly" in page and "every 1:00:00" in page
    change_url = reverse("admin:django_tasks_periodictask_change", args=[row.pk])
    view = admin_client.get(change_url).content.decode()
    assert 'name="_save"' not in view  # shown, not editable
    admin_client.post(change_url, form(name="nightly", interval="00:00:05"))
    assert PeriodicTask.objects.get(pk=row.pk).interval == timedelta(hours=1)
    response = admin_client.post(LIST_URL, {"action": "disable", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert PeriodicTask.objects.get(pk=row.pk).enabled


def test_run_now_sends_the_task_and_counts_the_run(admin_client):
    periodic = PeriodicTask.objects.create(name="job", task="tests.tasks.add", args="[4, 5]",
                                           interval=timedelta(hours=1))
    response = admin_client.post(LIST_URL, {"action": "run_now",
                                            "_selected_action": [periodic.pk]})
    assert response.status_code == 302
    message = QueuedMessage.objects.get()
    assert message.task_name == "tests.tasks.add"
    assert message.headers["periodic_task"] == "job"
    periodic.refresh_from_db()
    assert periodic.total_run_count == 1 and periodic.last_run_at is not None


def test_disable_and_enable_actions(admin_client):
    periodic = PeriodicTask.objects.create(name="job", task="tests.tasks.add", args="[4, 5]",
                                           interval=timedelta(hours=1))
    admin_client.post(LIST_URL, {"action": "disable", "_selected_action": [periodic.pk]})
    periodic.refresh_from_db()
    assert not periodic.enabled and periodic.next_run_at is None
    admin_client.post(LIST_URL, {"action": "enable", "_selected_action": [periodic.pk]})
    periodic.refresh_from_db()
    assert periodic.enabled and periodic.next_run_at is not None
