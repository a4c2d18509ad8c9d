"""Running one claimed message in a pool slot, the same way in every pool."""

import logging
from contextlib import nullcontext

from django.db import connections, transaction

from ..exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded
from ..execution import execute, interrupted_outcome, unrecordable_outcome
from ..registry import tasks as registry
from . import at_most_once
from .reconnect import DB_ERRORS
from .timelimits import MainThreadTask, limits_for, main_thread_limits

logger = logging.getLogger("django_tasks.worker")

INTERRUPTIONS = (SoftTimeLimitExceeded, TimeLimitExceeded, TaskRevokedError)


def discard_broken_connections():
    """Replace connections a previous task left broken (the server restarted).

    Unlike a request cycle, connections stay open across tasks whatever
    CONN_MAX_AGE says: reconnecting for every task would cost more than most
    tasks do.
    """
    # The thread's connections looked up once each (connections.all() looks
    # each up twice: a few microseconds a task).
    opened = connections._connections
    for alias in connections.settings:
        conn = getattr(opened, alias, None)
        if conn is None or not conn.errors_occurred:
            continue
        if conn.connection is not None and not conn.is_usable():
            conn.close()
        conn.errors_occurred = False


def run_message(message, hostname, backend, worker_id, in_main_thread):
    """Execute ``message``; atomic tasks also store their outcome, in their transaction."""
    discard_broken_connections()
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
    except DB_ERRORS:
        raise  # the database went away (atomic tasks store here): the loop rides it out
    except Exception as exc:
        # Not the task's own error (execute() keeps those): turning what it
        # did into a result failed. That message fails; the slot, and the
        # messages claimed with it, go on.
        logger.exception("Could not record the outcome of %s[%s]", message.task_name,
                         message.task_id)
        return unrecordable_outcome(message, exc, hostname)
    finally:
        if in_main_thread:
            MainThreadTask.running = None


def _run(task, message, hostname, backend, worker_id):
    not_run = at_most_once.acknowledge_before_running(task, message, backend, worker_id,
                                                      hostname)
    if not_run is not None:
        return not_run
    if task is not None and task.atomic:
        # The task's writes, its result and its acknowledgement commit
        # together: killed halfway, none of them happened.
        with transaction.atomic(using=backend.alias):
            outcome = execute(message, hostname)
            backend.finish_in_transaction([outcome], worker_id)
        outcome.stored = True
        return outcome
    return execute(message, hostname)
