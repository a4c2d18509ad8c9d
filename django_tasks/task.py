"""The ``@task`` decorator and the ``Task`` it makes."""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NoReturn, overload
from uuid import UUID

from asgiref.sync import sync_to_async
from django.utils import timezone

from . import concurrency, publishing, task_hooks, unique
from . import retry as retry_policy
from .arguments import check_arguments
from .canvas import MESSAGE_OPTIONS, Signature, apply_eagerly, chunks, xmap, xstarmap
from .celery_options import IGNORED_TASK_OPTIONS, refuse_unknown_apply_options
from .conf import settings
from .context import DIRECT_CALL, running_task
from .delivery_checks import check_delivery_values
from .exceptions import MaxRetriesExceededError, Retry
from .message_builder import MessageBuilder
from .messages import checked_time_limit, compute_available_at
from .queue import enqueue, enqueue_given_id, enqueue_unique
from .rate_limits import checked_rate_limit
from .registry import tasks as registry
from .result import AsyncResult

TASK_OPTIONS = {
    "name": None,
    "bind": False,
    "queue": None,
    "priority": None,
    "max_retries": 3,
    "default_retry_delay": 180,
    "autoretry_for": (),
    "dont_autoretry_for": (),
    "retry_kwargs": None,  # for autoretry_for: retry()'s max_retries, countdown...
    "retry_backoff": False,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "time_limit": None,
    "soft_time_limit": None,
    "ignore_result": False,
    "track_started": True,
    "atomic": False,
    "serializer": None,
    # Delivery (worker/at_most_once.py): None follows DJANGO_TASKS["ACKS_LATE"].
    "acks_late": None,
    "reject_on_worker_lost": None,
    "acks_on_failure_or_timeout": True,
    # Check the arguments of every call against the function (Celery's default).
    "typing": True,
    # Starts per period across all workers, Celery's syntax ("10/s"); a
    # call's own rate_limit overrides it (see rate_limits.py).
    "rate_limit": None,
    # Default ``expires`` of a call (seconds, timedelta or datetime).
    "expires": None,
    # At most this many running at once with the same key (concurrency.py).
    "concurrency_limit": None,
    "concurrency_key": None,
    # Unique tasks (unique.py): a key (str), or a callable of (args, kwargs)
    # returning the key of a call (None: that call is not unique).
    "unique_key": None,
    # Seconds (or a timedelta) the key stays held after its holder finished.
    "unique_for": None,
}


