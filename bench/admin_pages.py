#!/usr/bin/env python
"""Time the monitor's admin pages on a million results and 100,000 queued messages.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x python bench/admin_pages.py

It (re)creates the database ``bench_admin_pages`` on the PostgreSQL server of
``DATABASE_URL`` (only the server is taken from it; default
``postgres://postgres@127.0.0.1:5432``), migrates it, fills 1,000,000 task
results and 100,000 queued messages with ``INSERT ... SELECT generate_series``
(a minute or so), runs ``VACUUM ANALYZE`` as autovacuum would, logs a
superuser in with Django's test client and requests each page ``--runs``
times (after one warm-up), printing the median and slowest time and the
number of SQL queries per page and their time. ``--reuse`` keeps an already filled database.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DATABASE = f"{os.environ.get('BENCH_DB_PREFIX', 'bench')}_admin_pages"
RESULTS, MESSAGES = 1_000_000, 100_000
TASK_NAMES = [f"proj.tasks.job_{i:02d}" for i in range(20)]
QUEUES = ["default", "mail", "reports", "priority"]

FILL_RESULTS = f"""
INSERT INTO django_tasks_taskresult
    (task_id, task_name, state, content_type, result, traceback, args, kwargs, queue,
     worker, retries, deliveries, parent_id, root_id, group_id, date_created, date_started,
     date_done)
SELECT gen_random_uuid(),
       (%(names)s::text[])[1 + i %% {len(TASK_NAMES)}],
       CASE WHEN i %% 50 = 0 THEN 'FAILURE' WHEN i %% 97 = 0 THEN 'REVOKED'
            WHEN i %% 89 = 0 THEN 'RETRY' ELSE 'SUCCESS' END,
       'json',
       CASE WHEN i %% 50 = 0 THEN '{{"exc_type": "ValueError", "exc_module": "builtins", '
                                  || '"exc_message": "bad", "exc_args": ["bad"]}}'
            ELSE (i * 2)::text END,
       CASE WHEN i %% 50 = 0 THEN 'Traceback (most recent call last):\n  ...\nValueError: bad'
       END,
       '[' || i || ', "customer-' || (i %% 5000) || '"]', '{{}}',
       (%(queues)s::text[])[1 + i %% {len(QUEUES)}],
       'worker' || (i %% 4) || '@bench', 0, 1, NULL, NULL, NULL,
       now() - i * interval '1 second' - interval '40 ms',
       now() - i * interval '1 second' - interval '20 ms',
       now() - i * interval '1 second'
FROM generate_series(1, %(count)s) AS i
"""

FILL_WORKERS = """
INSERT INTO django_tasks_worker (id, hostname, pid, queues, pool, concurrency, started_at,
                                 last_heartbeat, stopped_at, processed, failed)
SELECT ('00000000-0000-0000-0000-00000000000' || w)::uuid, 'worker' || w || '@bench',
       1000 + w, '["default", "mail", "reports", "priority"]', 'prefork', 4,
       now() - interval '1 hour', now(), NULL, 250000, 5000
FROM generate_series(0, 3) AS w
"""

# 2% claimed by the workers, a fifth scheduled in the future, the rest due.
FILL_MESSAGES = f"""
INSERT INTO django_tasks_queuedmessage
    (task_id, task_name, queue, priority, available_at, expires, content_type, body,
     headers, deliveries, claimed_by, claimed_at, started_at, terminate_requested_at,
     created_at)
SELECT gen_random_uuid(), (%(names)s::text[])[1 + i %% {len(TASK_NAMES)}],
       (%(queues)s::text[])[1 + i %% {len(QUEUES)}], 0,
       CASE WHEN i %% 5 = 0 THEN now() + interval '1 hour' ELSE now() - i * interval '1 ms' END,
       NULL, 'json', '{{"args": [' || i || '], "kwargs": {{}}}}', '{{"retries": 0}}',
       CASE WHEN i %% 50 = 0 THEN 1 ELSE 0 END,
       CASE WHEN i %% 50 = 0 THEN ('00000000-0000-0000-0000-00000000000' || (i %% 4))::uuid END,
       CASE WHEN i %% 50 = 0 THEN now() END, CASE WHEN i %% 50 = 0 THEN now() END, NULL,
       now() - i * interval '1 ms'
