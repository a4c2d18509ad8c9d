"""At-most-once tasks (``acks_late=False``): acknowledged just before they run.

By default a message is acknowledged with its result, after its task ran
(Celery's ``acks_late=True``): a worker that dies mid-task leaves it to be
delivered again. A task that must never run twice (an email, a payment)
asks for the other order: its message is marked acknowledged
(``QueuedMessage.acked_at``, committed) just before the task body is
called, and from then on no path hands it back to the queue. A worker that
dies, is declared lost, or is cold-stopped after that point ends it
``FAILURE`` with ``WorkerLostError``; before it (prefetched, not begun) the
message goes back like any other, since it never ran.

Tasks left with the default pay nothing: the mark is one write per
at-most-once task, only for them.
"""

import logging

from django.utils import timezone

from .. import states
from ..conf import settings
from ..exceptions import WorkerLostError
from ..outcomes import Outcome, exception_text
from . import storing
from .reconnect import DB_ERRORS

logger = logging.getLogger("django_tasks.worker")


def acks_late(task):
    """Whether ``task`` is acknowledged after it ran (the default, at least once)."""
    value = getattr(task, "acks_late", None)
    return settings.ACKS_LATE if value is None else bool(value)


def acknowledge_before_running(task, message, backend, worker_id, hostname):
    """For an ``acks_late=False`` task, commit the mark that it began.

    Returns None when the task may run now (or is not at-most-once), else
    the Outcome to report instead of running it.
    """
    if task is None or acks_late(task):
        return None
    try:
        held = backend.acknowledge_early(message.id, worker_id)
    except DB_ERRORS as exc:
        # Not begun: deliver again (up to MAX_DELIVERIES) once the database is back.
        outcome = lost_outcome(message, f"could not mark it begun ({exc})".strip(), hostname)
        outcome.redeliver = True
        return outcome
    if not held:
        # Declared lost (stalled): the message is no longer this worker's.
        outcome = lost_outcome(message, "not run: this worker no longer holds its message "
                                        "(declared lost); whoever recovered it ends it",
                               hostname)
        outcome.stored = True  # nothing of it is this worker's to store
        return outcome
    message.acked = True
    return None


def lost_outcome(message, reason, hostname=""):
    """FAILURE with WorkerLostError for a message whose task may not run again."""
    error = WorkerLostError(reason)
    now = timezone.now()
    return Outcome(message=message, state=states.FAILURE, value=error,
                   result_text=exception_text(error), started_at=now, done_at=now,
                   hostname=hostname)


def cut_short(message, reason, hostname=""):
    """The end of an acknowledged message whose task was cut short."""
    return lost_outcome(message, f"{reason}; acks_late=False: its task began and is not "
                                 "delivered again", hostname)


def fail_acknowledged(backend, worker_id, pid, hostname, reason):
    """End ``FAILURE`` the acknowledged messages ``worker_id`` (process
    ``pid``) still holds: their tasks began and did not finish here."""
    held = backend.acknowledged_messages(worker_id, pid)
    if not held:
        return 0
    outcomes = [cut_short(message, reason, hostname) for message in held]
    storing.store(backend, outcomes, worker_id)
    for outcome in outcomes:
        message = outcome.message
        logger.error("Task %s[%s] failed: %s", message.task_name, message.task_id,
                     outcome.describe(), exc_info=outcome.value,
                     extra={"task_id": message.task_id, "task_name": message.task_name})
    return len(outcomes)


def hand_back(backend, worker_id, pid, hostname, reason):
    """What a stopping worker (or one of its processes) does with what it
    still holds: at-most-once tasks cut short fail, the rest goes back to
    the queue. Returns how many went back."""
    fail_acknowledged(backend, worker_id, pid, hostname, reason)
    return backend.release(worker_id, pid=pid)
