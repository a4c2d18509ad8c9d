"""The admin as the monitor, driven in a real headless Chromium.

A live Django server, real ``runworker`` processes and Debian's Chromium
(through Playwright): log in, filter, open a failure, retry, revoke, purge,
watch the dashboard update, and check what a user without permissions sees.
Screenshots go to ``DJANGO_TASKS_SCREENSHOTS`` (a folder) when it is set;
the pictures in docs/admin.rst were made that way.
"""

import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.utils import timezone

from django_tasks import AsyncResult, states
from django_tasks.models import QueuedMessage, TaskResult
from tests.browser import close_chromium, launch_chromium
from tests.models import Note
from tests.tasks import add, needs_note, spin_record
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RESULTS = "/admin/django_tasks/taskresult/"
QUEUED = "/admin/django_tasks/queuedmessage/"
DASHBOARD = "/admin/django_tasks/dashboard/"
TIMEOUT_MS = 30_000


@pytest.fixture
def chromium(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # the tests make between page actions are ordinary blocking ones. Only
    # while the browser runs: undone after the test (monkeypatch), and never
    # handed to a worker (tests/workers.py).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        context, profile = launch_chromium(playwright)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            # Playwright's loop gives the ORM calls made meanwhile connections
            # of their own context; close them here, in that context, or they
            # outlive the test and block dropping the test database.
            connections.close_all()
            close_chromium(context, profile)


def log_in(context, live_server, username, password):
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Site administration" in page.inner_text("#content h1")
    return page


def screenshot(page, name):
    folder = os.environ.get("DJANGO_TASKS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def choose_action(page, label):
    """Tick every row shown, run the action ``label`` and confirm it."""
    page.check("#action-toggle")
    page.select_option("select[name=action]", label=label)
    page.click("button[name=index]")
    page.click("input[type=submit][value^='Yes']")
    return page.inner_text("ul.messagelist")


def test_failed_task_is_found_inspected_and_retried_to_success(start_worker, chromium,
                                                               live_server):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    start_worker("-P", "solo")
    ok = add.delay(2, 3)
    failed = needs_note.delay("paid")
    assert ok.get(timeout=30) == 5
    with pytest.raises(LookupError):
        failed.get(timeout=30)
    page = log_in(chromium, live_server, "admin", "pw")

    page.goto(f"{live_server.url}{RESULTS}")
    page.click("#changelist-filter a:text-is('Failure')")
    page.wait_for_url("**state=FAILURE**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "tests.tasks.needs_note" in rows.first.inner_text()

    page.click(f"#result_list a:text('{failed.id}')")
    traceback = page.locator(".field-traceback_pre pre")
    assert "LookupError: no note 'paid' yet" in traceback.inner_text()
    assert traceback.evaluate("e => getComputedStyle(e).fontFamily").find("mono") >= 0
    assert '"paid"' in page.inner_text(".field-args_pretty")
    screenshot(page, "result-detail.png")

    Note.objects.create(text="paid")   # what the retry needed
    page.goto(f"{live_server.url}{RESULTS}?state__exact=FAILURE")
    message = choose_action(page, "Retry selected failed tasks")
    assert "Retried 1 task(s)" in message
    retried = TaskResult.objects.filter(parent_id=failed.id)
    new = wait_until(lambda: retried.filter(state=states.SUCCESS).first(), timeout=30,
                     message="the retried task to succeed")
    assert AsyncResult(str(new.task_id)).get(timeout=5) == "found paid"
    assert AsyncResult(failed.id).state == states.FAILURE   # the record stays as it was


def test_queued_task_is_revoked_and_expired_results_purged(chromium, live_server):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    waiting = add.apply_async((1, 1), countdown=3600)
    old = timezone.now() - timedelta(days=3)
    for _ in range(2):
        TaskResult.objects.create(task_id=uuid.uuid4(), task_name="old.task",
                                  state=states.SUCCESS, date_done=old)
    fresh = add.apply_async((2, 2), countdown=3600)   # stays queued: not selected below
    page = log_in(chromium, live_server, "admin", "pw")

    page.goto(f"{live_server.url}{QUEUED}?q={waiting.id}")
    assert page.locator("#result_list tbody tr").count() == 1
    message = choose_action(page, "Revoke selected tasks")
    assert "1" in message
    assert AsyncResult(waiting.id).state == states.REVOKED
    assert not QueuedMessage.objects.filter(task_id=waiting.id).exists()
    assert QueuedMessage.objects.filter(task_id=fresh.id).exists()

    page.goto(f"{live_server.url}{RESULTS}")
    page.click("a.django-tasks-purge")
    page.click("input[type=submit][value^='Yes']")
    assert "Purged 2 expired result(s)" in page.inner_text("ul.messagelist")
    assert not TaskResult.objects.filter(task_name="old.task").exists()
    assert TaskResult.objects.filter(task_id=waiting.id).exists()


def test_user_without_permissions_sees_no_actions(chromium, live_server):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="django_tasks",
        codename__in=["view_taskresult", "view_queuedmessage"]))
    TaskResult.objects.create(task_id=uuid.uuid4(), task_name="tests.tasks.add",
                              state=states.FAILURE)
    add.apply_async((1, 1), countdown=3600)
    page = log_in(chromium, live_server, "viewer", "pw")

    page.goto(f"{live_server.url}{RESULTS}")
    assert page.locator("#result_list tbody tr").count() == 1
    assert page.locator("select[name=action]").count() == 0
    assert page.locator("a.django-tasks-purge").count() == 0
    page.goto(f"{live_server.url}{QUEUED}")
    assert page.locator("#result_list tbody tr").count() == 1
    assert page.locator("select[name=action]").count() == 0
    page.goto(f"{live_server.url}/admin/")
    assert page.locator(f"a[href='{DASHBOARD}']").count() == 0


def test_sleep_task_shows_as_running_on_the_queue_page(start_worker, chromium, live_server):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    start_worker("-P", "threads", "-c", "2")
    # Python in short steps, so the threads pool can stop it; longer than the
    # wait below, so only that stop makes it REVOKED in time.
    running = spin_record.delay("browser", 60)
    wait_until(lambda: QueuedMessage.objects.filter(task_id=running.id,
                                                    started_at__isnull=False).exists(),
               timeout=30, message="the sleeping task to start")
    page = log_in(chromium, live_server, "admin", "pw")
    page.goto(f"{live_server.url}{QUEUED}")
    row = page.locator("#result_list tbody tr").first
    assert "running" in row.inner_text()
    message = choose_action(page, "Revoke selected tasks")
    assert message
    wait_until(lambda: AsyncResult(running.id).state == states.REVOKED, timeout=30,
               message="the running task to be stopped by the worker")


def test_dashboard_charts_update_as_more_tasks_run(start_worker, chromium, live_server):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    worker = start_worker("-P", "solo")
    for result in [add.delay(i, i) for i in range(3)]:
        result.get(timeout=30)
    page = log_in(chromium, live_server, "admin", "pw")
    page.click(f"a[href='{DASHBOARD}']")
    page.wait_for_url(f"**{DASHBOARD}")
    page.goto(f"{live_server.url}{DASHBOARD}?refresh=0.5")
    chart = page.locator("svg#throughput-chart")
    assert chart.get_attribute("data-total") == "3"
    assert page.locator("svg#failure-rate-chart").count() == 1
    assert page.locator(f"#dashboard-workers tr[data-worker='{worker_id(worker)}']").count() == 1

    page.evaluate("window.stillTheSamePage = true")   # a reload would drop it
    results = [add.delay(i, 1) for i in range(4)]
    with pytest.raises(LookupError):
        needs_note.delay("never").get(timeout=30)
    for result in results:
        result.get(timeout=30)
    # The page fetches its fragment and swaps it in: no reload.
    page.wait_for_function(
        "() => document.querySelector('svg#throughput-chart').dataset.total === '8'")
    assert page.locator("svg#throughput-chart").get_attribute("data-failed") == "1"
    assert int(page.locator("#django-tasks-dashboard").get_attribute("data-refreshes")) > 0
    assert page.evaluate("window.stillTheSamePage === true")
    screenshot(page, "dashboard.png")


def worker_id(worker):
    from django_tasks.models import Worker

    return wait_until(lambda: Worker.objects.filter(pid=worker.pid).values_list(
        "id", flat=True).first(), timeout=30, message="the worker's row")
