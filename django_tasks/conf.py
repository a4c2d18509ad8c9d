"""The ``DJANGO_TASKS`` setting: defaults, and the one place it is read.

Validation lives in ``checks.py`` so that a wrong value fails at start-up
with a message saying what to change.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .celery_settings import celery_value, is_celery_setting

DEFAULTS = {
    # Database alias that holds the queue and the results.
    "DATABASE": "default",
    "DEFAULT_QUEUE": "default",
    # How long results are kept; None keeps them forever.
    "RESULT_EXPIRES": timedelta(days=1),
    # {"glob on task name": {"queue": ..., "priority": ...}}; first match wins.
    "TASK_ROUTES": {},
    "SERIALIZER": "json",
    "ACCEPT_CONTENT": ["json"],
    # Run tasks inline on .delay()/.apply_async() (for tests).
    "EAGER": False,
    "BEAT_SCHEDULE": {},
    # Default hard/soft time limits in seconds (None: no limit).
    "TIME_LIMIT": None,
    "SOFT_TIME_LIMIT": None,
    # Seconds between worker heartbeats, and how old a heartbeat may get
    # before the worker counts as lost and its tasks are delivered again.
    "HEARTBEAT_INTERVAL": 5.0,
    "WORKER_LOST_TIMEOUT": 30.0,
    # How often a delivery may be retried after its worker was lost.
    "MAX_DELIVERIES": 3,
    # Acknowledge a message after its task ran (at least once: a worker that
    # dies mid-task leaves it to run again). False acknowledges just before
    # (at most once: such a task ends FAILURE with WorkerLostError instead);
    # the task option acks_late= overrides it.
    "ACKS_LATE": True,
    # Seconds a worker sleeps between polls when no wake-up arrives.
    "POLL_INTERVAL": 1.0,
    # Use LISTEN/NOTIFY on PostgreSQL (turn off behind PgBouncer in
    # transaction mode, where LISTEN does not work).
    "LISTEN_NOTIFY": True,
    # Commit the worker's own claims/acknowledgements with a WAL flush each
    # (PostgreSQL synchronous_commit). Off by default: faster, and a server
    # crash only makes the last instant's tasks run again.
    "SYNCHRONOUS_ACKS": False,
    # Wait for the WAL flush when a .delay() outside any transaction commits
    # (PostgreSQL synchronous_commit). False trades durability for speed: a
    # server crash may lose the enqueues of its last fraction of a second.
    "SYNCHRONOUS_ENQUEUE": True,
    # Prepare the statements every task runs (enqueue, claim, store) once
    # per connection (PostgreSQL). Turn off behind PgBouncer in transaction
    # mode older than 1.22.1 (psycopg's DEALLOCATE ALL after a rollback, and
    # COPY, need its fixes) or without max_prepared_statements.
    "PREPARED_STATEMENTS": True,
    # Rows deleted per statement when purging expired results.
    "PURGE_BATCH_SIZE": 5000,
    # The largest message, in bytes (arguments and options serialized): a
    # larger one is refused at call time with EncodeError.
    "MAX_MESSAGE_SIZE": 16 * 1024 * 1024,
    # The largest stored return value, in bytes (serialized): a larger one
    # ends its task FAILURE instead of being stored.
    "MAX_RESULT_SIZE": 64 * 1024 * 1024,
}


class Settings:
    """Attribute access to ``settings.DJANGO_TASKS`` merged over the defaults
    (and over a Celery project's ``CELERY_*`` settings: ``celery_settings.py``).

    Each value is read once and kept (a read was over a microsecond, and a
    ``.delay()`` makes half a dozen); ``override_settings`` and anything
    else that sends Django's ``setting_changed`` for ``DJANGO_TASKS`` (or a
    ``CELERY_*`` setting) clear what was kept. Changing the dict in place
    is not seen.
    """

    def __getattr__(self, name: str) -> Any:
        # Only called for a value not kept yet.
        if name not in DEFAULTS:
            raise AttributeError(f"DJANGO_TASKS has no setting {name!r}")
        user = getattr(django_settings, "DJANGO_TASKS", None) or {}
        if name in user:
            value = user[name]
        else:  # a Celery project's CELERY_* setting, if it has one
            value = celery_value(name, DEFAULTS[name])
        self.__dict__[name] = value
        return value

    def reload(self) -> None:
        self.__dict__.clear()

    def user_keys(self) -> set[str]:
        return set((getattr(django_settings, "DJANGO_TASKS", None) or {}).keys())


settings = Settings()


@receiver(setting_changed)
def _reload_settings(setting, **kwargs):
    if setting == "DJANGO_TASKS" or is_celery_setting(setting):
        settings.reload()