class Task:
    """A function that can run inline (``t(...)``) or on a worker (``t.delay(...)``).

    Subclass it for Celery's handlers (``on_success``, ``on_failure``,
    ``on_retry``, ``after_return``, ``before_start``; see
    ``task_hooks.py``) and option defaults as class attributes, then
    ``@task(base=MyTask)``.
    """

    # Set from TASK_OPTIONS by __init__ (declared, not given class values:
    # a subclass's class attribute is the option's default).
    name: str
    bind: bool
    typing: bool
    max_retries: int | None
    default_retry_delay: float
    autoretry_for: tuple[type[BaseException], ...]
    dont_autoretry_for: tuple[type[BaseException], ...]
    rate_limit: str | float | None
    concurrency_limit: int | None
    concurrency_key: Callable[[tuple[Any, ...], dict[str, Any]], str | None] | None
    unique_key: str | Callable[[tuple[Any, ...], dict[str, Any]], str | None] | None
    unique_for: float | timedelta | None

    def __init__(self, run: Callable[..., Any], **options: Any) -> None:
        unknown = set(options) - set(TASK_OPTIONS) - IGNORED_TASK_OPTIONS
        if unknown:
            raise TypeError(f"unknown task options: {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(TASK_OPTIONS))} (and Celery's "
                            "that have no meaning here, see celery_options.py)")
        self.run = run
        cls = type(self)
        for key, default in TASK_OPTIONS.items():
            # A subclass's class attribute is the default, as in Celery; but
            # not its name: each function decorated with it is a task of its own.
            if key in options:
                setattr(self, key, options[key])
            else:
                setattr(self, key, default if key == "name" else getattr(cls, key, default))
        self.name = self.name or f"{run.__module__}.{run.__qualname__}"
        # Listed by the system checks (django_tasks.I034).
        self.ignored_options = sorted(set(options) & IGNORED_TASK_OPTIONS)
        checked_rate_limit(self.rate_limit, f"@task of {self.name}")
        self.autoretry_for = tuple(self.autoretry_for or ())
        self.dont_autoretry_for = tuple(self.dont_autoretry_for or ())
        for limit in ("time_limit", "soft_time_limit"):
            checked_time_limit(getattr(self, limit), f"@task({limit}=...) of {self.name}")
        check_delivery_values(self)
        concurrency.check_options(self)
        unique.checked_task_options(self)
        self.is_async = inspect.iscoroutinefunction(run)
        self._local = threading.local()
        self.__doc__ = run.__doc__
        self.__name__ = run.__name__
        self.__module__ = run.__module__
        self.__wrapped__ = run
        self.hooks = task_hooks.overridden(cls, Task)

    def __repr__(self):
        return f"<@task: {self.name}>"

    # -- running --------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task body here and now, as Celery does."""
        if self.bind:
            return self.run(self, *args, **kwargs)
        return self.run(*args, **kwargs)

    @property
    def request(self):
        stack = getattr(self._local, "stack", None)
        if stack:
            return stack[-1]
        # An async task's coroutine runs on the worker's event loop thread:
        # its request travels in the context instead.
        running = running_task.get()
        return running if running is not None and running.task == self.name else DIRECT_CALL

    def push_request(self, request):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(request)

    def pop_request(self):
        self._local.stack.pop()

    # -- Celery's handlers (run by the worker; see task_hooks.py) ---

    def before_start(self, task_id, args, kwargs):
        """Called before the task body runs."""

    def on_success(self, retval, task_id, args, kwargs):
        """Called when the task succeeded."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Called when the task failed."""

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        """Called when the task is to be retried."""

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        """Called after the task succeeded or failed (not on retries)."""

    # -- reporting and handing over ---------------------------------------

    def update_state(self, task_id=None, state=None, meta=None, **kwargs):
        """Store ``state`` (such as ``"PROGRESS"``) and ``meta`` as the task's
        result while it runs: ``AsyncResult.state`` / ``.info`` show them."""
        from .progress import update_state

        update_state(self, task_id, state, meta)

    def replace(self, sig):
        """Hand this task's place (its id, callbacks, chain and chord) to ``sig``."""
        from .replacing import replace

        return replace(self, sig)

    # -- calling --------------------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None, *,
                    countdown: float | timedelta | None = None, eta: datetime | None = None,
                    expires: float | timedelta | datetime | None = None,
                    queue: str | None = None, priority: int | None = None,
                    task_id: str | UUID | None = None,
                    link: Signature | Iterable[Signature] | None = None,
                    link_error: Signature | Iterable[Signature] | None = None,
                    ignore_result: bool | None = None, headers: dict[str, Any] | None = None,
                    serializer: str | None = None, time_limit: float | None = None,
                    soft_time_limit: float | None = None, rate_limit: str | float | None = None,
                    unique_key: str | None = None,
                    unique_for: float | timedelta | None = None,
                    **celery_options: Any) -> AsyncResult:
        if celery_options:
            refuse_unknown_apply_options(celery_options, self.name)
        if self.typing:
            check_arguments(self, args, kwargs)
        key = None
        if unique_key is not None or unique_for is not None or self.unique_key is not None:
            key = unique.key_of_call(self, args, kwargs, unique_key, unique_for,
                                     f"apply_async() of {self.name}")
        message = MessageBuilder(self).build(
            args, kwargs, countdown=countdown, eta=eta, expires=expires, queue=queue,
            priority=priority, task_id=task_id, link=link, link_error=link_error,
            ignore_result=ignore_result, headers=headers, serializer=serializer,
            time_limit=time_limit, soft_time_limit=soft_time_limit, rate_limit=rate_limit,
            announce=key is None)
        if settings.EAGER:  # as Celery's eager mode, which has no broker: not unique
            return apply_eagerly(self, message)
        if key is not None:
            return _send_unique(message, key, task_id is not None, args, kwargs)
        if task_id is None:
            enqueue([message])
        else:
            enqueue_given_id(message)
        result = AsyncResult(message.task_id, task_name=self.name)
        if message.headers.get("ignore_result"):
            result.ignored = True
        return result

    async def adelay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return await self.aapply_async(args, kwargs)

    async def aapply_async(self, args: Iterable[Any] | None = None,
                           kwargs: Mapping[str, Any] | None = None,
                           **options: Any) -> AsyncResult:
        """``apply_async`` for async code: the enqueue runs where Django's
        async ORM runs its queries (``sync_to_async``), on that connection,
        without holding up the event loop."""
        return await sync_to_async(self.apply_async)(args, kwargs, **options)

    def build_message(self, args=None, kwargs=None, **options):
        """Everything ``apply_async`` does short of writing the message.

        Takes ``apply_async``'s options (``countdown``, ``eta``, ``queue``…).
        """
        return MessageBuilder(self).build(args, kwargs, **options)

    # -- signatures (see canvas.py) -----------------------------------

    def signature(self, args: Iterable[Any] | None = None,
                  kwargs: Mapping[str, Any] | None = None, immutable: bool = False,
                  **options: Any) -> Signature:
        return Signature(self, args, kwargs, options, immutable=immutable)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> Signature:
        return xmap(self.s(), it)

    def starmap(self, it: Iterable[Any]) -> Signature:
        return xstarmap(self.s(), it)

    def chunks(self, it: Iterable[Any], n: int) -> Signature:
        return chunks(self.s(), it, n)

    # -- retrying -------------------------------------------------------

    def retry(self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None,
              exc: BaseException | None = None, throw: bool = True,
              eta: datetime | float | None = None, countdown: float | None = None,
              max_retries: int | None = None, **options: Any) -> NoReturn:
        """Ask the worker to run this call again later; raises ``Retry``.

        Past ``max_retries`` it raises ``exc`` (or ``MaxRetriesExceededError``).
        """
        request = self.request
        if request.called_directly:
            # Called inline, not from a worker: nothing to retry, as in Celery.
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(f"{self.name} was called directly; it cannot retry")
        limit = self.max_retries if max_retries is None else max_retries
        if not retry_policy.may_retry(request.retries, limit):
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs} (max_retries={limit})")
        if eta is None:
            countdown = self.default_retry_delay if countdown is None else countdown
        elif isinstance(eta, datetime):
            countdown = None  # eta wins, as before
        else:  # seconds, as Celery also takes
            eta, countdown = None, eta
        when = compute_available_at(timezone.now(), countdown=countdown, eta=eta)
        raise Retry(exc=exc, when=when, message=options.pop("message", None)) \
            .with_call(args, kwargs)


