"""The queue contract, with the parts every vendor shares written once (ORM)."""

import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db import connections, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from ..messages import (
    MAX_TASK_ID_LENGTH,
    READ_ERRORS,
    Message,
    Unreadable,
    checked_headers,
    is_task_id,
)
from ..models import (
    HousekeepingRun,
    QueuedMessage,
    TaskGroup,
    TaskResult,
    UniqueLock,
    Worker,
)
from ..outcomes import RESULT_UPDATE_FIELDS
from ..timestamps import HIGHEST
from ..unique import FOR_HEADER, KEY_HEADER

#: Callables ``hook(outcomes, queue)`` run inside the transaction that stores
#: results, so that whatever follows a task (callbacks, the next step of a
#: workflow) is enqueued atomically with its result.
FINISH_HOOKS = []
# A message handed back to the queue.
UNCLAIMED = {"claimed_by": None, "claimed_pid": None, "claimed_at": None, "started_at": None,
             "acked_at": None}

# The available_at of a message waiting for a concurrency slot: beyond the
# claim's reach until a freed slot makes it due (the triggers of migration
# 0012 write it as text; worker/concurrency_gate.py).
PARKED = HIGHEST


class BatchWriter:
    """Each batch is one ``enqueue()``: databases that cannot stream rows.

    The protocol: ``write(messages)`` for each full batch, ``finish(messages)``
    once with the rest; used as a context manager, so that an error while
    planning interrupts what the writer holds open.
    """

    def __init__(self, queue):
        self.queue = queue

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def write(self, messages):
        self.queue.enqueue(messages)

    finish = write


