"""Running one message: decode, call the task, turn what happened into an Outcome.

Used by every pool and by eager mode, so a task behaves the same wherever
it runs.
"""

import time
import traceback as traceback_module

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from . import errbacks, event_loop, limits, serialization, signals, states, task_signals
from . import retry as retry_policy
from .aio import call_outside_event_loop, in_event_loop
from .conf import settings
from .context import Request, running_task
from .exceptions import (
    ColdShutdown,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    Ignore,
    NotRegistered,
    Reject,
    Retry,
    SerializerUnavailable,
    TaskRevokedError,
)
from .messages import decode_body, decode_body_parsed
from .outcomes import Outcome, exception_text
from .registry import tasks as registry
from .serialization import short_repr
from .task_hooks import before_start, chosen_end, run_handlers

CONNECTION_ERRORS = (OperationalError, InterfaceError)
# How arguments are shown with a result (one encoder, not one per call).
_readable_json = serialization.reusable_json_encoder()


def execute(message, hostname="", is_eager=False):
    """Run ``message`` and return its Outcome; never raises for task errors."""
    started_at = timezone.now()
    clock = time.perf_counter()
    outcome = _run(message, hostname, is_eager, started_at)
    outcome.runtime = time.perf_counter() - clock
    outcome.started_at = started_at
    outcome.done_at = timezone.now()
    outcome.hostname = hostname
    return outcome


def _run(message, hostname, is_eager, started_at):
    if message.corrupt:
        return _rejected(message, DecodeError(f"corrupt message: {message.corrupt}"))
    if message.expires is not None and message.expires <= started_at:
        task_signals.expired(message, hostname)
        return _exception_outcome(
            message, states.REVOKED, TaskRevokedError(f"expired at {message.expires.isoformat()}"),
            with_traceback=False)
    try:
        task = registry.lookup(message.task_name)
    except NotRegistered as exc:
        task_signals.unknown(message, exc)
        return _exception_outcome(message, states.FAILURE, exc, with_traceback=False)
    try:
        args, kwargs, parsed = decode_body_parsed(message, settings.ACCEPT_CONTENT)
        args = errbacks.call_arguments(task, message, args, kwargs)
    except (ContentDisallowed, SerializerUnavailable) as exc:
        return _rejected(message, exc)
    except DecodeError as exc:
        return _rejected(message, DecodeError(f"corrupt message: {exc}"))
    request = Request(
        id=message.task_id, task=task.name, args=args, kwargs=kwargs,
        retries=message.retries, hostname=hostname, queue=message.queue,
        eta=message.available_at, expires=message.expires, priority=message.priority,
        is_eager=is_eager, group=message.headers.get("group_id"),
        root_id=message.headers.get("root_id") or message.task_id,
        parent_id=message.headers.get("parent_id"), delivery_count=message.deliveries,
        headers=message.headers)
    # Another format's arguments are shown before the call, which may change
    # them in place; JSON's from the parsed body, which the call never sees.
    shown = None if parsed is not None else _arguments_as_json(args, kwargs)
    outcome = _call(task, message, request, args, kwargs)
    outcome.args_text, outcome.kwargs_text = shown or _arguments_text(parsed)
    return outcome


def _rejected(message, exc):
    task_signals.rejected(message, exc)
    return _exception_outcome(message, states.FAILURE, exc, with_traceback=False)


def _call(task, message, request, args, kwargs):
    task.push_request(request)
    token = running_task.set(request)
    task_signals.send(signals.task_prerun, sender=task, task_id=message.task_id, task=task,
                      args=args, kwargs=kwargs)
    outcome = None
    try:
        value = _invoke(task, args, kwargs)
    except Retry as retry:
        outcome = _retry_outcome(task, message, retry)
    except (Ignore, Reject) as exc:
        outcome = chosen_end(message, exc, request.is_eager,
                             lambda state, error: _exception_outcome(message, state, error))
    except TaskRevokedError as exc:
        outcome = _exception_outcome(message, states.REVOKED, exc)
        task_signals.revoked(task, request, terminated=True)
    except CONNECTION_ERRORS as exc:
        if task.autoretry_for and isinstance(exc, task.autoretry_for):
            outcome = _autoretry(task, message, exc)
        else:
            # The database went away under the task: not the task's fault,
            # so it is delivered again (up to MAX_DELIVERIES) once it is back.
            outcome = _exception_outcome(message, states.FAILURE, exc)
            outcome.redeliver = True
    except task.autoretry_for as exc:
        outcome = _autoretry(task, message, exc)
    except Exception as exc:
        outcome = _failure(task, message, exc)
    except BaseException as exc:
        # sys.exit() or a BaseException of the task's own ends the task, not
        # the worker; in eager mode it is the caller's to see (Ctrl-C).
        if request.is_eager or (isinstance(exc, ColdShutdown) and exc.requested):
            raise
        outcome = _failure(task, message, exc)
    else:
        outcome = _success(task, message, value)
    finally:
        if outcome is not None:  # Celery's handlers, the request still current
            outcome = run_handlers(task, outcome, args, kwargs,
                                   lambda exc: _failure(task, message, exc))
        running_task.reset(token)
        task.pop_request()
        state = outcome.state if outcome is not None else states.FAILURE
        task_signals.send(signals.task_postrun, sender=task, task_id=message.task_id,
                          task=task, args=args, kwargs=kwargs,
                          retval=getattr(outcome, "value", None), state=state)
    return outcome


