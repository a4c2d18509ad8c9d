"""``AsyncResult``: the state and return value of a task, by id."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from . import serialization, states
from .conf import settings
from .context import running_task
from .exceptions import DecodeError, TaskRevokedError, TimeoutError
from .messages import checked_task_id, is_task_id
from .outcomes import Outcome, exception_text


def _backend():
    from .queue import get_backend
    return get_backend()


class AsyncResult:
    """A task's result as stored in the database; unknown ids are ``PENDING``."""

    #: Set by ``apply_async`` for a task sent with ``ignore_result``: no
    #: success is stored for it, so ``get()`` returns None at once instead
    #: of waiting (Celery's ``AsyncResult.ignored``). An AsyncResult made
    #: later from the id alone cannot know it (``PENDING``, as in Celery).
    ignored = False

    def __init__(self, id: object, task_name: str | None = None,
                 parent: AsyncResult | GroupResult | None = None) -> None:
        self.id = str(id)
        self._name = task_name
        self._row = None  # cached once ready: ready results never change
        self._parent = parent  # known in memory for a chain just applied

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
    def state(self) -> str:
        row = self._load()
        if row is not None and (row.state in states.READY_STATES or states.is_custom(row.state)):
            # A custom state (update_state) is the task's own word while it runs.
            return row.state
        message = _backend().get_message(self.id)
        if message is not None and message.claimed_by is not None:
            return states.STARTED if message.started_at is not None else states.RECEIVED
        return row.state if row is not None else states.PENDING

    status = state

    @property
    def result(self) -> Any:
        row = self._load()
        return _decode(row) if row is not None else None

    info = result

    @property
    def traceback(self) -> str | None:
        row = self._load()
        return row.traceback if row is not None else None

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def _field(self, name, default=None):
        row = self._load()
        if row is not None:
            return getattr(row, name)
        return default

    @property
    def name(self) -> str | None:
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
    def parent(self) -> AsyncResult | GroupResult | None:
        if self._parent is not None:
            return self._parent
        parent_id = self._field("parent_id")
        if parent_id is None:
            message = _backend().get_message(self.id)
            parent_id = message.headers.get("parent_id") if message is not None else None
        return AsyncResult(parent_id) if parent_id else None

    # -- waiting --------------------------------------------------------

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
            disable_sync_subtasks: bool = True) -> Any:
        """Wait for the task to finish and return its value (or raise its error)."""
        if self._returns_at_once(disable_sync_subtasks, "get"):
            return None
        backend = _backend()
        deadline = None if timeout is None else time.monotonic() + timeout
        backend.prepare_wait_for_results()
        while True:
            row = self._ready_row(backend, "get")
            if row is not None:
                return self._outcome(row, propagate)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("The operation timed out.")
            self._wait_for_news(backend, interval if remaining is None
                                else min(interval, remaining))

    wait = get

    # -- the same from async code (Django's naming: aget...) --------------
    # Methods, also for properties (astate()): Python has no awaitable
    # properties, and Celery no async API to follow.

    async def aget(self, timeout: float | None = None, propagate: bool = True,
                   interval: float = 0.5, disable_sync_subtasks: bool = True) -> Any:
        """``get()`` for async code: each look runs where Django's async ORM
        runs its queries (``sync_to_async``); between looks it waits on the
        event loop, holding no thread (see awaiting.py)."""
        from .awaiting import news_of

        if self._returns_at_once(disable_sync_subtasks, "aget"):
            return None
        backend = _backend()
        deadline = None if timeout is None else time.monotonic() + timeout
        async with news_of(backend, self.id, interval) as news:
            while True:
                news.clear()
                row = await sync_to_async(self._ready_row)(backend, "aget")
                if row is not None:
                    return self._outcome(row, propagate)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("The operation timed out.")
                await news.wait(interval if remaining is None else min(interval, remaining))

    def _returns_at_once(self, disable_sync_subtasks, method):
        """The checks before ``method`` (get or aget) waits: never inside a
        task (unless asked), and not at all for an ignored result (True)."""
        if disable_sync_subtasks and running_task.get() is not None:
            raise RuntimeError(
                f"Never call result.{method}() within a task: it can deadlock the worker. "
                "Use a chain or a chord instead.")
        return self.ignored

    def _ready_row(self, backend, method):
        """The result's row once it is ready, else None (a look of ``method``,
        get or aget, named in the error)."""
        row = self._load()
        if row is not None and row.state in states.READY_STATES:
            return row
        if backend.is_uncommitted(self.id):
            raise RuntimeError(
                f"Task {self.id} was enqueued in this still-open transaction; no worker "
                f"can see it before the transaction commits, so {method}() would wait forever.")
        return None

    async def astate(self) -> str:
        return await sync_to_async(getattr)(self, "state")

    async def aready(self) -> bool:
        return await sync_to_async(self.ready)()

    async def asuccessful(self) -> bool:
        return await sync_to_async(self.successful)()

    async def afailed(self) -> bool:
        return await sync_to_async(self.failed)()

    def _wait_for_news(self, backend, timeout):
        """Wait until a notification names this task, or ``timeout`` passes.

        Where the database sends notifications, each names the tasks whose
        results it stored: one for other tasks is no reason to look again
        (under load they come hundreds a second). The timeout bounds the
        wait where nothing is sent (polling), and for results stored by a
        path that sends nothing.
        """
        wanted = self.id
        until = time.monotonic() + timeout
        while (remaining := until - time.monotonic()) > 0:
            payloads = backend.wait_for_results(remaining)
            if not payloads or any(wanted in payload for payload in payloads):
                return

    def _outcome(self, row, propagate):
        value = _decode(row)
        if row.state in states.PROPAGATE_STATES and propagate:
            raise value
        return value

    # -- changing -------------------------------------------------------

    def forget(self) -> None:
        self._row = None
        _backend().forget(self.id)

    def revoke(self, terminate: bool = False, signal: Any = None) -> int:
        """Stop the task from starting (it ends ``REVOKED``); with ``terminate``
        also stop it where it already runs."""
        return revoke_ids([self.id], terminate=terminate)