FROM generate_series(1, %(count)s) AS i
"""


def server_url():
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    return url


def with_database(url, name):
    return urlunsplit((url.scheme, url.netloc, f"/{name}", "", ""))


def recreate_database(url):
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        connection.execute(f'CREATE DATABASE "{DATABASE}"')


def setup_django(url):
    os.environ["DATABASE_URL"] = with_database(url, DATABASE)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fill():
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    params = {"names": TASK_NAMES, "queues": QUEUES}
    with connection.cursor() as cursor:
        cursor.execute(FILL_RESULTS, {**params, "count": RESULTS})
        cursor.execute(FILL_WORKERS)
        cursor.execute(FILL_MESSAGES, {**params, "count": MESSAGES})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_tasks_taskresult")
        cursor.execute("VACUUM ANALYZE django_tasks_queuedmessage")
    print(f"filled {RESULTS:,} results and {MESSAGES:,} queued messages "
          f"in {time.monotonic() - started:.0f} s", flush=True)


def pages():
    from django.urls import reverse

    from django_tasks.models import QueuedMessage, TaskResult, Worker

    results = reverse("admin:django_tasks_taskresult_changelist")
    messages = reverse("admin:django_tasks_queuedmessage_changelist")
    some_result = TaskResult.objects.order_by("-date_done")[500]
    failed = TaskResult.objects.filter(state="FAILURE").order_by("-date_done").first()
    message = QueuedMessage.objects.order_by("id")[5000]
    worker = Worker.objects.order_by("hostname").first()
    return [
        ("results: list", results, {}),
        ("results: page 2", results, {"p": 2}),
        ("results: page 100 (last)", results, {"p": 100}),
        ("results: state=FAILURE", results, {"state__exact": "FAILURE"}),
        ("results: task name", results, {"task_name": TASK_NAMES[3]}),
        ("results: queue", results, {"queue": "mail"}),
        ("results: FAILURE + queue", results, {"state__exact": "FAILURE", "queue": "mail"}),
        ("results: search by id", results, {"q": str(some_result.task_id)}),
        ("results: search text", results, {"q": "customer-42"}),
        ("results: detail (failure)",
         reverse("admin:django_tasks_taskresult_change", args=[failed.task_id]), {}),
        ("results: purge confirmation", reverse("admin:django_tasks_taskresult_purge"), {}),
        ("queued: list", messages, {}),
        ("queued: page 2", messages, {"p": 2}),
        ("queued: running", messages, {"state": "running"}),
        ("queued: scheduled", messages, {"state": "scheduled"}),
        ("queued: queue", messages, {"queue": "reports"}),
        ("queued: search by id", messages, {"q": str(message.task_id)}),
        ("queued: detail",
         reverse("admin:django_tasks_queuedmessage_change", args=[message.pk]), {}),
        ("workers: list", reverse("admin:django_tasks_worker_changelist"), {}),
        ("workers: detail", reverse("admin:django_tasks_worker_change", args=[worker.pk]), {}),
    ]


class QueryLog:
    """Counts and times the SQL of a request (Django's own log is reset per request)."""

    def __init__(self):
        self.count, self.seconds, self.slowest = 0, 0.0, (0.0, "")

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - started
            self.count += 1
            self.seconds += took
            self.slowest = max(self.slowest, (took, sql))


def measure(runs, show_sql):
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    user, _ = User.objects.get_or_create(username="bench", defaults={
        "is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    rows = []
    for label, url, params in pages():
        log = QueryLog()
        with connection.execute_wrapper(log):
            response = client.get(url, params)
        if response.status_code != 200:
            raise SystemExit(f"{label}: {url} {params} answered {response.status_code}")
        if show_sql:
            print(f"{label}: slowest query {log.slowest[0] * 1000:.1f} ms: {log.slowest[1]}")
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(url, params)
            timings.append((time.perf_counter() - started) * 1000)
        rows.append((label, statistics.median(timings), max(timings), log.count,
                     log.seconds * 1000))
    width = max(len(label) for label, *_ in rows)
    print(f"{'page':<{width}}  median ms  max ms  queries  SQL ms")
    for label, median, slowest, count, sql in rows:
        print(f"{label:<{width}}  {median:9.1f}  {slowest:6.1f}  {count:7d}  {sql:6.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing, filled bench database")
    parser.add_argument("--show-sql", action="store_true",
                        help="print each page's slowest query")
    options = parser.parse_args()
    url = server_url()
    if not options.reuse:
        recreate_database(url)
    setup_django(url)
    if not options.reuse:
        fill()
    measure(options.runs, options.show_sql)


if __name__ == "__main__":
    main()
