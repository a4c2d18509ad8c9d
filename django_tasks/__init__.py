"""Celery's programming model with the Django database as broker and result store.

This module only re-exports; the code lives in modules named after what they hold.
"""

from . import states
from .beat.schedules import crontab
from .result import AsyncResult, EagerResult
from .task import Task, shared_task, task

__all__ = ["AsyncResult", "EagerResult", "Task", "crontab", "shared_task", "states", "task"]