def task_for_sending(name):
    """The registered task called ``name``, or a stand-in that can only be sent.

    Like Celery's ``send_task``: a name this process has not imported is still
    sent (routed by ``TASK_ROUTES``), and a worker that lacks it reports
    ``NotRegistered``.
    """
    registered = registry.get(name)
    if registered is not None:
        return registered

    def not_here(*args, **kwargs):
        raise NotImplementedError(f"{name} is not registered in this process")

    # Its arguments are the worker's to check: nothing here knows them.
    return Task(not_here, name=name, typing=False)


class AlwaysEagerIgnored(UserWarning):
    """Celery's name for the warning that ``send_task`` ignores eager mode."""


def send_task(name: str, args: Iterable[Any] | None = None,
              kwargs: Mapping[str, Any] | None = None, **options: Any) -> AsyncResult:
    """Enqueue the task called ``name``, imported here or not (Celery's ``app.send_task``).

    Takes ``apply_async``'s options. As in Celery, it always sends: ``EAGER``
    does not run it here, and the arguments are not checked (the code that
    knows them may live only in the worker's codebase).
    """
    if settings.EAGER:
        warnings.warn(f"EAGER has no effect on send_task({name!r}): it is enqueued, "
                      "as with Celery's task_always_eager", AlwaysEagerIgnored, stacklevel=2)
    task = task_for_sending(name)
    unique_key, unique_for = options.pop("unique_key", None), options.pop("unique_for", None)
    key = None
    if unique_key is not None or unique_for is not None or task.unique_key is not None:
        key = unique.key_of_call(task, args, kwargs, unique_key, unique_for,
                                 f"send_task({name!r})")
    celery_options = {key: options.pop(key) for key in list(options)
                      if key not in _BUILD_OPTIONS}
    if celery_options:
        refuse_unknown_apply_options(celery_options, name)
    message = MessageBuilder(task).build(args, kwargs, announce=key is None, **options)
    given_id = options.get("task_id") is not None
    if key is not None:
        return _send_unique(message, key, given_id, args, kwargs)
    if given_id:
        enqueue_given_id(message)
    else:
        enqueue([message])
    return AsyncResult(message.task_id, task_name=name)


def _send_unique(message, key, given_id, args, kwargs):
    """Send ``message`` under its unique ``key`` (key, unique_for): the
    result of the message holding the key, this one if it was written.
    ``message`` is built without ``before_task_publish``: it is sent only
    if the message is written (a duplicate publishes nothing)."""
    unique.mark(message, *key)
    holder = enqueue_unique(message, *key, given_id,
                            publishing.before_write(message, args or (), kwargs or {}))
    result = AsyncResult(holder, task_name=message.task_name)
    if holder == message.task_id and message.headers.get("ignore_result"):
        result.ignored = True
    return result


_BUILD_OPTIONS = frozenset((*MESSAGE_OPTIONS, "headers"))


@overload
def task(function: Callable[..., Any], /) -> Task: ...


@overload
def task(*, base: type[Task] | None = ..., **options: Any) -> Callable[[Callable[..., Any]], Task]:
    ...


def task(*args: Any, **options: Any) -> Any:
    """Decorate a function as a task: ``@task`` or ``@task(name=..., ...)``.

    ``base=`` a ``Task`` subclass builds the task from it (Celery's ``base``).
    """
    base = options.pop("base", None) or Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise TypeError(f"@task(base=...) takes a subclass of django_tasks.Task, "
                        f"not {base!r}")

    def decorate(function):
        return registry.register(base(function, **options))

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    if args:
        raise TypeError("@task takes keyword options only: @task(name='...', bind=True)")
    return decorate


shared_task = task
