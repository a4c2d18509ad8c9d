"""The ``@task`` decorator and the ``Task`` it makes."""

import inspect
import threading
from datetime import datetime

from django.utils import timezone

from . import retry as retry_policy
from .canvas import Signature, apply_eagerly, chunks, xmap, xstarmap
from .conf import settings
from .context import DIRECT_CALL
from .exceptions import MaxRetriesExceededError, Retry
from .message_builder import MessageBuilder
from .messages import checked_time_limit, compute_available_at
from .queue import enqueue
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
    "retry_backoff": False,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "time_limit": None,
    "soft_time_limit": None,
    "ignore_result": False,
    "track_started": True,
    "atomic": False,
    "serializer": None,
}


class Task:
    """A function that can run inline (``t(...)``) or on a worker (``t.delay(...)``)."""

    def __init__(self, run, **options):
        unknown = set(options) - set(TASK_OPTIONS)
        if unknown:
            raise TypeError(f"unknown task options: {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(TASK_OPTIONS))}")
        self.run = run
        for key, default in TASK_OPTIONS.items():
            setattr(self, key, options.get(key, default))
        self.name = self.name or f"{run.__module__}.{run.__qualname__}"
        self.autoretry_for = tuple(self.autoretry_for or ())
        for limit in ("time_limit", "soft_time_limit"):
            checked_time_limit(getattr(self, limit), f"@task({limit}=...) of {self.name}")
        self.is_async = inspect.iscoroutinefunction(run)
        self._local = threading.local()
        self.__doc__ = run.__doc__
        self.__name__ = run.__name__
        self.__module__ = run.__module__
        self.__wrapped__ = run

    def __repr__(self):
        return f"<@task: {self.name}>"

    # -- running --------------------------------------------------------

    def __call__(self, *args, **kwargs):
        """Run the task body here and now, as Celery does."""
        if self.bind:
            return self.run(self, *args, **kwargs)
        return self.run(*args, **kwargs)

    @property
    def request(self):
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else DIRECT_CALL

    def push_request(self, request):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(request)

    def pop_request(self):
        self._local.stack.pop()

    # -- calling --------------------------------------------------------

    def delay(self, *args, **kwargs):
        return self.apply_async(args, kwargs)

    def apply_async(self, args=None, kwargs=None, *, countdown=None, eta=None,
                    expires=None, queue=None, priority=None, task_id=None,
                    link=None, link_error=None, ignore_result=None, headers=None,
                    serializer=None, time_limit=None, soft_time_limit=None):
        message = MessageBuilder(self).build(
            args, kwargs, countdown=countdown, eta=eta, expires=expires, queue=queue,
            priority=priority, task_id=task_id, link=link, link_error=link_error,
            ignore_result=ignore_result, headers=headers, serializer=serializer,
            time_limit=time_limit, soft_time_limit=soft_time_limit)
        if settings.EAGER:
            return apply_eagerly(self, message)
        enqueue([message])
        result = AsyncResult(message.task_id, task_name=self.name)
        if message.headers.get("ignore_result"):
            result.ignored = True
        return result

    def build_message(self, args=None, kwargs=None, **options):
        """Everything ``apply_async`` does short of writing the message.

        Takes ``apply_async``'s options (``countdown``, ``eta``, ``queue``…).
        """
        return MessageBuilder(self).build(args, kwargs, **options)

    # -- signatures (see canvas.py) -----------------------------------

    def signature(self, args=None, kwargs=None, immutable=False, **options):
        return Signature(self, args, kwargs, options, immutable=immutable)

    subtask = signature

    def s(self, *args, **kwargs):
        return self.signature(args, kwargs)

    def si(self, *args, **kwargs):
        return self.signature(args, kwargs, immutable=True)

    def map(self, it):
        return xmap(self.s(), it)

    def starmap(self, it):
        return xstarmap(self.s(), it)

    def chunks(self, it, n):
        return chunks(self.s(), it, n)

    # -- retrying -------------------------------------------------------

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None,
              countdown=None, max_retries=None, **options):
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

    return Task(not_here, name=name)


def task(*args, **options):
    """Decorate a function as a task: ``@task`` or ``@task(name=..., ...)``."""
    def decorate(function):
        return registry.register(Task(function, **options))

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    if args:
        raise TypeError("@task takes keyword options only: @task(name='...', bind=True)")
    return decorate


shared_task = task
