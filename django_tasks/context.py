"""What a running task can know about its own call (``self.request``)."""

import contextvars
from dataclasses import dataclass, field

# Set while a task body runs, so AsyncResult.get() can refuse to block in it.
running_task = contextvars.ContextVar("django_tasks_running_task", default=None)


@dataclass
class Request:
    id: str | None = None
    task: str | None = None
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    retries: int = 0
    hostname: str | None = None
    queue: str | None = None
    eta: object = None
    expires: object = None
    priority: int = 0
    is_eager: bool = False
    group: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    delivery_count: int = 0
    headers: dict = field(default_factory=dict)
    # Options of the call, reused by Task.retry() when it enqueues again.
    called_directly: bool = False


DIRECT_CALL = Request(called_directly=True)
