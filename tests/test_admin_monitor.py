"""The admin as the monitor: results, queued messages, workers, and their actions."""

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskGroup, TaskResult, Worker
from django_tasks.testing import run_queued_tasks
from tests.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)

RESULTS = reverse("admin:django_tasks_taskresult_changelist")
MESSAGES = reverse("admin:django_tasks_queuedmessage_changelist")
WORKERS = reverse("admin:django_tasks_worker_changelist")
PURGE = reverse("admin:django_tasks_taskresult_purge")


# admin_client: pytest-django's, logged in as a superuser.


def staff_client(client, *permissions):
    user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    for codename in ("view_taskresult", "view_queuedmessage", "view_worker", *permissions):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def result(state=states.SUCCESS, name="tests.tasks.add", args=(2, 3), kwargs=None,
           done=None, **fields):
    now = timezone.now()
    done = done or now
    return TaskResult.objects.create(
        task_id=fields.pop("task_id", str(uuid.uuid4())), task_name=name, state=state,
        args=json.dumps(list(args)), kwargs=json.dumps(kwargs or {}),
        queue=fields.pop("queue", "default"), worker="w1@host",
        date_created=done - timedelta(seconds=3), date_started=done - timedelta(seconds=2),
        date_done=done, **fields)


def failure(**fields):
    return result(state=states.FAILURE,
                  result=json.dumps({"exc_type": "TypeError", "exc_module": "builtins",
                                     "exc_message": "bad value: 1", "exc_args": ["bad value: 1"]}),
                  traceback='Traceback (most recent call last):\n  File "x.py"\nTypeError: bad',
                  **fields)


def action(client, url, name, rows, confirm=True):
    data = {"action": name, "_selected_action": [str(r.pk) for r in rows]}
    page = client.post(url, {**data, "index": 0})
    if not confirm:
        return page
    assert page.status_code == 200 and b"Yes, I" in page.content, "no confirmation page"
    return client.post(url, {**data, "post": "yes"}, follow=True)


def shown_messages(response):
    return [str(m) for m in response.context["messages"]]


# -- pages ------------------------------------------------------------------

def test_pages_render_with_zero_rows(admin_client):
    for url in (RESULTS, MESSAGES, WORKERS, PURGE):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert b"0 task results" in admin_client.get(RESULTS).content


def test_result_list_shows_the_columns_with_a_state_badge_and_runtime(admin_client):
    failure(name="tests.tasks.fail_with_type_error")
    content = admin_client.get(RESULTS).content.decode()
    for column in ("Task id", "Task name", "State", "Queue", "Worker", "Retries",
                   "Date created", "Date started", "Date done", "Runtime"):
        assert f">{column}<" in content, column
    assert "django-tasks-badge" in content and "#c62828" in content  # FAILURE is red
    assert "2.0 s" in content  # runtime: done - started
    assert "tests.tasks.fail_with_type_error" in content


def test_result_filters_by_state_task_name_queue_and_date(admin_client):
    ok = result(name="tests.tasks.add", queue="default")
    bad = failure(name="tests.tasks.fail_with_type_error", queue="mail")
    old = result(name="tests.tasks.echo", done=timezone.now() - timedelta(days=30))

    def listed(**params):
        return {r.pk for r in admin_client.get(RESULTS, params).context["cl"].result_list}

    assert listed() == {ok.pk, bad.pk, old.pk}
    assert listed(state__exact="FAILURE") == {bad.pk}
    assert listed(task_name="tests.tasks.add") == {ok.pk}
    assert listed(queue="mail") == {bad.pk}
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    assert listed(**{"date_done__gte": str(today),
                     "date_done__lt": str(today + timedelta(days=1))}) == {ok.pk, bad.pk}
    # The filters offer the values that are there.
    content = admin_client.get(RESULTS).content.decode()
    assert "?task_name=tests.tasks.echo" in content and "?queue=mail" in content