class BaseQueue:
    """Enqueue many, claim, mark started, finish (ack + results), release, wait.

    Subclasses supply ``enqueue``, ``claim`` and the two waits; the rest is
    plain ORM and the same on every database.
    """

    #: True where waiting is woken by the database (LISTEN/NOTIFY).
    wakes_up = False
    #: True where store_and_acknowledge() also notifies, in one statement.
    single_statement_finish = False

    def __init__(self, alias):
        self.alias = alias
        self._enqueued_in_transaction = threading.local()

    @property
    def connection(self):
        return connections[self.alias]

    # -- producer side ------------------------------------------------

    def enqueue(self, messages):
        raise NotImplementedError

    def message_writer(self):
        """A writer for messages handed over in batches while a canvas is
        planned (``canvas.Plan``), inside the caller's transaction."""
        return BatchWriter(self)

    def remember_uncommitted(self, task_ids):
        """Note ids enqueued in a still-open transaction (``get()`` guard)."""
        if not self.connection.in_atomic_block:
            return
        pending = getattr(self._enqueued_in_transaction, "ids", None)
        if pending is None:
            pending = self._enqueued_in_transaction.ids = set()
        pending.update(task_ids)
        transaction.on_commit(lambda: pending.difference_update(task_ids), using=self.alias)

    def is_uncommitted(self, task_id):
        pending = getattr(self._enqueued_in_transaction, "ids", None)
        return bool(pending) and task_id in pending and self.connection.in_atomic_block

    # -- unique keys (unique.py) -----------------------------------------

    def hold_unique_key(self, message, key, unique_for, given_id=False):
        """Enqueue ``message`` if no live message of its task holds ``key``;
        the holder's task id (``message``'s own if it was written).

        Never raises for a held key: the lock's INSERT does nothing on a
        conflict, so the caller's transaction stays usable. A concurrent
        sender of the same key that has not committed makes this one wait
        for it (the unique index), then see its outcome. ``given_id``: the
        caller chose the task id, which a message without this key may
        already have: a savepoint keeps that IntegrityError to itself.
        """
        with transaction.atomic(using=self.alias, savepoint=given_id):
            for _ in range(UNIQUE_ATTEMPTS):
                now = timezone.now()
                taken, holder = self.try_unique_key(message, key, unique_for, now)
                if holder is not None:
                    if self._holds(holder, now):
                        return holder.task_id
                    taken = self._take_over(message, key, unique_for, holder, now)
                if taken:
                    self.enqueue([message])
                    return message.task_id
                # The row changed after this statement's snapshot was taken (a
                # concurrent sender committed, or a purge): look at it again.
        raise RuntimeError(f"{message.task_name}: unique_key {key!r} changed hands "
                           f"{UNIQUE_ATTEMPTS} times while this send looked at it")

    def try_unique_key(self, message, key, unique_for, now):
        """Insert the lock row of (task, key) for ``message`` unless one exists:
        (True, None) if inserted, else (False, the existing row's UniqueHolder,
        or None if this statement's snapshot does not show it)."""
        raise NotImplementedError

    def unique_holder(self, task_name, key):
        """The UniqueHolder of (task, key) in a fresh snapshot, or None."""
        queued = QueuedMessage.objects.using(self.alias).filter(task_id=OuterRef("task_id"))
        row = (UniqueLock.objects.using(self.alias).filter(task_name=task_name, key=key)
               .values_list("task_id", "created_at", "held_until")
               .annotate(queued=Exists(queued)).first())
        return None if row is None else UniqueHolder(*row)

    @staticmethod
    def _holds(holder, now):
        return holder.queued or (holder.held_until is not None and holder.held_until > now)

    def _take_over(self, message, key, unique_for, holder, now):
        """Hand a stale lock to ``message``, if nobody took it meanwhile: the
        compare (task id and time of the take) is on the row's own values,
        which an UPDATE re-reads after waiting for a concurrent one."""
        return bool(UniqueLock.objects.using(self.alias).filter(
            task_name=message.task_name, key=key, task_id=holder.task_id,
            created_at=holder.created_at).update(
            task_id=message.task_id, unique_for=unique_for, created_at=now, held_until=None))

    def record_unique_finishes(self, messages):
        """Hold the keys of these acknowledged messages ``unique_for`` longer."""
        now = timezone.now()
        locks = UniqueLock.objects.using(self.alias)
        for m in messages:
            locks.filter(task_name=m.task_name, key=m.headers[KEY_HEADER],
                         task_id=m.task_id).update(
                held_until=now + timedelta(seconds=m.headers[FOR_HEADER]))

    def live_unique_locks(self):
        """The lock rows whose key is held now (their message queued, or within unique_for)."""
        queued = QueuedMessage.objects.using(self.alias).filter(task_id=OuterRef("task_id"))
        return UniqueLock.objects.using(self.alias).filter(
            Q(Exists(queued)) | Q(held_until__gt=timezone.now()))

    def purge_unique_locks(self, older_than, batch_size):
        """Delete lock rows taken before ``older_than`` that hold nothing any
        more (keys used once). Each DELETE repeats the conditions: a row
        taken over meanwhile has a new ``created_at``, which the DELETE
        re-reads after waiting for that taker, and keeps."""
        queued = QueuedMessage.objects.using(self.alias).filter(task_id=OuterRef("task_id"))
        stale = UniqueLock.objects.using(self.alias).filter(
            ~Exists(queued), Q(held_until__isnull=True) | Q(held_until__lte=timezone.now()),
            created_at__lt=older_than)
        total = 0
        while True:
            keys = list(stale.order_by("id").values_list("pk", flat=True)[:batch_size])
            if not keys:
                return total
            total += stale.filter(pk__in=keys)._raw_delete(self.alias)

    # -- consumer side ------------------------------------------------

    def claim(self, worker_id, queues, limit, start=0, pid=None):
        """Atomically take up to ``limit`` due messages for ``worker_id`` (its
        process ``pid``), the first ``start`` of them (in run order) marked
        started as well."""
        raise NotImplementedError

    def mark_started(self, message_ids, when=None):
        QueuedMessage.objects.using(self.alias).filter(id__in=message_ids).update(
            started_at=when or timezone.now())

    def finish(self, outcomes, worker_id, started_ids=()):
        """Store results and acknowledge messages, all in one transaction
        (and record the start of prefetched messages still running)."""
        if not started_ids and self.finishes_in_one_statement(outcomes):
            # Nothing else to do in the transaction: the single statement is
            # atomic by itself, and saves the BEGIN and COMMIT round trips.
            self.store_and_acknowledge(
                _latest_per_task([o for o in outcomes if o.stores_result]),
                [o.message.id for o in outcomes],
                notify_ids=[o.message.task_id for o in outcomes])
            return
        with self.acknowledging_transaction():
            self.finish_in_transaction(outcomes, worker_id, started_ids)

    def acknowledging_transaction(self):
        """The transaction ``finish`` stores and acknowledges in."""
        return transaction.atomic(using=self.alias)

    def finishes_in_one_statement(self, outcomes):
        """No retries to reschedule and no hook with work to do."""
        if not self.single_statement_finish:
            return False
        if any(o.retry_at is not None or o.requeue for o in outcomes):
            return False
        return not any(getattr(hook, "wants", lambda outcomes: True)(outcomes)
                       for hook in FINISH_HOOKS)

    def finish_in_transaction(self, outcomes, worker_id, started_ids=()):
        if started_ids:
            self.mark_started(started_ids)
        self.store_and_acknowledge(
            _latest_per_task([o for o in outcomes if o.stores_result]),
            [o.message.id for o in outcomes if o.retry_at is None and not o.requeue])
        for outcome in outcomes:
            if outcome.retry_at is not None:
                self._reschedule(outcome.message, outcome.retry_at, outcome.new_body)
        requeued = [o.message.id for o in outcomes if o.requeue]
        if requeued:  # Reject(requeue=True): delivered again, the delivery counted
            self.release_messages(requeued)
        for hook in FINISH_HOOKS:
            hook(outcomes, self)
        self.notify_results([o.message.task_id for o in outcomes])

    def store_and_acknowledge(self, stored, done_ids, notify_ids=()):
        """Upsert the result rows of ``stored`` outcomes; delete ``done_ids`` messages;
        wake the waiters of ``notify_ids``."""
        if stored:
            TaskResult.objects.using(self.alias).bulk_create(
                [o.result_row() for o in stored], update_conflicts=True,
                unique_fields=["task_id"], update_fields=RESULT_UPDATE_FIELDS)
        if done_ids:
            QueuedMessage.objects.using(self.alias).filter(id__in=done_ids)._raw_delete(
                self.alias)
        self.notify_results(list(notify_ids))

    def _reschedule(self, message, when, new_body=None):
        headers = dict(message.headers, retries=message.retries + 1)
        QueuedMessage.objects.using(self.alias).filter(id=message.id).update(
            available_at=when, **UNCLAIMED,
            headers=headers, deliveries=0, body=new_body or message.body)

    def release(self, worker_id, pid=None):
        """Hand claimed messages back to the queue (shutdown): the worker's,
        or only those of its process ``pid``."""
        # Never a message acknowledged before it ran (acks_late=False): it
        # must not run again; its holder fails it (worker/at_most_once.py).
        count = self.claimed_by_worker(worker_id, pid).filter(acked_at__isnull=True).update(
            **UNCLAIMED)
        if count:
            self.notify_queue()
        return count

    def claimed_by_worker(self, worker_id, pid=None):
        rows = QueuedMessage.objects.using(self.alias).filter(claimed_by=worker_id)
        return rows.filter(claimed_pid=pid) if pid is not None else rows

    def claimed_messages(self, worker_id, pid):
        """The messages process ``pid`` of the worker holds (a dead prefork child's)."""
        return [self.message_from_model(row)
                for row in self.claimed_by_worker(worker_id, pid).order_by("id")]

    def acknowledge_early(self, message_id, worker_id):
        """Mark a claimed message as begun, for good, before its task runs
        (``acks_late=False``): from then on it is never delivered again. False
        when ``worker_id`` no longer holds it (declared lost, recovered)."""
        live = Worker.objects.using(self.alias).filter(id=worker_id, stopped_at__isnull=True)
        return bool(QueuedMessage.objects.using(self.alias).filter(
            id=message_id, claimed_by=worker_id, acked_at__isnull=True).filter(
            Exists(live)).update(acked_at=timezone.now()))

    def acknowledged_messages(self, worker_id, pid=None):
        """The messages of ``worker_id`` (its process ``pid``) acknowledged
        before they ran: their tasks began, and were cut short if still here."""
        rows = self.claimed_by_worker(worker_id, pid).filter(acked_at__isnull=False)
        return [self.message_from_model(row) for row in rows.order_by("id")]

    # -- revoking running tasks ----------------------------------------

    def request_terminate(self, task_ids):
        """Ask whichever worker runs these tasks to stop them."""
        count = QueuedMessage.objects.using(self.alias).filter(
            task_id__in=[t for t in task_ids if is_task_id(t)], claimed_by__isnull=False,
            terminate_requested_at__isnull=True).update(terminate_requested_at=timezone.now())
        return count

    def terminate_requests(self, worker_id):
        """{task id: (message id, claiming pid)} of this worker's tasks to stop."""
        return {str(task_id): (pk, pid) for task_id, pk, pid in
                QueuedMessage.objects.using(self.alias).filter(
                    claimed_by=worker_id, terminate_requested_at__isnull=False)
                .values_list("task_id", "id", "claimed_pid")}

    # -- recovery and housekeeping -------------------------------------

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

    def release_messages(self, message_ids, undeliver=False):
        """Put messages back in the queue; ``undeliver`` for ones never started
        (prefetched), so the claim does not count as a delivery."""
        update = dict(UNCLAIMED)
        if undeliver:
            update["deliveries"] = F("deliveries") - 1
        count = QueuedMessage.objects.using(self.alias).filter(
            id__in=message_ids, acked_at__isnull=True).update(**update)
        if count:
            self.notify_queue()
        return count

    # -- concurrency slots (worker/concurrency_gate.py) ---------------------

    def take_slots(self, worker_id, groups):
        """Give claimed messages the free slots of their keys, in order, and
        park the rest until a slot frees (unclaimed, their delivery not
        counted). ``groups``: ``(task_name, key, ids, limits)``, the ids of
        one key in run order, each with its limit. Returns the ids
        admitted; ids no longer claimed by ``worker_id`` are in neither.
        Serialized per key against other gates and the wakers."""
        with self.slot_transaction(None, None):
            admitted = set()
            for task_name, key, ids, limits in groups:
                admitted |= self._take_slots(worker_id, task_name, key, ids, limits)
            return admitted

    def slot_transaction(self, task_name, key):
        """A transaction in which no slot of ``task_name``'s ``key`` is taken
        or freed by another (None: of any key)."""
        raise NotImplementedError

    def _take_slots(self, worker_id, task_name, key, ids, limits):
        rows = QueuedMessage.objects.using(self.alias)
        taken = rows.filter(holds_slot=True, task_name=task_name, concurrency_key=key).count()
        ours = set(rows.filter(id__in=ids, claimed_by=worker_id).values_list("id", flat=True))
        admitted, parked = [], []
        for message_id, limit in zip(ids, limits, strict=True):
            if message_id not in ours:
                continue
            if taken < limit:
                admitted.append(message_id)
                taken += 1
            else:
                parked.append(message_id)
        if admitted:
            rows.filter(id__in=admitted).update(concurrency_key=key, holds_slot=True)
        if parked:
            rows.filter(id__in=parked).update(
                concurrency_key=key, holds_slot=False, available_at=PARKED, **UNCLAIMED,
                deliveries=F("deliveries") - 1)
        return set(admitted)

    def wake_for_free_slots(self, limit):
        """Make due the parked messages of keys with free slots, up to
        ``limit``; the housekeeping net under the triggers. Returns how many."""
        rows = QueuedMessage.objects.using(self.alias)
        keys = (rows.filter(available_at=PARKED, claimed_by__isnull=True,
                            concurrency_key__isnull=False)
                .values_list("task_name", "concurrency_key").distinct()[:limit])
        woken = 0
        for task_name, key in keys:
            with self.slot_transaction(task_name, key):
                key_rows = rows.filter(task_name=task_name, concurrency_key=key)
                # Every message of the key that is due or running counts:
                # woken ones are on their way to a slot.
                busy = key_rows.exclude(available_at=PARKED, claimed_by__isnull=True).filter(
                    Q(holds_slot=True) | Q(available_at__lte=timezone.now())).count()
                parked = list(key_rows.filter(available_at=PARKED, claimed_by__isnull=True)
                              .order_by("-priority", "id").values_list("id", "headers"))
                free = _limit_of(parked) - busy
                if free > 0:
                    ids = [pk for pk, _ in parked[:free]]
                    woken += rows.filter(id__in=ids, available_at=PARKED).update(
                        available_at=timezone.now())
        if woken:
            self.notify_queue()
        return woken

    def defer_messages(self, message_ids, times):
        """Hand claimed messages back unstarted (their claim not counted as a
        delivery), each to wait until its time in ``times``: a flow limit
        lets them start then. No wake-up: they are not due."""
        if not message_ids:
            return 0
        update = dict(UNCLAIMED, deliveries=F("deliveries") - 1, available_at=Case(
            *(When(id=i, then=Value(at)) for i, at in zip(message_ids, times, strict=True)),
            output_field=QueuedMessage._meta.get_field("available_at")))
        # Only still claimed: handing back twice (a retried hand-back) must
        # not count a delivery off twice.
        return QueuedMessage.objects.using(self.alias).filter(
            id__in=message_ids, claimed_by__isnull=False, acked_at__isnull=True).update(**update)

    def take_rate_tokens(self, task_name, count, step, tolerance):
        """Atomically, on the database's clock, take the start of ``count``
        messages of ``task_name`` one ``step`` (seconds) apart from its rate
        bucket (``rate_limits.take_tokens``): how many start now, when the
        first of the others may (they follow one ``step`` apart), and the
        database's time now."""
        raise NotImplementedError

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
        """Reclaim the queue table's dead rows (no-op where not needed)."""

    def delete_stopped_workers(self, before):
        return Worker.objects.using(self.alias).filter(stopped_at__lt=before).delete()[0]

    # -- waking -------------------------------------------------------

    def notify_queue(self):
        """Wake idle workers (no-op where waking is by polling)."""

    def notify_results(self, task_ids):
        """Wake ``AsyncResult.get()`` callers (no-op where they poll)."""

    def prepare_wait_for_messages(self):
        """Subscribe to wake-ups before looking at the queue (no-op when polling)."""

    def prepare_wait_for_results(self):
        """Subscribe to result wake-ups before looking (no-op when polling)."""

    def wait_for_messages(self, timeout):
        """Block until new work may be there or ``timeout`` seconds pass."""
        time.sleep(timeout)

    def wait_for_results(self, timeout):
        """Block until some result may have been stored or ``timeout`` passes."""
        time.sleep(timeout)

    def result_notifications(self):
        """An async iterator of batches of result notification payloads, the
        first batch (empty) once subscribed; only where ``wakes_up``."""
        raise NotImplementedError

    def queue_listener_fileno(self):
        """A socket that turns readable on a queue wake-up, or None (polling)."""
        return None

    def drain_queue_notifications(self):
        """Consume pending queue wake-ups after the socket turned readable;
        returns how many new messages they announce (None: unknown, any)."""

    def close_listener(self):
        """Drop any connection kept for waiting (before fork, at shutdown)."""

    # -- results ------------------------------------------------------

    # Ids are any text; one no row can hold (NUL, too long) was never sent,
    # and is not looked up: PostgreSQL would refuse the NUL.

    def get_result(self, task_id):
        if not is_task_id(task_id):
            return None
        return TaskResult.objects.using(self.alias).filter(task_id=task_id).first()

    def get_message(self, task_id):
        if not is_task_id(task_id):
            return None
        return QueuedMessage.objects.using(self.alias).filter(task_id=task_id).first()

    def forget(self, task_id):
        if is_task_id(task_id):
            TaskResult.objects.using(self.alias).filter(task_id=task_id).delete()

    def purge_results(self, older_than, batch_size):
        """Delete results done before ``older_than``, ``batch_size`` rows a statement."""
        expired = TaskResult.objects.using(self.alias).filter(date_done__lt=older_than)
        return self._delete_in_batches(expired, "date_done", batch_size)

    def purge_groups(self, older_than, batch_size):
        """Delete saved groups and finished chords created before ``older_than``.

        A chord whose members are not all done keeps its row (its counter),
        however old: deleting it would leave its body never to run.
        """
        finished = (TaskGroup.objects.using(self.alias).filter(date_created__lt=older_than)
                    .filter(Q(remaining__isnull=True) | Q(remaining__lte=0)))
        return self._delete_in_batches(finished, "date_created", batch_size)

    def _delete_in_batches(self, rows, order_by, batch_size):
        """Delete ``rows`` oldest first, ``batch_size`` a statement (short locks)."""
        total = 0
        table = rows.model.objects.using(self.alias)
        while True:
            keys = list(rows.order_by(order_by).values_list("pk", flat=True)[:batch_size])
            if not keys:
                return total
            total += table.filter(pk__in=keys)._raw_delete(self.alias)

    # -- the admin's list pages ------------------------------------------

    def estimated_row_count(self, model):
        """The planner's row estimate for ``model``'s table, or None where the
        database keeps none (then the admin counts, capped)."""
        return None

    def distinct_values(self, model, column, limit, where="", params=(), descending=False):
        """Up to ``limit`` distinct non-null values of ``column``, in order
        (``descending``: highest first), among the rows matching ``where``
        (SQL with ``params``).

        A loose index scan (one index probe per value, standard SQL that both
        vendors run): the column must lead an index (or follow the columns
        ``where`` fixes), and then listing the task names of a million
        results reads a few dozen index entries instead of the whole table.
        """
        table = self.connection.ops.quote_name(model._meta.db_table)
        name = self.connection.ops.quote_name(column)
        first, beyond = ("MAX", "<") if descending else ("MIN", ">")
        only = f" WHERE {where}" if where else ""
        sql = (f"WITH RECURSIVE v(value) AS ("
               f" SELECT {first}({name}) FROM {table}{only}"
               f" UNION ALL"
               f" SELECT (SELECT {first}({name}) FROM {table}"
               f" WHERE {f'({where}) AND ' if where else ''}{name} {beyond} v.value)"
               f" FROM v WHERE v.value IS NOT NULL)"
               f" SELECT value FROM v WHERE value IS NOT NULL LIMIT %s")
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*params, *params, limit])
            return [row[0] for row in cursor.fetchall()]

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

    # -- helpers ------------------------------------------------------

    @staticmethod
    def message_from_model(row):
        headers, corrupt = checked_headers(row.headers or {})
        return Message(
            id=row.id, task_id=str(row.task_id), task_name=row.task_name, queue=row.queue,
            priority=row.priority, available_at=row.available_at, expires=row.expires,
            content_type=row.content_type, body=row.body, headers=headers,
            deliveries=row.deliveries, created_at=row.created_at, corrupt=corrupt,
            acked=row.acked_at is not None)

    @staticmethod
    def message_from_row(row, parse_datetime, parse_id, parse_json, parse_text=None):
        """A claimed row (CLAIM_COLUMNS) as a Message; a row whose values cannot
        be read comes back ``corrupt``, to fail as such, never raising."""
        (pk, task_id, task_name, queue, priority, available_at, expires, content_type,
         body, headers, deliveries, created_at, started_at, acked_at) = row
        try:
            if parse_text is not None:
                task_name, queue, content_type, body, headers = (
                    parse_text(task_name), parse_text(queue), parse_text(content_type),
                    parse_text(body), parse_text(headers))
            available_at = parse_datetime(available_at)
            expires = parse_datetime(expires) if expires is not None else None
            created_at = parse_datetime(created_at)
            headers = parse_json(headers)
            task_id = str(parse_id(task_id))
        except READ_ERRORS:
            return _unreadable_message(row, parse_datetime, parse_id, parse_json, parse_text)
        if Unreadable in (type(available_at), type(expires), type(created_at), type(headers)):
            return _unreadable_message(row, parse_datetime, parse_id, parse_json, parse_text)
        headers, corrupt = checked_headers(headers or {})
        return Message(
            id=pk, task_id=task_id, task_name=task_name, queue=queue,
            priority=priority, available_at=available_at, expires=expires,
            content_type=content_type, body=body, headers=headers,
            deliveries=deliveries, created_at=created_at,
            started=started_at is not None, corrupt=corrupt, acked=acked_at is not None)


