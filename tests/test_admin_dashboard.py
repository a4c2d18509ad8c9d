"""The admin's live dashboard: figures from real rows, charts, fragment, permission."""

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from django_tasks import states
from django_tasks.models import QueuedMessage, TaskResult, Worker

pytestmark = pytest.mark.django_db(transaction=True)

INDEX_URL = reverse("admin:index")
DASHBOARD_URL = reverse("admin:django_tasks_dashboard_changelist")
FRAGMENT_URL = reverse("admin:django_tasks_dashboard_fragment")


def result(state, minutes_ago, **fields):
    return TaskResult.objects.create(
        task_id=uuid.uuid4(), task_name="tests.tasks.add", state=state,
        date_done=timezone.now() - timedelta(minutes=minutes_ago), **fields)


def message(queue, minutes_ago=0, claimed_by=None, task_name="tests.tasks.add"):
    return QueuedMessage.objects.create(
        task_id=uuid.uuid4(), task_name=task_name, queue=queue, body="{}",
        available_at=timezone.now() - timedelta(minutes=minutes_ago), claimed_by=claimed_by)


def row(page, table_id, attribute, value):
    """The HTML of the row of ``table_id`` whose data-``attribute`` is ``value``."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert table, f"no table {table_id}"
    found = re.search(rf'<tr data-{attribute}="{re.escape(value)}">(.*?)</tr>', table[1], re.S)
    assert found, f"no row {value} in {table_id}"
    return found[1]


def cell(html, css_class):
    found = re.search(rf'<td class="[^"]*\b{css_class}\b[^"]*">(.*?)</td>', html, re.S)
    assert found, f"no cell {css_class} in {html}"
    return found[1].strip()


def svg(page, chart_id):
    found = re.search(rf'<svg [^>]*id="{chart_id}"[^>]*>.*?</svg>', page, re.S)
    assert found, f"no chart {chart_id}"
    return found[0]


def test_the_dashboard_is_on_the_admin_index_one_click_away(admin_client):
    page = admin_client.get(INDEX_URL).content.decode()
    assert f'href="{DASHBOARD_URL}"' in page
    response = admin_client.get(DASHBOARD_URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="django-tasks-dashboard"' in page
    assert f'data-fragment-url="{FRAGMENT_URL}"' in page
    assert '<div class="breadcrumbs">' in page and "Dashboard" in page
    assert 'id="dashboard-updated-at"' in page


def test_counts_by_state_and_by_queue_come_from_the_rows(admin_client):
    worker = Worker.objects.create(hostname="w1@test", pid=11, pool="prefork", concurrency=4)
    message("default", minutes_ago=30)
    oldest = message("default", minutes_ago=90, task_name="tests.tasks.oldest")
    message("default", claimed_by=worker.id)
    message("mail", claimed_by=worker.id)
    for _ in range(3):
        result(states.SUCCESS, 5)
    result(states.FAILURE, 10)
    result(states.SUCCESS, 24 * 60)      # a day ago: not in the last hour

    page = admin_client.get(DASHBOARD_URL).content.decode()

    assert cell(row(page, "dashboard-states", "state", "WAITING"), "count") == "2"
    assert cell(row(page, "dashboard-states", "state", "RUNNING"), "count") == "2"
    assert cell(row(page, "dashboard-states", "state", "SUCCESS"), "count") == "3"
    assert cell(row(page, "dashboard-states", "state", "FAILURE"), "count") == "1"
    assert cell(row(page, "dashboard-states", "state", "REVOKED"), "count") == "0"
    default = row(page, "dashboard-queues", "queue", "default")
    assert (cell(default, "waiting"), cell(default, "running")) == ("2", "1")
    assert cell(default, "oldest-age").startswith("1 h 30 min")
    assert "tests.tasks.oldest" in cell(default, "oldest-task")
    assert reverse("admin:django_tasks_queuedmessage_change", args=[oldest.pk]) in default
    mail = row(page, "dashboard-queues", "queue", "mail")
    assert (cell(mail, "waiting"), cell(mail, "running"), cell(mail, "oldest-age")) == \
        ("0", "1", "-")


def test_the_throughput_chart_counts_the_last_hour_only(admin_client):
    for minutes_ago in (1, 2, 2, 30):
        result(states.SUCCESS, minutes_ago)
    result(states.FAILURE, 2)
    for minutes_ago in (61, 90, 600):
        result(states.SUCCESS, minutes_ago)
    result(states.FAILURE, 120)

    page = admin_client.get(DASHBOARD_URL).content.decode()

    chart = svg(page, "throughput-chart")
    assert 'data-total="5"' in chart and 'data-failed="1"' in chart
    done_bars = re.findall(r'class="bar bar-done"[^>]*data-value="(\d+)"', chart)
    assert len(done_bars) == 60 and sum(map(int, done_bars)) == 5
    assert sorted(int(v) for v in done_bars if v != "0") == [1, 1, 3]
    failed_bars = re.findall(r'class="bar bar-failed"[^>]*data-value="(\d+)"', chart)
    assert sum(map(int, failed_bars)) == 1
    assert 'data-rate="20.0"' in svg(page, "failure-rate-chart")
    assert re.search(r'id="dashboard-failure-rate">20\.0 %<', page)
    assert re.search(r'id="dashboard-done">5<', page)
    assert re.search(r'id="dashboard-failed">1<', page)


def test_no_results_means_no_failure_rate_rather_than_zero(admin_client):
    page = admin_client.get(DASHBOARD_URL).content.decode()
    assert 'data-total="0"' in svg(page, "throughput-chart")
    assert 'data-rate=""' in svg(page, "failure-rate-chart")
    assert re.search(r'id="dashboard-failure-rate">-<', page)
    assert 'id="dashboard-queues-empty"' in page and 'id="dashboard-workers-empty"' in page


def test_live_workers_are_listed_with_their_counters_and_current_tasks(admin_client):
    alive = Worker.objects.create(hostname="alive@test", pid=1, pool="threads", concurrency=8,
                                  processed=120, failed=7)
    Worker.objects.create(hostname="stopped@test", pid=2, pool="solo", concurrency=1,
                          stopped_at=timezone.now())
    Worker.objects.create(hostname="lost@test", pid=3, pool="solo", concurrency=1,
                          last_heartbeat=timezone.now() - timedelta(hours=1))
    message("default", claimed_by=alive.id, task_name="tests.tasks.busy")

    page = admin_client.get(DASHBOARD_URL).content.decode()

    html = row(page, "dashboard-workers", "worker", str(alive.pk))
    assert "alive@test" in html and "<td>threads</td>" in html and ">8<" in html
    assert (cell(html, "processed"), cell(html, "failed")) == ("120", "7")
    assert cell(html, "heartbeat-age").endswith(" ago")
    assert "tests.tasks.busy" in cell(html, "current")
    assert "stopped@test" not in page and "lost@test" not in page


def test_the_fragment_is_the_inside_of_the_container_with_fresh_figures(admin_client):
    response = admin_client.get(FRAGMENT_URL)
    assert response.status_code == 200
    fragment = response.content.decode()
    assert 'id="dashboard-updated-at"' in fragment and 'id="throughput-chart"' in fragment
    assert "<html" not in fragment and 'id="django-tasks-dashboard"' not in fragment
    assert 'data-total="0"' in fragment

    result(states.SUCCESS, 0)
    fragment = admin_client.get(FRAGMENT_URL).content.decode()
    assert 'data-total="1"' in svg(fragment, "throughput-chart")


@pytest.mark.parametrize("query, expected", [
    ("", "5"), ("?refresh=2", "2"), ("?refresh=0.5", "0.5"), ("?refresh=0", "0"),
    ("?refresh=nope", "5"), ("?refresh=-3", "5"),
])
def test_the_refresh_period_is_settable_by_query_parameter(admin_client, query, expected):
    page = admin_client.get(DASHBOARD_URL + query).content.decode()
    assert f'data-refresh="{expected}"' in page


def test_a_staff_user_without_the_permission_gets_403_and_no_link(client):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_taskresult"))
    client.force_login(user)
    index = client.get(INDEX_URL).content.decode()
    assert reverse("admin:django_tasks_taskresult_changelist") in index
    assert DASHBOARD_URL not in index
    assert client.get(DASHBOARD_URL).status_code == 403
    assert client.get(FRAGMENT_URL).status_code == 403


def test_the_view_dashboard_permission_is_enough_and_allows_nothing_else(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client.force_login(user)
    assert DASHBOARD_URL in client.get(INDEX_URL).content.decode()
    assert client.get(DASHBOARD_URL).status_code == 200
    assert client.get(FRAGMENT_URL).status_code == 200
    worker = Worker.objects.create(hostname="w@test", pid=1, pool="solo", concurrency=1)
    change_url = reverse("admin:django_tasks_dashboard_change", args=[worker.pk])
    assert client.post(change_url, {}).status_code == 403


def test_anonymous_users_are_sent_to_the_login_page(client):
    for url in (DASHBOARD_URL, FRAGMENT_URL):
        response = client.get(url)
        assert response.status_code == 302 and reverse("admin:login") in response["Location"]
