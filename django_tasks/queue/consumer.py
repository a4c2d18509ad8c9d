"""The consumer's operations: claim, start, finish, hand back, revoke.

``Consumer`` is one of the topic mixins ``BaseQueue`` (base.py) is made of:
what a worker does with the messages it claims, from the claim to their
acknowledgement (results stored, messages deleted) or their hand-back to
the queue (``hand_back``, the one way a claimed message goes back). The
vendor queue classes override ``claim`` and, on PostgreSQL, the statements
that finish in one round trip.
"""

from django.db import transaction
from django.db.models import Case, Exists, F, Value, When
from django.utils import timezone

from ..messages import (
    MAX_TASK_ID_LENGTH,
    READ_ERRORS,
    Message,
    Unreadable,
    checked_headers,
    is_task_id,
)
from ..models import QueuedMessage, TaskResult, Worker
from ..outcomes import RESULT_UPDATE_FIELDS

FINISH_HOOKS = []
# A message handed back to the queue.
UNCLAIMED = {"claimed_by": None, "claimed_pid": None, "claimed_at": None, "started_at": None,
             "acked_at": None}


class Consumer:
    """A worker's side of the queue: claim, finish, hand back, revoke."""

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
            self.hand_back(requeued, worker_id)
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

    def hand_back(self, message_ids, worker_id, undeliver=False, available_at=None):
        """Put messages ``worker_id`` claimed back in the queue, those it
        still holds; returns how many.

        ``undeliver`` for ones never started (prefetched, or refused by a
        flow gate), so the claim does not count as a delivery.
        ``available_at``: each message's due time (a flow limit lets it
        start then), else it is due as it was, and idle workers are woken.

        Only the claimant's own: a message it was declared lost with may
        since have been claimed by another worker, whose claim this must
        never undo; and a retried hand-back finds nothing left to count a
        delivery off twice. Never a message acknowledged before it ran
        (acks_late=False): it must not run again.
        """
        if not message_ids:
            return 0
        count = self._hand_back(list(message_ids), worker_id, undeliver, available_at)
        if count and available_at is None:
            self.notify_queue()
        return count

    def _hand_back(self, message_ids, worker_id, undeliver, available_at):
        update = dict(UNCLAIMED)
        if undeliver:
            update["deliveries"] = F("deliveries") - 1
        if available_at is not None:
            update["available_at"] = Case(
                *(When(id=i, then=Value(at))
                  for i, at in zip(message_ids, available_at, strict=True)),
                output_field=QueuedMessage._meta.get_field("available_at"))
        return QueuedMessage.objects.using(self.alias).filter(
            id__in=message_ids, claimed_by=worker_id, acked_at__isnull=True).update(**update)

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


    # -- helpers ------------------------------------------------------

    @staticmethod
    def message_from_model(row):
        headers, corrupt = checked_headers(row.headers or {})
        return Message(
            id=row.id, task_id=str(row.task_id), task_name=row.task_name, queue=row.queue,
            priority=row.priority, available_at=row.available_at, expires=row.expires,
            content_type=row.content_type, body=row.body, headers=headers,
            deliveries=row.deliveries, created_at=row.created_at, corrupt=corrupt,
            acked=row.acked_at is not None, claimed_by=row.claimed_by)

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

def _latest_per_task(outcomes):
    """One outcome per task id (the last), as one upsert cannot touch a row twice."""
    return list({o.message.task_id: o for o in outcomes}.values())

CLAIM_COLUMNS = ("id, task_id, task_name, queue, priority, available_at, expires, "
                 "content_type, body, headers, deliveries, created_at, started_at, acked_at")


def sort_claimed(messages):
    messages.sort(key=lambda m: (-m.priority, m.available_at, m.id))
    return messages