def _readable_id(parse_id, task_id):
    """The task id of a row whose other values cannot be read, as text in
    any case: the result stored for it names it."""
    try:
        return str(parse_id(task_id))
    except READ_ERRORS:  # the row is then stored under this text instead
        return repr(task_id)[:MAX_TASK_ID_LENGTH]


def _unreadable_message(row, parse_datetime, parse_id, parse_json, parse_text):
    """The Message of a row some of whose values cannot be read: what can be
    read is kept (so its result names the task), the rest is replaced with
    values that can be stored, and ``corrupt`` says what was wrong."""
    (pk, task_id, task_name, queue, priority, available_at, expires, content_type,
     body, headers, deliveries, created_at, started_at, acked_at) = row
    problems = []

    def read(parse, value, column, fallback):
        try:
            value = parse(value) if parse is not None else value
        except READ_ERRORS as exc:
            value = Unreadable(f"{type(exc).__name__}: {exc}")
        if isinstance(value, Unreadable):
            problems.append(f"{column} cannot be read ({value.error})")
            return fallback
        return value

    now = timezone.now()
    text = {column: read(parse_text, value, column, "")
            for column, value in (("task_name", task_name), ("queue", queue),
                                  ("content_type", content_type), ("body", body),
                                  ("headers", headers))}
    parsed = read(parse_json, text["headers"], "headers", {}) if text["headers"] else {}
    headers, bad_header = checked_headers(parsed or {})
    return Message(
        id=pk, task_id=_readable_id(parse_id, task_id), task_name=text["task_name"] or "?",
        queue=text["queue"], priority=priority,
        available_at=read(parse_datetime, available_at, "available_at", now),
        expires=None if expires is None else read(parse_datetime, expires, "expires", None),
        content_type=text["content_type"], body=text["body"], headers=headers,
        deliveries=deliveries, created_at=read(parse_datetime, created_at, "created_at", now),
        started=started_at is not None, acked=acked_at is not None,
        corrupt="; ".join(problems + ([bad_header] if bad_header else [])) or "unreadable row")


