"""No admin page answers 500 on bad stored data: it shows the stored text, marked.

Rows are written as a bug, a hand or another version could write them:
by raw SQL, with values the app's decoders refuse and timestamps Python
cannot hold (``infinity``, year 10000, BC), which psycopg cannot load.
"""

import json
import uuid

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult, Worker

pytestmark = pytest.mark.django_db(transaction=True)

MARK = "cannot decode"
DASHBOARD = reverse("admin:django_tasks_dashboard_changelist")
FRAGMENT = reverse("admin:django_tasks_dashboard_fragment")
MESSAGES = reverse("admin:django_tasks_queuedmessage_changelist")
RESULTS = reverse("admin:django_tasks_taskresult_changelist")
WORKERS = reverse("admin:django_tasks_worker_changelist")


def tag(name, value):
    return json.dumps({"__type__": name, "value": value})


DEEP = "[" * 100_000 + "]" * 100_000
BAD_VALUES = {
    "decimal not a number": tag("decimal", "x"),
    "uuid holding a number": tag("uuid", 12345),
    "timedelta too big": tag("timedelta", [10 ** 10, 0, 0]),
    "bytes not base64": tag("bytes", "!!!!"),
    "set of lists": tag("set", [[1]]),
    "100,000 deep": DEEP,
    "500 deep": "[" * 500 + "]" * 500,
    "integer of 5,000 digits": "9" * 5000,
}


def get(client, url, *params):
    response = client.get(url, *params)
    assert response.status_code == 200, url
    return response.content.decode()


def shown_raw(content, text):
    return escape(text[:40]) in content


@pytest.mark.parametrize("text", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_result_pages_show_values_that_cannot_be_decoded_raw_and_marked(admin_client, text):
    ok = TaskResult.objects.create(task_id=str(uuid.uuid4()), task_name="tests.tasks.add",
                                   state=states.SUCCESS, result=text, args=text, kwargs=text,
                                   traceback=DEEP)
    failed = TaskResult.objects.create(
        task_id=str(uuid.uuid4()), task_name="tests.tasks.add", state=states.FAILURE,
        result=json.dumps({"exc_type": "KeyError", "exc_message": "k", "exc_args": ["x"]})
        .replace('["x"]', text), args="[1]", kwargs="{}")
    content = get(admin_client, reverse("admin:django_tasks_taskresult_change", args=[ok.pk]))
    assert content.count(MARK) == 3  # result, args, kwargs
    assert shown_raw(content, text)
    content = get(admin_client, reverse("admin:django_tasks_taskresult_change",
                                        args=[failed.pk]))
    assert content.count(MARK) == 1 and shown_raw(content, text)
    assert "KeyError" in content
    assert str(ok.pk) in get(admin_client, RESULTS)
    assert str(failed.pk) in get(admin_client, RESULTS, {"q": "tests.tasks"})


def test_a_stored_exception_that_is_not_a_dict_is_shown_raw(admin_client):
    row = TaskResult.objects.create(task_id=str(uuid.uuid4()), task_name="tests.tasks.add",
                                    state=states.FAILURE, result='["not", "an exception"]')
    content = get(admin_client, reverse("admin:django_tasks_taskresult_change", args=[row.pk]))
    assert MARK in content and escape('["not", "an exception"]') in content


# -- timestamps Python cannot hold ------------------------------------------

def out_of_range(vendor):
    """Timestamps psycopg (PostgreSQL) or Django's converter (SQLite) cannot load."""
    if vendor == "postgresql":
        return {"-infinity": "-infinity", "infinity": "infinity",
                "year 10000": "10000-01-01 00:00:00+00", "1 BC": "0001-06-01 00:00:00+00 BC"}
    # SQLite holds text: what no datetime parses.
    return {"-infinity": "-infinity", "infinity": "infinity"}


def insert_message(column, stored, *, worker_id=None):
    """A queued message written by SQL, ``column`` holding ``stored``."""
    task_id = str(uuid.uuid4())
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    values = {"available_at": adapt(now), "expires": None, "created_at": adapt(now),
              "claimed_at": None, "started_at": None}
    values[column] = stored
    cast = "::timestamptz" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_tasks_queuedmessage (task_id, task_name, queue, priority, "
            "available_at, expires, content_type, body, headers, deliveries, claimed_by, "
            f"claimed_at, started_at, created_at) VALUES (%s, %s, %s, 0, %s{cast}, "
            f"%s{cast}, 'json', %s, %s, 0, %s, %s{cast}, %s{cast}, %s{cast})",
            [task_id, "tests.tasks.add",
             "default", values["available_at"], values["expires"], '{"args": [1, 2]}',
             json.dumps({"retries": 0}),
             None if worker_id is None else (worker_id.hex if connection.vendor == "sqlite"
                                             else worker_id),
             values["claimed_at"], values["started_at"], values["created_at"]])
    return QueuedMessage.objects.values_list("pk", flat=True).get(task_id=task_id)


@pytest.mark.parametrize("column", ["available_at", "expires", "created_at"])
def test_message_pages_and_dashboard_show_timestamps_python_cannot_hold(admin_client, vendor,
                                                                         column):
    for label, stored in out_of_range(vendor).items():
        pk = insert_message(column, stored)
        detail = get(admin_client, reverse("admin:django_tasks_queuedmessage_change",
                                           args=[pk]))
        assert MARK in detail and escape(stored)[:8] in detail, label
        for params in ({}, {"state": "waiting"}, {"state": "scheduled"}, {"q": "add"},
                       {"o": "6"}):
            get(admin_client, MESSAGES, params)
        assert MARK in get(admin_client, MESSAGES) or column == "created_at", label
        get(admin_client, DASHBOARD)
        get(admin_client, FRAGMENT)


def test_a_running_message_with_timestamps_python_cannot_hold(admin_client, vendor):
    worker = Worker.objects.create(hostname="w1@host", pid=1, queues=["default"],
                                   pool="solo", concurrency=1)
    for column in ("claimed_at", "started_at"):
        for label, stored in out_of_range(vendor).items():
            pk = insert_message(column, stored, worker_id=worker.id)
            if column == "started_at":
                QueuedMessage.objects.filter(pk=pk).update(claimed_at=timezone.now())
            detail = get(admin_client, reverse("admin:django_tasks_queuedmessage_change",
                                               args=[pk]))
            assert MARK in detail, label
            assert MARK in get(admin_client, MESSAGES, {"state": "running"}), label
            Worker.objects.filter(pk=worker.pk).update(last_heartbeat=timezone.now())
            assert "tests.tasks.add" in get(admin_client, DASHBOARD)
            get(admin_client, reverse("admin:django_tasks_worker_change", args=[worker.pk]))
            get(admin_client, WORKERS)


def update_to(model, pk, column, stored):
    cast = "::timestamptz" if connection.vendor == "postgresql" else ""
    key = pk.hex if connection.vendor == "sqlite" and isinstance(pk, uuid.UUID) else str(pk)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {model._meta.db_table} SET {column} = %s{cast} "
                       f"WHERE {model._meta.pk.column} = %s", [stored, key])


