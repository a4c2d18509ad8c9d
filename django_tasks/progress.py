"""``self.update_state(state=..., meta=...)``: a running task's own state.

Stored as the task's result row (upserted), committed at once so that
``AsyncResult(id).state`` / ``.info`` show it while the task runs. The
task's final outcome overwrites it, as any result row is overwritten.

Inside a transaction (``@task(atomic=True)``, or the task's own
``transaction.atomic()``) the row is written on a second connection, so it
is visible at once and stays if the transaction rolls back, as progress
reports should. SQLite cannot write from two connections while one holds
its write lock: there the row is written in the task's transaction, and
seen when it commits.
"""

import threading

from django.db import connections
from django.utils import timezone

from . import limits, serialization, states
from .aio import call_outside_event_loop, in_event_loop
from .conf import settings

# States update_state may not write: they would make the task look finished
# (or retried) before it is; return, raise or retry() instead.
RESERVED = states.READY_STATES | states.EXCEPTION_STATES | {states.IGNORED}

_side = threading.local()


def update_state(task, task_id, state, meta):
    if in_event_loop():  # an async def task: write from its own thread (see aio.py)
        return call_outside_event_loop(update_state, task, task_id, state, meta)
    request = task.request
    state = checked_state(state)
    serializer = task.serializer or settings.SERIALIZER
    text = limits.result_text(meta, serializer, "the update_state meta") \
        if meta is not None else None
    if task_id is None:
        task_id = request.id
    if task_id is None or request.is_eager:
        return  # called directly or eagerly: no stored result to update
    from .models import TaskResult

    now = timezone.now()
    row = TaskResult(task_id=task_id, state=state, content_type=serializer, result=text,
                     date_started=now, date_done=now)
    # Kept on update: when the first report came (about when the task started).
    fields = ["state", "content_type", "result", "date_done"]
    if task_id == request.id:
        # The task's own row: what the admin shows of a running task.
        for name, value in (("task_name", task.name), ("queue", request.queue or ""),
                            ("worker", request.hostname or ""), ("retries", request.retries),
                            ("deliveries", request.delivery_count or 1),
                            ("parent_id", request.parent_id), ("root_id", request.root_id),
                            ("group_id", request.group)):
            setattr(row, name, value)
            fields.append(name)
    TaskResult.objects.using(_writing_alias()).bulk_create(
        [row], update_conflicts=True, unique_fields=["task_id"], update_fields=fields)


def checked_state(state):
    if not isinstance(state, str) or not state.strip():
        raise ValueError(f"update_state(state=...) takes a non-empty state name, "
                         f"not {serialization.short_repr(state, 60)}")
    if len(state) > states.MAX_STATE_LENGTH:
        raise ValueError(f"update_state(state=...): a state name is at most "
                         f"{states.MAX_STATE_LENGTH} characters, {state[:60]!r}... has "
                         f"{len(state)}")
    if state in RESERVED:
        raise ValueError(f"update_state(state={state!r}): the worker stores that state when "
                         "the task ends (return, raise or self.retry()); report progress "
                         "with a state of your own, such as 'PROGRESS'")
    return state


def _writing_alias():
    """The task's own connection, or outside its transaction a second one."""
    alias = settings.DATABASE
    connection = connections[alias]
    if not connection.in_atomic_block or connection.vendor == "sqlite":
        return alias
    side = f"{alias}__update_state"
    if side not in connections.settings:
        # Same database, its own connection (one per thread, as any alias).
        connections.settings[side] = dict(connections.settings[alias])
    return side
