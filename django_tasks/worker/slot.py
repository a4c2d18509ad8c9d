"""Running one claimed message in a pool slot, the same way in every pool."""

from contextlib import nullcontext

from django.db import transaction

from ..exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded
from ..registry import tasks as registry
from .execution import execute, interrupted_outcome
from .timelimits import MainThreadTask, limits_for, main_thread_limits

INTERRUPTIONS = (SoftTimeLimitExceeded, TimeLimitExceeded, TaskRevokedError)


def run_message(message, hostname, backend, worker_id, in_main_thread):
    """Execute ``message``; atomic tasks also store their outcome, in their transaction."""
    task = registry.get(message.task_name)
    soft, hard = limits_for(message, task)
    limits = main_thread_limits(soft, hard) if in_main_thread else nullcontext()
    if in_main_thread:
        MainThreadTask.running = str(message.task_id)
    try:
        with limits:
            return _run(task, message, hostname, backend, worker_id)
    except INTERRUPTIONS as exc:
        # The alarm or a terminate signal landed outside the task body
        # (between the body and storing its result): still this task's end.
        return interrupted_outcome(message, exc, hostname)
    finally:
        if in_main_thread:
            MainThreadTask.running = None


def _run(task, message, hostname, backend, worker_id):
    if task is not None and task.atomic:
        # The task's writes, its result and its acknowledgement commit
        # together: killed halfway, none of them happened.
        with transaction.atomic(using=backend.alias):
            outcome = execute(message, hostname)
            backend.finish_in_transaction([outcome], worker_id)
        outcome.stored = True
        return outcome
    return execute(message, hostname)