def test_result_and_worker_pages_show_timestamps_python_cannot_hold(admin_client, vendor):
    for label, stored in out_of_range(vendor).items():
        row = TaskResult.objects.create(task_id=str(uuid.uuid4()), task_name="tests.tasks.add",
                                        state=states.SUCCESS, result="1", args="[]")
        for column in ("date_created", "date_started", "date_done"):
            update_to(TaskResult, row.pk, column, stored)
        assert MARK in get(admin_client, RESULTS), label
        for params in ({"q": "add"}, {"state__exact": "SUCCESS"}, {"o": "-9"}):
            get(admin_client, RESULTS, params)
        detail = get(admin_client, reverse("admin:django_tasks_taskresult_change",
                                           args=[row.pk]))
        assert detail.count(MARK) >= 3, label  # the timeline's three moments
        get(admin_client, DASHBOARD)
        worker = Worker.objects.create(hostname=f"w-{label}", pid=1, queues=["default"],
                                       pool="solo", concurrency=1)
        for column in ("started_at", "last_heartbeat"):
            update_to(Worker, worker.pk, column, stored)
        assert MARK in get(admin_client, WORKERS), label
        assert MARK in get(admin_client, reverse("admin:django_tasks_worker_change",
                                                 args=[worker.pk])), label
        get(admin_client, DASHBOARD)


def test_a_message_python_cannot_hold_can_be_revoked_from_the_admin(admin_client, vendor):
    pks = [insert_message("available_at", stored) for stored in out_of_range(vendor).values()]
    data = {"action": "revoke", "_selected_action": [str(pk) for pk in pks]}
    page = admin_client.post(MESSAGES, {**data, "index": 0})
    assert page.status_code == 200 and b"Yes, I" in page.content
    done = admin_client.post(MESSAGES, {**data, "post": "yes"}, follow=True)
    assert done.status_code == 200
    assert not QueuedMessage.objects.exists()
    assert set(TaskResult.objects.values_list("state", flat=True)) == {states.REVOKED}
    far = insert_message("available_at", "infinity")
    data = {"action": "run_now", "_selected_action": [str(far)]}
    page = admin_client.post(MESSAGES, {**data, "index": 0})
    assert page.status_code == 200 and b"Yes, I" in page.content
    assert admin_client.post(MESSAGES, {**data, "post": "yes"}, follow=True).status_code == 200
    assert QueuedMessage.objects.get(pk=far).available_at <= timezone.now()
