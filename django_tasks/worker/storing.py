"""Storing outcomes so that none of them can stop the worker.

The results thread, the supervisor and housekeeping all end messages
through ``store``: an outcome the database refuses, or whose workflow
headers cannot be followed (a hand-made message, a link that makes no
sense), is stored as a failure instead, and the rest of its batch as usual.
"""

import logging

from .reconnect import DB_ERRORS

logger = logging.getLogger("django_tasks.worker")


def store(backend, outcomes, worker_id):
    """Store ``outcomes`` (one transaction when all goes well). An unavailable
    database raises; the caller stores them again once it is back."""
    if _refusal(backend, outcomes, worker_id) is None:
        return
    # One outcome that cannot be stored must not take the rest of the batch
    # with it: one by one.
    remaining = list(outcomes)
    while remaining:
        _store_one(backend, remaining[0], worker_id)
        del remaining[0]  # stored: not again if the database then goes away


def _refusal(backend, outcomes, worker_id):
    """Store ``outcomes``; what refused them, or None."""
    try:
        backend.finish(outcomes, worker_id)
    except DB_ERRORS:
        raise
    except Exception as exc:
        return exc
    return None


def _store_one(backend, outcome, worker_id):
    error = _refusal(backend, [outcome], worker_id)
    if error is None:
        return
    message = outcome.message
    logger.error("Could not store the outcome of %s[%s]; storing a failure instead",
                 message.task_name, message.task_id, exc_info=error)
    # Its workflow headers kept, and without them if those are what
    # cannot be followed.
    failure = outcome.unstorable(error)
    refused = _refusal(backend, [failure], worker_id)
    if refused is not None and failure.message.headers:
        refused = _refusal(backend, [outcome.unstorable(error, keep_workflow=False)], worker_id)
    if refused is not None:
        # Nothing of the task's own is left in it: the result table itself
        # refuses (a trigger, a constraint). The message stays claimed
        # until this worker stops, then is delivered again.
        logger.error("The database refused the failure of %s[%s] too (%s); its message "
                     "stays claimed", message.task_name, message.task_id,
                     str(refused).strip() or type(refused).__name__)