def _invoke(task, args, kwargs):
    before_start(task, task.request, args, kwargs)
    call_args = (task, *args) if task.bind else args
    if task.atomic:
        # A savepoint inside the transaction that will also store the result:
        # a failure undoes the task's own writes but keeps the FAILURE row.
        with transaction.atomic(using=settings.DATABASE):
            try:
                return _call_function(task, call_args, kwargs)
            except Ignore as exc:  # not a failure (replace() too): its writes stay
                ignored = exc
        raise ignored
    return _call_function(task, call_args, kwargs)


def _call_function(task, call_args, kwargs):
    if task.is_async:  # on the process's shared event loop (see event_loop.py)
        return event_loop.run(task.run(*call_args, **kwargs))
    return task.run(*call_args, **kwargs)


def _success(task, message, value):
    serializer = message.content_type if message.content_type in serialization.SERIALIZERS \
        else settings.SERIALIZER
    try:
        text = limits.result_text(value, serializer, "the return value")
    except EncodeError as exc:
        error = EncodeError(f"{task.name} returned a value that cannot be stored: {exc}")
        return _exception_outcome(message, states.FAILURE, error, with_traceback=False)
    task_signals.send(signals.task_success, sender=task, result=value, task_id=message.task_id)
    return Outcome(message=message, state=states.SUCCESS, value=value, result_text=text,
                   content_type=serializer)


def _failure(task, message, exc):
    outcome = _exception_outcome(message, states.FAILURE, exc)
    task_signals.failure(task, message.task_id, exc)
    return outcome


def _retry_outcome(task, message, retry):
    reason = retry.exc if retry.exc is not None else retry
    outcome = _exception_outcome(message, states.RETRY, reason)
    outcome.retry_at = retry.when or timezone.now()
    if retry.retry_args is not None or retry.retry_kwargs is not None:
        args, kwargs = decode_body(message, settings.ACCEPT_CONTENT)
        outcome.new_body = serialization.dumps(
            {"args": retry.retry_args if retry.retry_args is not None else args,
             "kwargs": retry.retry_kwargs if retry.retry_kwargs is not None else kwargs},
            message.content_type, what="retry arguments")
        limits.check_message_size(task.name, outcome.new_body, "")
    task_signals.retry(task, message.task_id, reason)
    return outcome


def _autoretry(task, message, exc):
    if task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for):
        return _failure(task, message, exc)
    # Celery's retry_kwargs ({"max_retries": 5, "countdown": 10}) go to retry();
    # a backoff's countdown wins over theirs.
    options = dict(task.retry_kwargs or {})
    if task.retry_backoff or "countdown" not in options:
        options["countdown"] = retry_policy.autoretry_countdown(task, message.retries)
    try:
        task.retry(exc=exc, **options)
    except Retry as retry:
        return _retry_outcome(task, message, retry)
    except Exception as final:  # retries exhausted: retry() re-raised exc
        return _failure(task, message, final)


def unrecordable_outcome(message, error, hostname):
    """FAILURE in place of an outcome the worker could not turn into a result
    (a value too deep to encode, an exception whose text cannot be built):
    the task ends with a reason, the worker goes on."""
    return interrupted_outcome(message, EncodeError(
        f"could not record the outcome of {message.task_name}: "
        f"{type(error).__name__}: {short_repr(error, 200)}"), hostname)


def interrupted_outcome(message, exc, hostname):
    """The outcome of a task stopped by a time limit or a revoke outside its body."""
    state = states.REVOKED if isinstance(exc, TaskRevokedError) else states.FAILURE
    outcome = _exception_outcome(message, state, exc)
    outcome.hostname = hostname
    outcome.done_at = outcome.started_at = timezone.now()
    return outcome


def _exception_outcome(message, state, exc, with_traceback=True):
    text = None
    if with_traceback and exc.__traceback__ is not None:
        # PostgreSQL's text cannot hold NUL (an exception message may):
        # spelled as repr() spells it.
        text = limits.cut("".join(traceback_module.format_exception(exc)),
                          limits.TRACEBACK_CHARS).replace("\0", "\\x00")
    return Outcome(message=message, state=state, value=exc, result_text=exception_text(exc),
                   content_type="json", traceback=text)


def _arguments_text(parsed):
    return (_readable_json(parsed.get("args", [])), _readable_json(parsed.get("kwargs", {})))


def _arguments_as_json(args, kwargs):
    """Arguments that came in another format (msgpack), stored as JSON where
    they can be, so ``AsyncResult.args``, the admin's page, search and retry
    read them as they read a JSON call's; else (pickled objects) as their repr."""
    try:
        return (_readable_json(serialization.json_tree(args)),
                _readable_json(serialization.json_tree(kwargs)))
    except (EncodeError, ValueError):  # ValueError: an integer over 4,300 digits (pickle)
        return repr(args), repr(kwargs)


def run_eagerly(task, message):
    """EAGER mode: run now, through the real serialization path, retries included."""
    from .result import EagerResult

    if in_event_loop():  # an async view's .delay(): its database work cannot run here
        return call_outside_event_loop(run_eagerly, task, message)
    while True:
        outcome = execute(message, hostname="eager", is_eager=True)
        if outcome.state != states.RETRY:
            return EagerResult(outcome)
        # Celery runs eager retries at once instead of waiting for the countdown.
        message.headers = dict(message.headers, retries=message.retries + 1)
        if outcome.new_body is not None:
            message.body = outcome.new_body
