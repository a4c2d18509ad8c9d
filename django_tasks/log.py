"""Loggers for task code: ``get_task_logger(__name__)``, as Celery's.

A task logger is the module's own logger, placed under ``django_tasks.task``
(so the worker's handler shows it, and the project's root handlers still
receive it), whose records carry ``task_id`` and ``task_name`` of the task
running in that thread (``"???"`` outside a task, as in Celery)::

    from django_tasks.log import get_task_logger   # or: from django_tasks import …

    logger = get_task_logger(__name__)

    @task
    def add(x, y):
        logger.info("Adding %s + %s", x, y)

The worker prints them as Celery does::

    [2026-12-06 19:00:00,000: INFO/ForkPoolWorker-1] proj.tasks.add[<id>]: Adding 2 + 2
"""

import logging

from .context import running_task

#: The parent of every task logger.
TASK_LOGGER = "django_tasks.task"
#: Names that are the app's own: a task logger of one of them would loop.
RESERVED_LOGGER_NAMES = frozenset(("django_tasks", "django_tasks.worker", TASK_LOGGER))
UNKNOWN = "???"

task_logger = logging.getLogger(TASK_LOGGER)


class TaskContextFilter(logging.Filter):
    """Sets ``task_id`` and ``task_name`` on each record of a task logger from
    the task running in that thread, and keeps the logger under
    ``django_tasks.task`` (a logger of a parent package created after it
    would otherwise take it over)."""

    def __init__(self, logger):
        super().__init__()
        self.logger = logger

    def filter(self, record):
        if self.logger.parent is not task_logger:
            _place(self.logger)
        request = running_task.get()
        if request is None:
            record.task_id = record.task_name = UNKNOWN
        else:
            record.task_id = request.id or UNKNOWN
            record.task_name = request.task or UNKNOWN
        return True


def get_task_logger(name):
    """The logger ``name`` as a task logger (see the module's docstring)."""
    if name in RESERVED_LOGGER_NAMES:
        raise RuntimeError(f"logger name {name!r} is reserved for django_tasks itself")
    logger = logging.getLogger(name)
    _place(logger)
    if not any(isinstance(f, TaskContextFilter) for f in logger.filters):
        logger.addFilter(TaskContextFilter(logger))
    return logger


def _place(logger):
    if not _descends_from(logger, task_logger):
        logger.parent = task_logger


def _descends_from(logger, ancestor):
    while logger is not None:
        if logger is ancestor:
            return True
        logger = logger.parent
    return False
