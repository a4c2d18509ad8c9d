"""A Django project's Celery set-up, written as Celery's documentation writes it
(``proj/__init__.py``, ``proj/celery.py``, ``app/tasks.py``) with only the
import changed. Workers load it with ``TESTS_EXTRA_APPS=tests.celeryproj``."""

# This will make sure the app is always imported when Django starts so that
# shared_task will use this app.
from .celery import app as celery_app

__all__ = ("celery_app",)
