"""Periodic task actions need the change permission: viewing a schedule is not running it."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_tasks.beat.models import PeriodicTask
from django_tasks.models import QueuedMessage

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = reverse("admin:django_tasks_periodictask_changelist")
ACTIONS = ["enable", "disable", "run_now"]


def staff_client(client, *codenames):
    user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def schedule(enabled):
    return PeriodicTask.objects.create(name=f"job-{enabled}", task="tests.tasks.add",
                                       args="[4, 5]", interval=timedelta(hours=1),
                                       enabled=enabled)


def offered(client):
    page = client.get(LIST_URL)
    assert page.status_code == 200
    form = page.context["action_form"]
    return {name for name, _ in form.fields["action"].choices} if form else set()


def state(*schedules):
    rows = PeriodicTask.objects.filter(pk__in=[s.pk for s in schedules])
    return {row.name: (row.enabled, row.total_run_count, row.last_run_at) for row in rows}


def test_view_permission_alone_offers_and_runs_no_action(client):
    staff = staff_client(client, "view_periodictask")
    on, off = schedule(True), schedule(False)
    before = state(on, off)
    assert offered(staff).isdisjoint(ACTIONS)
    for name in ACTIONS:
        response = staff.post(LIST_URL, {"action": name, "_selected_action": [on.pk, off.pk]},
                              follow=True)
        assert response.status_code == 200  # the list again, the post ignored
    assert state(on, off) == before
    assert not QueuedMessage.objects.exists()


def test_change_permission_runs_the_actions(client):
    staff = staff_client(client, "view_periodictask", "change_periodictask")
    on, off = schedule(True), schedule(False)
    assert set(ACTIONS) <= offered(staff)
    staff.post(LIST_URL, {"action": "disable", "_selected_action": [on.pk]})
    staff.post(LIST_URL, {"action": "enable", "_selected_action": [off.pk]})
    staff.post(LIST_URL, {"action": "run_now", "_selected_action": [on.pk]})
    on.refresh_from_db()
    off.refresh_from_db()
    assert not on.enabled and off.enabled and on.total_run_count == 1
    assert QueuedMessage.objects.get().headers["periodic_task"] == on.name
