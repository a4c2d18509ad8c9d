"""Sending the task signals where a worker runs tasks, with Celery's arguments.

As Celery's dispatcher does, a receiver that raises is logged and the task
goes on: a monitoring hook must not fail the work it watches. Nothing is
built for a signal no one receives.
"""

import logging
from dataclasses import dataclass

from . import signals
from .conf import settings
from .context import Request
from .einfo import ExceptionInfo
from .exceptions import ContentDisallowed, DecodeError

logger = logging.getLogger("django_tasks.worker")

#: The consumer of this process: the sender of task_received, task_unknown
#: and task_rejected, as Celery's consumer is.
current = {"consumer": None}


@dataclass
class WorkerRequest(Request):
    """The request a worker builds from a message (Celery's worker Request)."""

    @property
    def name(self):
        return self.task

    @property
    def task_name(self):
        return self.task


def send(signal, **arguments):
    """``signal.send_robust``: a receiver's error is logged, never raised."""
    if not signal.receivers:
        return
    for receiver, response in signal.send_robust(**arguments):
        if isinstance(response, Exception):
            logger.error("Signal handler %r raised: %r", receiver, response,
                         exc_info=response)


def request_of(message, hostname=""):
    """A WorkerRequest for ``message``, its arguments decoded if they can be."""
    from .messages import decode_body

    try:
        args, kwargs = decode_body(message, settings.ACCEPT_CONTENT)
    except (ContentDisallowed, DecodeError):  # corrupt or refused: task_rejected says why
        args, kwargs = [], {}
    headers = message.headers
    return WorkerRequest(
        id=message.task_id, task=message.task_name, args=args, kwargs=kwargs,
        retries=message.retries, hostname=hostname, queue=message.queue,
        eta=message.available_at, expires=message.expires, priority=message.priority,
        group=headers.get("group_id"), root_id=headers.get("root_id") or message.task_id,
        parent_id=headers.get("parent_id"), delivery_count=message.deliveries,
        headers=headers)


def received(message, hostname):
    if signals.task_received.receivers:
        send(signals.task_received, sender=current["consumer"],
             request=request_of(message, hostname))


def failure(task, task_id, exc):
    if signals.task_failure.receivers:
        request = task.request
        send(signals.task_failure, sender=task, task_id=task_id, exception=exc,
             args=request.args, kwargs=request.kwargs, traceback=exc.__traceback__,
             einfo=ExceptionInfo(exc))


def retry(task, task_id, reason):
    if signals.task_retry.receivers:
        einfo = ExceptionInfo(reason) if isinstance(reason, BaseException) else None
        send(signals.task_retry, sender=task, request=task.request, reason=reason,
             einfo=einfo, task_id=task_id)


def revoked(task, request, terminated=False, expired=False, signum=None):
    if signals.task_revoked.receivers:
        send(signals.task_revoked, sender=task, request=request, terminated=terminated,
             signum=signum, expired=expired)


def expired(message, hostname):
    """A message whose ``expires`` passed before it started."""
    if signals.task_revoked.receivers:
        from .registry import tasks as registry

        revoked(registry.get(message.task_name), request_of(message, hostname), expired=True)


def unknown(message, exc):
    if signals.task_unknown.receivers:
        send(signals.task_unknown, sender=current["consumer"], name=message.task_name,
             id=message.task_id, message=message, exc=exc)


def rejected(message, exc):
    if signals.task_rejected.receivers:
        send(signals.task_rejected, sender=current["consumer"], message=message, exc=exc)