def revoke_ids(task_ids, terminate=False):
    """Revoke tasks: waiting ones end ``REVOKED`` now; running ones are asked to
    stop (``terminate``) at the worker that holds them. Returns how many were hit."""
    from .models import QueuedMessage
    from .timestamps import readable

    backend = _backend()
    alias = settings.DATABASE
    now = timezone.now()
    # Any text; an id no row can hold (NUL, too long) was never sent.
    task_ids = [t for t in map(str, task_ids) if is_task_id(t)]
    if not task_ids:
        return 0
    with transaction.atomic(using=alias):
        # Readable whatever their timestamps hold (a hand-made row with
        # 'infinity'...): revoking is how such a row leaves the queue.
        waiting = list(readable(QueuedMessage.objects.using(alias).select_for_update(),
                                ["created_at", "available_at", "expires"])
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
    """The stored value or exception; a row that cannot be read raises DecodeError.

    Rows are data, possibly forged: an exception is rebuilt only from a
    class already imported here (see ``serialization.exception_from_dict``).
    """
    if row.result is None:
        return None
    if row.state in states.EXCEPTION_STATES:
        return serialization.exception_from_json(row.result)
    return serialization.loads(row.result, row.content_type, settings.ACCEPT_CONTENT)


class EagerResult(AsyncResult):
    """The result of a task run in EAGER mode: held in memory, never stored."""

    def __init__(self, outcome: Any) -> None:
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
    def parent(self) -> AsyncResult | GroupResult | None:
        return self._parent

    @property
    def state(self) -> str:
        return self._outcome_state

    status = state

    @property
    def result(self) -> Any:
        return self._value

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
            disable_sync_subtasks: bool = True) -> Any:
        if propagate and self._outcome_state in states.PROPAGATE_STATES:
            raise self._value
        return self._value

    wait = get

    async def aget(self, timeout: float | None = None, propagate: bool = True,
                   interval: float = 0.5, disable_sync_subtasks: bool = True) -> Any:
        return self.get(timeout, propagate, interval, disable_sync_subtasks)

    def forget(self) -> None:
        """Nothing is stored in eager mode."""

    def revoke(self, terminate: bool = False, signal: Any = None) -> int:
        return 0


