"""What running one message produced, and the result row it becomes."""

from dataclasses import dataclass, replace
from datetime import datetime

from . import limits, serialization, states
from .messages import Message

# Where a message stands in a workflow (see canvas.py and workflow.py).
WORKFLOW_HEADERS = frozenset(("parent_id", "root_id", "group_id", "chord", "chain",
                              "link_error"))

# The one list of a result row's columns (TaskResult's fields, in its order):
# the order of ``Outcome.result_values()`` and of every statement that writes
# or reads a whole result row (queue/postgresql.py types them from the model).
RESULT_COLUMNS = ("task_id", "task_name", "state", "content_type", "result", "traceback",
                  "args", "kwargs", "queue", "worker", "retries", "deliveries", "parent_id",
                  "root_id", "group_id", "date_created", "date_started", "date_done")
# What storing a result again (a retry's later outcome, a redelivery)
# overwrites: every column but the key it conflicts on.
RESULT_UPDATE_FIELDS = list(RESULT_COLUMNS[1:])


@dataclass
class Outcome:
    message: Message
    state: str
    hostname: str = ""
    value: object = None            # the return value or the exception
    result_text: str | None = None  # how it is stored
    content_type: str = "json"
    traceback: str | None = None
    started_at: datetime | None = None
    done_at: datetime | None = None
    runtime: float = 0.0
    retry_at: datetime | None = None  # set for RETRY: when to run again
    new_body: str | None = None       # set when a retry changes the arguments
    args_text: str | None = None
    kwargs_text: str | None = None
    # Set when the task's own transaction already stored it (atomic tasks).
    stored: bool = False
    # Set when the task failed because the database connection was lost:
    # deliver it again rather than store the failure (up to MAX_DELIVERIES).
    redeliver: bool = False
    # Set by ``raise Reject(requeue=True)``: hand the message back to the
    # queue (the delivery stays counted), store nothing.
    requeue: bool = False
    # Set by ``self.replace(sig)``: the Plan of the replacement, written
    # when this message is acknowledged (see replacing.py).
    replacement: object = None

    def describe(self, limit=200):
        return serialization.short_repr(self.value, limit)

    @property
    def stores_result(self):
        # ignore_result drops successes only: a failure is never lost silently.
        # Ignore() and a requeued Reject store nothing at all.
        if self.state == states.IGNORED or self.requeue:
            return False
        return not (self.state == states.SUCCESS and self.message.headers.get("ignore_result"))

    @property
    def retries(self):
        return self.message.retries

    def result_values(self):
        """The result row as values in ``RESULT_COLUMNS`` order (bulk SQL)."""
        headers = self.message.headers
        return (self.message.task_id, self.message.task_name, self.state, self.content_type,
                self.result_text, self.traceback, self.args_text, self.kwargs_text,
                self.message.queue, self.hostname, self.retries, self.message.deliveries,
                headers.get("parent_id"), headers.get("root_id"), headers.get("group_id"),
                self.message.created_at, self.started_at, self.done_at)

    def result_row(self):
        from .models import TaskResult

        return TaskResult(**dict(zip(RESULT_COLUMNS, self.result_values(), strict=True)))

    def unstorable(self, error, keep_workflow=True):
        """A failure in place of this outcome, which could not be stored.

        Only what the worker itself wrote: no traceback, arguments or values
        taken from the message's headers (one of them may be what the
        database refused in a hand-made message), so the task still ends
        FAILURE; but, with ``keep_workflow``, the headers that place it in
        a workflow, so that its chord counts it and its errbacks and the
        rest of its chain learn of the failure. Without them, for when they
        are what could not be followed.
        """
        from .exceptions import EncodeError

        exc = EncodeError(f"could not store the outcome of {self.message.task_name}: "
                          f"{type(error).__name__}: {str(error).strip()}")
        headers = {key: value for key, value in self.message.headers.items()
                   if key in WORKFLOW_HEADERS} if keep_workflow else {}
        return replace(self, message=replace(self.message, headers=headers),
                       state=states.FAILURE, value=exc, result_text=exception_text(exc),
                       content_type="json", traceback=None, retry_at=None, new_body=None,
                       replacement=None, requeue=False,
                       args_text=None, kwargs_text=None)


def exception_text(exc):
    # Cut, not refused: an error must be stored whatever its size.
    return limits.exception_json(serialization.exception_to_dict(exc))
