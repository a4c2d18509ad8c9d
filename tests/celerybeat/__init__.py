"""A Celery project that adds its beat entries from code, as Celery's documentation
shows (``on_after_configure`` + ``add_periodic_task``). Only the workers a test
starts load it (``TESTS_EXTRA_APPS=tests.celerybeat``), so the test process's
own BEAT_SCHEDULE stays empty."""

from .celery import app as celery_app

__all__ = ("celery_app",)