class GroupResult:
    """The results of a group, in call order (members may be groups themselves)."""

    def __init__(self, id: object, results: Iterable[AsyncResult | GroupResult] | None = None,
                 parent: AsyncResult | GroupResult | None = None) -> None:
        self.id = str(id)
        self.results: list[AsyncResult | GroupResult] = list(results or [])
        self._parent = parent

    def __repr__(self):
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __iter__(self) -> Iterator[AsyncResult | GroupResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult | GroupResult:
        return self.results[index]

    def __eq__(self, other):
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self):
        return hash(self.id)

    @property
    def parent(self):
        return self._parent

    @property
    def children(self) -> list[AsyncResult | GroupResult]:
        return self.results

    def leaves(self) -> Iterator[AsyncResult]:
        """The task results, nested groups flattened, in call order."""
        for result in self.results:
            if isinstance(result, GroupResult):
                yield from result.leaves()
            else:
                yield result

    # -- reading --------------------------------------------------------

    def ready(self) -> bool:
        return all(result.ready() for result in self.results)

    def successful(self) -> bool:
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        return any(result.failed() for result in self.results)

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        """How many members finished successfully (as in Celery)."""
        return sum(int(result.successful()) for result in self.results)

    def join(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5,
             disable_sync_subtasks: bool = True) -> list[Any]:
        """Wait for every member; their values in call order.

        ``timeout`` bounds the whole wait, not each member's.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(result.get(timeout=remaining, propagate=propagate, interval=interval,
                                     disable_sync_subtasks=disable_sync_subtasks))
        return values

    get = join

    async def ajoin(self, timeout: float | None = None, propagate: bool = True,
                    interval: float = 0.5, disable_sync_subtasks: bool = True) -> list[Any]:
        """``join()`` for async code (see ``AsyncResult.aget``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(await result.aget(timeout=remaining, propagate=propagate,
                                            interval=interval,
                                            disable_sync_subtasks=disable_sync_subtasks))
        return values

    aget = ajoin

    async def aready(self):
        return await sync_to_async(self.ready)()

    # -- changing -------------------------------------------------------

    def revoke(self, terminate: bool = False, signal: Any = None) -> int:
        return revoke_ids([result.id for result in self.leaves()])

    def forget(self) -> None:
        from .models import TaskGroup

        for result in self.results:
            result.forget()
        if not is_task_id(self.id):
            return
        TaskGroup.objects.using(settings.DATABASE).filter(group_id=self.id).delete()

    def save(self) -> GroupResult:
        """Store the member ids so ``GroupResult.restore(id)`` can find them."""
        from .models import TaskGroup

        checked_task_id(self.id, "group id")
        TaskGroup.objects.using(settings.DATABASE).update_or_create(
            group_id=self.id, defaults={"results": _members_to_data(self.results)})
        return self

    def delete(self) -> None:
        from .models import TaskGroup

        if not is_task_id(self.id):
            return
        TaskGroup.objects.using(settings.DATABASE).filter(group_id=self.id).delete()

    @classmethod
    def restore(cls, id: object) -> GroupResult | None:
        """The saved group (or chord header) with this id, or None."""
        from .models import TaskGroup

        if not is_task_id(str(id)):
            return None  # never saved
        row = TaskGroup.objects.using(settings.DATABASE).filter(group_id=id).first()
        if row is None:
            return None
        return cls(row.group_id, _members_from_data(row.results))


def _members_to_data(results):
    return [{"group_id": r.id, "results": _members_to_data(r.results)}
            if isinstance(r, GroupResult) else r.id for r in results]


def _members_from_data(data, depth=0):
    """Saved members back to results; a saved row of another shape is a DecodeError."""
    if not isinstance(data, list) or depth >= serialization.MAX_DEPTH:
        raise DecodeError(f"cannot decode a saved group: {serialization.short_repr(data, 60)} "
                          f"is not a list of task ids and groups (at most "
                          f"{serialization.MAX_DEPTH} deep)")
    members = []
    for item in data:
        if isinstance(item, str):
            members.append(AsyncResult(item))
        elif isinstance(item, dict) and isinstance(item.get("group_id"), str):
            members.append(GroupResult(item["group_id"],
                                       _members_from_data(item.get("results"), depth + 1)))
        else:
            raise DecodeError(f"cannot decode a saved group: member "
                              f"{serialization.short_repr(item, 60)} is neither a task id nor "
                              "a group")
    return members


