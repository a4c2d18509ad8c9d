"""``AsyncResult``: the state and return value of a task, by id."""

import time

from django.db import transaction
from django.utils import timezone

from . import serialization, states
from .conf import settings
from .context import running_task
from .exceptions import TaskRevokedError, TimeoutError
from .worker.outcome import exception_text


def _backend():
    from .queue import get_backend
    return get_backend()


class AsyncResult:
    """A task's result as stored in the database; unknown ids are ``PENDING``."""

    def __init__(self, id, task_name=None):
        self.id = str(id)
        self._name = task_name
        self._row = None  # cached once ready: ready results never change

    def __repr__(self):
        return f"<AsyncResult: {self.id}>"

    def __str__(self):
        return self.id

    def __eq__(self, other):
        if isinstance(other, AsyncResult):
            return other.id == self.id
        return other == self.id

    def __hash__(self):
        return hash(self.id)

    # -- reading --------------------------------------------------------

    def _load(self):
        if self._row is not None:
            return self._row
        row = _backend().get_result(self.id)
        if row is not None and row.state in states.READY_STATES:
            self._row = row
        return row

    @property
    def state(self):
        row = self._load()
        if row is not None and row.state in states.READY_STATES:
            return row.state
        message = _backend().get_message(self.id)
        if message is not None and message.claimed_by is not None:
            return states.STARTED if message.started_at is not None else states.RECEIVED
        return row.state if row is not None else states.PENDING

    status = state

    @property
    def result(self):
        row = self._load()
        return _decode(row) if row is not None else None

    info = result

    @property
    def traceback(self):
        row = self._load()
        return row.traceback if row is not None else None

    def ready(self):
        return self.state in states.READY_STATES

    def successful(self):
        return self.state == states.SUCCESS

    def failed(self):
        return self.state == states.FAILURE

    def _field(self, name, default=None):
        row = self._load()
        if row is not None:
            return getattr(row, name)
        return default

    @property
    def name(self):
        return self._field("task_name", self._name)

    @property
    def date_done(self):
        return self._field("date_done")

    @property
    def retries(self):
        return self._field("retries", 0)

    @property
    def queue(self):
        return self._field("queue")

    @property
    def worker(self):
        return self._field("worker")

    @property
    def args(self):
        text = self._field("args")
        return serialization.loads(text, "json", ["json"]) if text else None

    @property
    def kwargs(self):
        text = self._field("kwargs")
        return serialization.loads(text, "json", ["json"]) if text else None

    @property
    def parent(self):
        parent_id = self._field("parent_id")
        if parent_id is None:
            message = _backend().get_message(self.id)
            parent_id = message.headers.get("parent_id") if message is not None else None
        return AsyncResult(parent_id) if parent_id else None

    # -- waiting --------------------------------------------------------

    def get(self, timeout=None, propagate=True, interval=0.5, disable_sync_subtasks=True):
        """Wait for the task to finish and return its value (or raise its error)."""
        if disable_sync_subtasks and running_task.get() is not None:
            raise RuntimeError(
                "Never call result.get() within a task: it can deadlock the worker. "
                "Use a chain or a chord instead.")
        backend = _backend()
        deadline = None if timeout is None else time.monotonic() + timeout
        backend.prepare_wait_for_results()
        while True:
            row = self._load()
            if row is not None and row.state in states.READY_STATES:
                return self._outcome(row, propagate)
            if backend.is_uncommitted(self.id):
                raise RuntimeError(
                    f"Task {self.id} was enqueued in this still-open transaction; no worker "
                    "can see it before the transaction commits, so get() would wait forever.")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("The operation timed out.")
            # A notification ends the wait early where the database sends
            # them; the interval bounds the wait where it does not.
            backend.wait_for_results(interval if remaining is None else min(interval, remaining))

    wait = get

    def _outcome(self, row, propagate):
        value = _decode(row)
        if row.state in states.PROPAGATE_STATES and propagate:
            raise value
        return value

    # -- changing -------------------------------------------------------

    def forget(self):
        self._row = None
        _backend().forget(self.id)

    def revoke(self, terminate=False, signal=None):
        """Stop the task from starting (it ends ``REVOKED``); with ``terminate``
        also stop it where it already runs."""
        return revoke_ids([self.id], terminate=terminate)


def revoke_ids(task_ids, terminate=False):
    """Revoke tasks: waiting ones end ``REVOKED`` now; running ones are asked to
    stop (``terminate``) at the worker that holds them. Returns how many were hit."""
    from .models import QueuedMessage
    from .worker.outcome import Outcome

    backend = _backend()
    alias = settings.DATABASE
    now = timezone.now()
    task_ids = [str(t) for t in task_ids]
    with transaction.atomic(using=alias):
        waiting = list(QueuedMessage.objects.using(alias).select_for_update()
                       .filter(task_id__in=task_ids, claimed_by__isnull=True))
        outcomes = []
        for row in waiting:
            error = TaskRevokedError("revoked")
            outcomes.append(Outcome(message=backend.message_from_model(row),
                                    state=states.REVOKED, value=error,
                                    result_text=exception_text(error), done_at=now))
        if outcomes:
            backend.finish_in_transaction(outcomes, worker_id=None)
        running = backend.request_terminate(task_ids) if terminate else 0
    return len(outcomes) + running


def _decode(row):
    if row.result is None:
        return None
    if row.state in states.EXCEPTION_STATES:
        data = serialization.loads(row.result, "json", ["json"])
        return serialization.exception_from_dict(data)
    return serialization.loads(row.result, row.content_type, settings.ACCEPT_CONTENT)


class EagerResult(AsyncResult):
    """The result of a task run in EAGER mode: held in memory, never stored."""

    def __init__(self, outcome):
        super().__init__(outcome.message.task_id, task_name=outcome.message.task_name)
        self._outcome_state = outcome.state
        self._traceback = outcome.traceback
        if outcome.state == states.SUCCESS:
            # Through the real serializer, so eager tests catch what workers would.
            self._value = serialization.loads(outcome.result_text, outcome.content_type,
                                              [outcome.content_type])
        else:
            self._value = outcome.value

    def __repr__(self):
        return f"<EagerResult: {self.id}>"

    @property
    def state(self):
        return self._outcome_state

    status = state

    @property
    def result(self):
        return self._value

    info = result

    @property
    def traceback(self):
        return self._traceback

    def get(self, timeout=None, propagate=True, interval=0.5, disable_sync_subtasks=True):
        if propagate and self._outcome_state in states.PROPAGATE_STATES:
            raise self._value
        return self._value

    wait = get

    def forget(self):
        """Nothing is stored in eager mode."""

    def revoke(self, terminate=False, signal=None):
        return 0