def _limit_of(parked):
    """The concurrency limit the first of ``parked`` (id, headers) carries."""
    for _, headers in parked:
        limited = headers.get("concurrency") if isinstance(headers, dict) else None
        if isinstance(limited, list) and len(limited) == 2 and isinstance(limited[1], int):
            return limited[1]
    return 0


def _latest_per_task(outcomes):
    """One outcome per task id (the last), as one upsert cannot touch a row twice."""
    return list({o.message.task_id: o for o in outcomes}.values())


# What a second send of a task_id still queued is told (the unique id of
# the queue table refuses it).
REPEATED_TASK_ID_HINT = (
    "A task_id given to apply_async() is refused while a message with that id waits or "
    "runs; once it has finished, the id may be sent again (its new result replaces the "
    "old one).")

# A send looks again when the lock row changed under it (see hold_unique_key);
# each look follows a commit of another sender of the key, so this is never reached
# but by a pathological stream of takes of one key.
UNIQUE_ATTEMPTS = 100


class UniqueHolder(NamedTuple):
    """A lock row as a send sees it."""

    task_id: str
    created_at: datetime
    held_until: datetime | None
    queued: bool  # its message is in the queue


CLAIM_COLUMNS = ("id, task_id, task_name, queue, priority, available_at, expires, "
                 "content_type, body, headers, deliveries, created_at, started_at, acked_at")


def sort_claimed(messages):
    messages.sort(key=lambda m: (-m.priority, m.available_at, m.id))
    return messages
