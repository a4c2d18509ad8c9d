"""Settings for the test suite: the demo project plus the tests' own tasks.

Which database:
- ``TESTS_DATABASE_JSON`` (set by the suite for the worker processes it
  starts, so they use the test database);
- else ``TEST_DATABASE=sqlite``: SQLite files;
- else ``DATABASE_URL`` if set (e.g. the machine's PostgreSQL);
- else an embedded PostgreSQL started for the run (``pgserver``).

Each run has names of its own (``TESTS_RUN_ID``, its pid unless given): its
test database and the embedded server's directory, so that two runs on one
machine (two checkouts, CI beside a developer) do not collide.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

from testproject.settings import *  # noqa: F403
from testproject.settings import BASE_DIR, DATABASES, INSTALLED_APPS
from tests.run_id import run_id

RUN_ID = run_id()

INSTALLED_APPS = [*INSTALLED_APPS, "tests"]
# Apps only the worker processes a test starts have (comma-separated): their
# tasks are registered there and not in the test process that sends them.
INSTALLED_APPS += [app for app in os.environ.get("TESTS_EXTRA_APPS", "").split(",") if app]

if os.environ.get("TESTS_DATABASE_JSON"):
    DATABASES["default"] = json.loads(os.environ["TESTS_DATABASE_JSON"])
elif os.environ.get("TEST_DATABASE") == "sqlite":
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / "db.sqlite3"),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                    "transaction_mode": "IMMEDIATE", "timeout": 30},
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"django_tasks_test_{RUN_ID}.sqlite3")},
    }
elif not os.environ.get("DATABASE_URL"):
    from tests.embedded_postgres import start

    DATABASES["default"] = start(RUN_ID)
if not os.environ.get("TESTS_DATABASE_JSON") \
        and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's default, test_<NAME>, is the same for every run on a server.
    DATABASES["default"].setdefault("TEST", {}).setdefault(
        "NAME", f"test_{DATABASES['default']['NAME']}_{RUN_ID}")

# Django 6's task framework (django.tasks) on this app's queue
# (tests/test_django_tasks_backend.py); Django 5.2 has no use for the setting.
TASKS = {
    "default": {
        "BACKEND": "django_tasks.backends.DatabaseBackend",
        "QUEUES": ["default", "django-other"],
    },
}

# Short timings so the tests of waiting and recovery finish quickly.
DJANGO_TASKS = {
    "POLL_INTERVAL": float(os.environ.get("TESTS_POLL_INTERVAL", "0.2")),
    "HEARTBEAT_INTERVAL": 0.5,
    "WORKER_LOST_TIMEOUT": 3.0,
    # "0" for a worker that must poll (PgBouncer in transaction mode).
    "LISTEN_NOTIFY": os.environ.get("TESTS_LISTEN_NOTIFY", "1") == "1",
    # "0" behind PgBouncer in transaction mode before 1.22.1 (tests/test_pgbouncer.py).
    "PREPARED_STATEMENTS": os.environ.get("TESTS_PREPARED_STATEMENTS", "1") == "1",
}
# Size limits lowered for the worker processes a test starts (bytes), so
# going over them needs no large allocation.
for _key in ("MAX_MESSAGE_SIZE", "MAX_RESULT_SIZE"):
    if os.environ.get(f"TESTS_{_key}"):
        DJANGO_TASKS[_key] = int(os.environ[f"TESTS_{_key}"])

# Serializer settings for the worker processes a test starts: a name, and
# a comma-separated list.
if os.environ.get("TESTS_SERIALIZER"):
    DJANGO_TASKS["SERIALIZER"] = os.environ["TESTS_SERIALIZER"]
if os.environ.get("TESTS_ACCEPT_CONTENT"):
    DJANGO_TASKS["ACCEPT_CONTENT"] = os.environ["TESTS_ACCEPT_CONTENT"].split(",")
# A process in which the optional msgpack package is not installed:
# ``import msgpack`` raises ImportError, as it would there.
if os.environ.get("TESTS_WITHOUT_MSGPACK"):
    sys.modules["msgpack"] = None

# A BEAT_SCHEDULE for the worker processes a test starts: JSON
# {"name": {"task": ..., "seconds": n, "args": [...], "catch_up": ...}}.
if os.environ.get("TESTS_BEAT_SCHEDULE"):
    from datetime import timedelta

    DJANGO_TASKS["BEAT_SCHEDULE"] = {
        name: {**{k: v for k, v in entry.items() if k != "seconds"},
               "schedule": timedelta(seconds=entry["seconds"])}
        for name, entry in json.loads(os.environ["TESTS_BEAT_SCHEDULE"]).items()}

# A handler of the project's own on the root logger, for the worker
# processes a test starts: it writes each record it receives to this file
# (tests/log_records.py), as an error tracker hooked to logging would see it.
if os.environ.get("TESTS_LOG_RECORDS"):
    LOGGING = {
        **LOGGING,  # noqa: F405
        "handlers": {**LOGGING["handlers"],  # noqa: F405
                     "records": {"class": "tests.log_records.JsonLinesHandler",
                                 "filename": os.environ["TESTS_LOG_RECORDS"],
                                 "level": "INFO"}},
        "root": {**LOGGING["root"], "handlers": [*LOGGING["root"]["handlers"], "records"]},  # noqa: F405
    }
