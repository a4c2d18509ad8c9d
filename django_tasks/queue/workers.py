"""Workers' rows, lost-worker recovery and housekeeping turns.

``Workers`` is one of the topic mixins ``BaseQueue`` (base.py) is made of:
a worker registers, heartbeats and stops; housekeeping declares the silent
ones lost, finds what they held (handed back with ``Consumer.hand_back``)
and expired waiting messages, and takes its turns.
"""

import uuid

from django.utils import timezone

from ..models import HousekeepingRun, QueuedMessage, Worker


class Workers:
    """Worker rows, recovery and housekeeping."""

    def live_worker_ids(self, cutoff):
        return Worker.objects.using(self.alias).filter(
            stopped_at__isnull=True, last_heartbeat__gte=cutoff).values("id")

    def orphaned_messages(self, cutoff, limit):
        """Claimed messages whose worker stopped or whose heartbeat is older than cutoff."""
        rows = (QueuedMessage.objects.using(self.alias)
                .filter(claimed_by__isnull=False)
                .exclude(claimed_by__in=self.live_worker_ids(cutoff))
                .order_by("id")[:limit])
        return [self.message_from_model(row) for row in rows]

    def mark_lost_workers(self, cutoff):
        return Worker.objects.using(self.alias).filter(
            stopped_at__isnull=True, last_heartbeat__lt=cutoff).update(stopped_at=timezone.now())

    def expired_waiting(self, now, limit):
        # In the expires index's order: the first ``limit`` entries of it,
        # however many messages there are (by id, every expired one sorted).
        rows = (QueuedMessage.objects.using(self.alias)
                .filter(claimed_by__isnull=True, expires__lt=now).order_by("expires")[:limit])
        return [self.message_from_model(row) for row in rows]

    def take_turn(self, job, interval):
        """True if this worker should run ``job`` now (at most once per interval overall)."""
        now = timezone.now()
        runs = HousekeepingRun.objects.using(self.alias)
        if runs.filter(name=job, next_run__lte=now).update(next_run=now + interval):
            return True
        _, created = runs.get_or_create(name=job, defaults={"next_run": now + interval})
        return created

    def vacuum_queue(self):
        """Reclaim the queue table's dead rows when there are enough of them
        (no-op where not needed). True if it ran."""
        return False

    def delete_stopped_workers(self, before):
        return Worker.objects.using(self.alias).filter(stopped_at__lt=before).delete()[0]

    # -- workers ------------------------------------------------------

    def register_worker(self, **fields):
        return Worker.objects.using(self.alias).create(id=uuid.uuid4(), **fields)

    def heartbeat(self, worker_id, processed=None, failed=None):
        """Keep the worker's row fresh; False once it was declared lost (or
        stopped), which no heartbeat undoes: it must go on as a new worker."""
        update = {"last_heartbeat": timezone.now()}
        if processed is not None:
            update.update(processed=processed, failed=failed)
        return bool(Worker.objects.using(self.alias).filter(
            id=worker_id, stopped_at__isnull=True).update(**update))

    def stop_worker(self, worker_id, processed, failed):
        Worker.objects.using(self.alias).filter(id=worker_id).update(
            stopped_at=timezone.now(), last_heartbeat=timezone.now(),
            processed=processed, failed=failed)

