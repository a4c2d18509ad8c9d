"""Celery's programming model with the Django database as broker and result store.

This module only re-exports; the code lives in modules named after what they hold.
"""

from . import states
from .app import Celery, current_app
from .beat.schedules import crontab
from .canvas import Signature, chain, chord, group, signature
from .log import get_task_logger
from .result import AsyncResult, EagerResult, GroupResult
from .task import Task, send_task, shared_task, task

__all__ = ["AsyncResult", "Celery", "EagerResult", "GroupResult", "Signature", "Task", "chain",
           "chord", "crontab", "current_app", "get_task_logger", "group", "send_task",
           "shared_task", "signature", "states", "task"]
