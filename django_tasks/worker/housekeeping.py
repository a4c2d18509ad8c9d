"""Housekeeping run inside workers: lost workers, expired messages, old results.

Each job runs at most about once per interval across all workers (see
``BaseQueue.take_turn``), so its cost does not grow with the number of
workers, and each handles a bounded batch per run.
"""

import logging
import time
from datetime import timedelta

from django.utils import timezone

from .. import states, task_signals
from ..conf import settings
from ..exceptions import DecodeError, TaskRevokedError, WorkerLostError
from ..maintenance import purge_expired_results
from ..monitoring import lost_cutoff
from ..outcomes import Outcome, exception_text
from . import at_most_once, storing
from .reconnect import DB_ERRORS

logger = logging.getLogger("django_tasks.worker")

BATCH = 1000
KEEP_STOPPED_WORKERS = timedelta(days=7)


def lost_or_failed(message, reason, max_deliveries):
    """What to do with a message whose runner died: deliver again, or fail it.

    Returns an Outcome to store (``WorkerLostError``) when the message has
    been delivered ``max_deliveries`` times already, or its at-most-once
    task had begun (``acks_late=False``), else None (release it).
    """
    if message.acked:
        return at_most_once.cut_short(message, reason)
    if message.deliveries < max_deliveries:
        return None
    error = WorkerLostError(f"{reason}; delivered {message.deliveries} time(s), "
                            f"MAX_DELIVERIES is {max_deliveries}: it looks like a poison "
                            "message (one that ends whatever runs it)")
    now = timezone.now()
    return Outcome(message=message, state=states.FAILURE, value=error,
                   result_text=exception_text(error), started_at=now, done_at=now)


def deliver_again_or_fail(backend, message, reason, hostname, worker_id):
    """End the delivery of a message whose runner died running it: delivered
    again (the delivery stays counted), or past MAX_DELIVERIES stored as its
    FAILURE with ``WorkerLostError``."""
    outcome = lost_or_failed(message, reason, settings.MAX_DELIVERIES)
    if outcome is None:
        logger.warning("Delivering %s[%s] again (delivery %d of at most %d)",
                       message.task_name, message.task_id, message.deliveries + 1,
                       settings.MAX_DELIVERIES)
        backend.hand_back([message.id], worker_id)
        return
    outcome.hostname = hostname
    storing.store(backend, [outcome], worker_id)
    logger.error("Task %s[%s] failed: %s", message.task_name, message.task_id,
                 outcome.describe(), exc_info=outcome.value,
                 extra={"task_id": message.task_id, "task_name": message.task_name})


def recover_lost_workers(backend):
    """Deliver again the messages of workers whose heartbeat went stale."""
    cutoff = lost_cutoff()
    lost = backend.mark_lost_workers(cutoff)
    if lost:
        logger.warning("%d worker(s) lost (no heartbeat for %ss)", lost,
                       settings.WORKER_LOST_TIMEOUT)
    orphans = backend.orphaned_messages(cutoff, BATCH)
    if not orphans:
        return 0, 0
    failed = [o for o in (lost_or_failed(m, "the worker running it was lost",
                                         settings.MAX_DELIVERIES) for m in orphans) if o]
    failed_ids = {o.message.id for o in failed}
    again = [m for m in orphans if m.id not in failed_ids]
    if failed:
        storing.store(backend, failed, worker_id=None)
    # Each from the worker that was lost with it: one that claimed it since
    # (after another recovery, or its supervisor, handed it back) keeps it.
    by_claimant = {}
    for message in again:
        by_claimant.setdefault(message.claimed_by, []).append(message.id)
    for claimant, ids in by_claimant.items():
        backend.hand_back(ids, claimant)
    logger.warning("Recovered %d message(s) from lost workers: %d delivered again, %d failed "
                   "with WorkerLostError", len(orphans), len(again), len(failed))
    return len(again), len(failed)


def revoke_expired_messages(backend):
    """End ``REVOKED`` the waiting messages whose ``expires`` passed (any queue)."""
    now = timezone.now()
    expired = backend.expired_waiting(now, BATCH)
    if not expired:
        return 0
    outcomes = []
    for message in expired:
        if message.corrupt:
            state, error = states.FAILURE, DecodeError(f"corrupt message: {message.corrupt}")
        else:
            state = states.REVOKED
            error = TaskRevokedError(f"expired at {message.expires.isoformat()}")
            task_signals.expired(message, hostname="")
        outcomes.append(Outcome(message=message, state=state, value=error,
                                result_text=exception_text(error), done_at=now))
    storing.store(backend, outcomes, worker_id=None)
    logger.info("Revoked %d expired message(s)", len(outcomes))
    return len(outcomes)


JOBS = [
    # (name, interval, function)
    ("vacuum_queue", lambda: timedelta(seconds=5), lambda backend: backend.vacuum_queue()),
    ("recover_lost_workers", lambda: timedelta(seconds=settings.HEARTBEAT_INTERVAL),
     recover_lost_workers),
    ("revoke_expired_messages", lambda: timedelta(seconds=max(settings.POLL_INTERVAL, 1.0)),
     revoke_expired_messages),
    # The triggers wake a parked message whenever a slot frees; this is the
    # net under them (a woken message revoked before it was claimed...).
    ("wake_for_free_slots", lambda: timedelta(seconds=max(settings.POLL_INTERVAL, 5.0)),
     lambda backend: backend.wake_for_free_slots(BATCH)),
    ("purge_results", lambda: timedelta(minutes=5), lambda backend: purge_expired_results()),
    ("delete_stopped_workers", lambda: timedelta(hours=1),
     lambda backend: backend.delete_stopped_workers(timezone.now() - KEEP_STOPPED_WORKERS)),
]


class Housekeeper:
    """Runs the jobs whose turn this worker wins, asking the database only
    when the job's interval has passed here too (not on every loop)."""

    def __init__(self, backend):
        self.backend = backend
        self.next_check = {}  # job name -> time.monotonic() of the next check

    def run_due(self):
        now = time.monotonic()
        for name, interval, job in JOBS:
            if now < self.next_check.get(name, 0.0):
                continue
            period = interval()
            self.next_check[name] = now + period.total_seconds()
            if self.backend.take_turn(name, period):
                self._run(name, job)

    def _run(self, name, job):
        try:
            job(self.backend)
        except DB_ERRORS:
            raise  # the worker's loop rides the outage out, then runs it again
        except Exception:
            # A bug or a row no job foresaw must not stop the worker; the
            # job runs again at its next turn.
            logger.exception("Housekeeping job %s failed; it runs again at its next turn", name)
