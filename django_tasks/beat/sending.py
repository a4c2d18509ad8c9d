"""Turning one run of a periodic task into a message on the queue.

Used by the scheduler (for a tick) and by the admin's "run now" action.
Like Celery's ``send_task``, this does not need the task's code: a name the
beat process has not imported is still sent, routed by ``TASK_ROUTES``,
and the worker that lacks it reports ``NotRegistered``.
"""

from ..queue import enqueue
from ..task import task_for_sending


def build_run(periodic, tick=None):
    """The message for one run of ``periodic`` (a ``PeriodicTask``)."""
    task = task_for_sending(periodic.task)
    args, kwargs = periodic.decoded_arguments()
    headers = {"periodic_task": periodic.name}
    if tick is not None:
        headers["periodic_tick"] = tick.isoformat()
    return task.build_message(
        args, kwargs, queue=periodic.queue or None, priority=periodic.priority,
        expires=periodic.expire_seconds, headers=headers)


def send_run(periodic, tick=None):
    """Enqueue one run inside the caller's transaction; returns the message."""
    message = build_run(periodic, tick)
    enqueue([message])
    return message