def test_result_search_by_id_name_and_arguments(admin_client):
    one = result(name="tests.tasks.add", args=[2, 3])
    two = result(name="tests.tasks.echo", args=["needle-in-args"])

    def found(term):
        return {r.pk for r in admin_client.get(RESULTS, {"q": term}).context["cl"].result_list}

    assert found(str(one.pk)) == {one.pk}
    assert found("echo") == {two.pk}
    assert found("needle-in") == {two.pk}
    assert found(str(uuid.uuid4())) == set()


def test_result_page_shows_pretty_json_traceback_family_and_group(admin_client):
    group_id = str(uuid.uuid4())
    parent = result(name="tests.tasks.parent")
    bad = failure(parent_id=parent.pk, root_id=parent.pk, group_id=group_id,
                  kwargs={"when": {"__type__": "date", "value": "2026-01-02"}})
    sibling = result(group_id=group_id)
    child = result(name="tests.tasks.child", parent_id=bad.pk)
    TaskGroup.objects.create(group_id=group_id, results=[str(bad.pk), str(sibling.pk)])
    response = admin_client.get(reverse("admin:django_tasks_taskresult_change", args=[bad.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "<pre" in content and "[\n  2,\n  3\n]" in content  # args, indented JSON
    assert "datetime.date(2026, 1, 2)" in content  # decoded by the app's serializer
    assert "TypeError: bad value: 1" in content and "&quot;exc_type&quot;" in content
    assert "Traceback (most recent call last):" in content
    for other in (parent, sibling, child):
        assert reverse("admin:django_tasks_taskresult_change", args=[other.pk]) in content
    assert f"group, 2 member(s) {group_id}" in content
    assert "waited" in content and "ran" in content and "1.0 s" in content
    # Read-only: no save button, no add.
    assert 'name="_save"' not in content
    assert admin_client.get(reverse("admin:django_tasks_taskresult_add")).status_code == 403


def test_queued_and_worker_pages_show_state_worker_and_current_tasks(admin_client):
    worker = Worker.objects.create(hostname="w1@host", pid=42, queues=["default"],
                                   pool="prefork", concurrency=2)
    gone = Worker.objects.create(hostname="w2@host", pid=43, queues=["default"], pool="solo",
                                 concurrency=1,
                                 last_heartbeat=timezone.now() - timedelta(minutes=5))
    add.apply_async((1, 2), countdown=3600)
    running = add.delay(3, 4)
    QueuedMessage.objects.filter(task_id=running.id).update(
        claimed_by=worker.pk, claimed_at=timezone.now(), started_at=timezone.now())
    content = admin_client.get(MESSAGES).content.decode()
    assert "scheduled" in content and "running" in content
    assert reverse("admin:django_tasks_worker_change", args=[worker.pk]) in content
    listed = admin_client.get(MESSAGES, {"state": "running"}).context["cl"].result_list
    assert [str(m.task_id) for m in listed] == [running.id]

    rows = {w.pk: w for w in admin_client.get(WORKERS).context["cl"].result_list}
    assert rows[worker.pk].current == 1 and rows[gone.pk].current == 0
    content = admin_client.get(WORKERS).content.decode()
    assert ">alive<" in content and ">lost<" in content
    page = admin_client.get(reverse("admin:django_tasks_worker_change", args=[worker.pk]))
    assert running.id in page.content.decode()


def test_worker_marked_lost_by_housekeeping_stays_lost_and_a_stopped_one_stopped(
        admin_client):
    from django_tasks.queue import get_backend
    from django_tasks.worker.housekeeping import recover_lost_workers

    def worker(hostname, heartbeat_age):
        return Worker.objects.create(hostname=hostname, pid=1, queues=["default"],
                                     pool="solo", concurrency=1,
                                     last_heartbeat=timezone.now() - heartbeat_age)

    silent = worker("silent@host", timedelta(minutes=5))
    stopping = worker("stopping@host", timedelta(seconds=0))
    recover_lost_workers(get_backend())        # sets the silent one's stopped_at
    get_backend().stop_worker(stopping.pk, processed=0, failed=0)
    silent.refresh_from_db()
    assert silent.stopped_at is not None

    def listed(**query):
        rows = admin_client.get(WORKERS, query).context["cl"].result_list
        return {w.hostname for w in rows}

    assert listed(status="lost") == {"silent@host"}
    assert listed(status="stopped") == {"stopping@host"}
    assert listed(status="alive") == set()
    content = admin_client.get(reverse("admin:django_tasks_worker_change",
                                       args=[silent.pk])).content.decode()
    assert ">lost<" in content


# -- permissions --------------------------------------------------------------

@pytest.mark.parametrize("url, name, permission", [
    (RESULTS, "retry", "retry_taskresult"),
    (MESSAGES, "revoke", "revoke_queuedmessage"),
    (MESSAGES, "run_now", "run_now_queuedmessage"),
])
def test_each_action_needs_its_permission(client, url, name, permission):
    staff = staff_client(client)
    bad = failure()
    message = QueuedMessage.objects.get(task_id=add.apply_async((1, 1), countdown=60).id)
    row = bad if url == RESULTS else message
    page = staff.get(url)
    assert page.status_code == 200
    assert f'value="{name}"' not in page.content.decode()
    before = QueuedMessage.objects.count(), list(QueuedMessage.objects.values())
    refused = staff.post(url, {"action": name, "_selected_action": [str(row.pk)],
                               "post": "yes"}, follow=True)
    assert refused.status_code == 200
    assert (QueuedMessage.objects.count(), list(QueuedMessage.objects.values())) == before
    # With the permission the action is offered.
    User.objects.get(username="staff").user_permissions.add(
        Permission.objects.get(codename=permission))
    assert f'value="{name}"' in staff.get(url).content.decode()


def test_purge_needs_its_permission(client):
    staff = staff_client(client)
    assert "Purge expired results" not in staff.get(RESULTS).content.decode()
    assert staff.get(PURGE).status_code == 403
    assert staff.post(PURGE, {"post": "yes"}).status_code == 403
    User.objects.get(username="staff").user_permissions.add(
        Permission.objects.get(codename="purge_taskresult"))
    assert "Purge expired results" in staff.get(RESULTS).content.decode()


def test_only_superusers_may_delete_results(client, admin_user):
    staff = staff_client(client, "delete_taskresult")
    bad = failure()
    url = reverse("admin:django_tasks_taskresult_delete", args=[bad.pk])
    assert staff.get(url).status_code == 403
    staff.force_login(admin_user)
    assert staff.post(url, {"post": "yes"}).status_code == 302
    assert not TaskResult.objects.filter(pk=bad.pk).exists()


# -- actions ------------------------------------------------------------------

def test_retry_enqueues_the_same_call_under_a_new_id_linked_to_the_old(admin_client):
    bad = failure(args=[2, 3], kwargs={}, queue="mail")
    done = result()
    response = action(admin_client, RESULTS, "retry", [bad, done])
    message = QueuedMessage.objects.get()
    assert message.task_name == "tests.tasks.add" and message.queue == "mail"
    assert json.loads(message.body) == {"args": [2, 3], "kwargs": {}}
    assert message.task_id != bad.pk
    assert message.headers["retry_of"] == str(bad.pk)
    assert message.headers["parent_id"] == str(bad.pk)
    texts = shown_messages(response)
    assert any(f"Retried 1 task(s): tests.tasks.add [{bad.pk} → {message.task_id}]" in t
               for t in texts)
    assert any("Skipped 1 result(s)" in t for t in texts)
    # Run it: the new result points at the old one, whose page lists it as a child.
    run_queued_tasks()
    new = TaskResult.objects.get(pk=message.task_id)
    assert new.state == states.SUCCESS and new.parent_id == bad.pk
    page = admin_client.get(reverse("admin:django_tasks_taskresult_change", args=[bad.pk]))
    assert reverse("admin:django_tasks_taskresult_change", args=[new.pk]) in \
        page.content.decode()


def test_retry_of_an_unregistered_task_is_sent_by_name(admin_client):
    bad = failure(name="gone.module.task")
    page = action(admin_client, RESULTS, "retry", [bad], confirm=False)
    assert "Not registered in this process" in page.content.decode()
    action(admin_client, RESULTS, "retry", [bad])
    assert QueuedMessage.objects.get().task_name == "gone.module.task"


def test_revoke_ends_a_waiting_task_revoked_and_asks_a_running_one_to_stop(admin_client):
    worker = Worker.objects.create(hostname="w1@host", pid=42, queues=["default"],
                                   pool="solo", concurrency=1)
    waiting = add.delay(1, 2)
    running = add.delay(3, 4)
    QueuedMessage.objects.filter(task_id=running.id).update(
        claimed_by=worker.pk, claimed_at=timezone.now(), started_at=timezone.now())
    response = action(admin_client, MESSAGES, "revoke", list(QueuedMessage.objects.all()))
    assert TaskResult.objects.get(pk=waiting.id).state == states.REVOKED
    assert not QueuedMessage.objects.filter(task_id=waiting.id).exists()
    assert QueuedMessage.objects.get(task_id=running.id).terminate_requested_at is not None
    assert any("Revoked 2 task(s) of 2 selected (1 running" in t
               for t in shown_messages(response))


def test_run_now_makes_a_delayed_message_due(admin_client):
    delayed = add.apply_async((1, 2), countdown=3600)
    due = add.delay(3, 4)
    assert run_queued_tasks() and not run_queued_tasks()  # only the due one ran
    assert TaskResult.objects.filter(pk=due.id).exists()
    response = action(admin_client, MESSAGES, "run_now", list(QueuedMessage.objects.all()))
    assert QueuedMessage.objects.get(task_id=delayed.id).available_at <= timezone.now()
    assert any("1 task(s) are due now." in t for t in shown_messages(response))
    outcomes = run_queued_tasks()
    assert [o.message.task_id for o in outcomes] == [delayed.id]


@override_settings(DJANGO_TASKS={"RESULT_EXPIRES": timedelta(days=1)})
def test_purge_deletes_only_expired_results_and_says_how_many(admin_client):
    expired = [result(done=timezone.now() - timedelta(days=2)) for _ in range(3)]
    fresh = result()
    page = admin_client.get(PURGE)
    assert "That is 3 result(s)." in page.content.decode()
    response = admin_client.post(PURGE, {"post": "yes"}, follow=True)
    assert any("Purged 3 expired result(s)" in t for t in shown_messages(response))
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not TaskResult.objects.filter(pk__in=[r.pk for r in expired]).exists()


def test_list_counts_are_capped_not_full_counts(admin_client, monkeypatch):
    from django_tasks.admin import pagination

    monkeypatch.setattr(pagination, "CAP", 3)
    for _ in range(5):
        failure()
    cl = admin_client.get(RESULTS, {"state__exact": "FAILURE"}).context["cl"]
    assert cl.result_count == 3 and cl.full_result_count is None


def test_text_search_reads_only_the_newest_results(admin_client, monkeypatch):
    from django_tasks.admin import results

    monkeypatch.setattr(results, "SEARCH_WINDOW", 2)
    old = result(args=["needle"], done=timezone.now() - timedelta(hours=1))
    new = [result(args=["needle"]), result(args=["hay"])]

    def found(term):
        return {r.pk for r in admin_client.get(RESULTS, {"q": term}).context["cl"].result_list}

    assert found("needle") == {new[0].pk}
    assert found(str(old.pk)) == {old.pk}  # an id is found however old


def test_actions_on_all_matching_rows_keep_the_selection_through_the_confirmation(admin_client):
    failures = [failure() for _ in range(3)]
    data = {"action": "retry", "select_across": "1", "_selected_action": [str(failures[0].pk)]}
    page = admin_client.post(RESULTS, {**data, "index": 0})
    assert "Enqueue 3 task(s) again" in page.content.decode()
    admin_client.post(RESULTS, {**data, "post": "yes"})
    assert QueuedMessage.objects.count() == 3
