"""Exceptions raised by django_tasks, named as Celery names them."""

import builtins


class DjangoTasksError(Exception):
    """Base class of every error this app raises."""


class TimeoutError(DjangoTasksError, builtins.TimeoutError):  # noqa: A001
    """``AsyncResult.get()`` waited longer than its ``timeout``."""


class Retry(DjangoTasksError):
    """Raised by ``Task.retry()`` to tell the worker to run the task again later."""

    def __init__(self, message=None, exc=None, when=None):
        self.message = message
        self.exc = exc
        self.when = when
        # New arguments for the next attempt (None: the same as this one).
        self.retry_args = None
        self.retry_kwargs = None
        super().__init__(message, exc, when)

    def with_call(self, args, kwargs):
        self.retry_args = None if args is None else list(args)
        self.retry_kwargs = None if kwargs is None else dict(kwargs)
        return self

    def __str__(self):
        if self.message:
            return self.message
        return f"Retry in {self.when}" if self.when is not None else "Retry"


class MaxRetriesExceededError(DjangoTasksError):
    """The task asked to be retried more often than ``max_retries`` allows."""


class _DefaultMessage:
    """Raised by class (as a thread interruption is), it still says what happened."""

    default_message = ""

    def __init__(self, *args):
        super().__init__(*(args or (self.default_message,)))


class SoftTimeLimitExceeded(_DefaultMessage, DjangoTasksError):
    """Raised inside a task when its ``soft_time_limit`` has passed."""

    default_message = "soft time limit exceeded"


class TimeLimitExceeded(_DefaultMessage, DjangoTasksError):
    """The task ran past its ``time_limit`` and was stopped."""

    default_message = "time limit exceeded"


class WorkerLostError(DjangoTasksError):
    """The worker running the task died, too often or for good."""


class ColdShutdown(BaseException):
    """Raised in the worker's main thread on the second stop signal (see worker/shutdown.py).

    Not a task's error: running a task (execution.py) lets a requested one
    through to the worker instead of making it the task's failure.
    """

    #: Set on the ones the worker's signal handlers raise: the same class
    #: raised by task code is that task's failure, not a shutdown.
    requested = False

    @classmethod
    def on_signal(cls, name):
        shutdown = cls(name)
        shutdown.requested = True
        return shutdown


class NotRegistered(DjangoTasksError, KeyError):
    """No task is registered under that name."""

    def __str__(self):
        return str(self.args[0]) if self.args else "task not registered"


class TaskRevokedError(_DefaultMessage, DjangoTasksError):
    """The task was revoked (or expired) before it could finish."""

    default_message = "terminated: revoked while running"


class ChordError(DjangoTasksError):
    """A member of a chord failed, so its body cannot run."""


class EncodeError(DjangoTasksError, TypeError):
    """A value could not be serialized with the configured serializer."""


class DecodeError(DjangoTasksError, ValueError):
    """A stored message or result could not be deserialized."""


class ContentDisallowed(DecodeError):
    """A message uses a serializer that ``ACCEPT_CONTENT`` does not list."""


class SerializerUnavailable(DecodeError):
    """Content of a type this process cannot decode: no serializer of that
    name is registered here, or its package (msgpack) is not installed."""


class ImproperlyConfigured(DjangoTasksError):
    """The ``DJANGO_TASKS`` setting is invalid; or, as in Celery,
    ``self.replace()`` was given an empty chain or a signature that is part
    of a chord."""


class Ignore(DjangoTasksError):
    """Raised by a task to end without storing any state: the message is
    acknowledged, and the result stays as it was (PENDING, or the last
    ``update_state``). Links and chord counting do not see it."""


class Reject(DjangoTasksError):
    """Raised by a task to refuse its message.

    ``requeue=False``: the task ends ``REJECTED`` (stored, ``get()`` raises
    this exception). ``requeue=True``: the message goes back to the queue as
    a new delivery; past ``MAX_DELIVERIES`` it ends ``REJECTED`` instead, so a
    task that always rejects cannot loop.
    """

    def __init__(self, reason=None, requeue=False):
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __str__(self):
        return str(self.reason) if self.reason is not None else "rejected"
