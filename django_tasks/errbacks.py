"""Errbacks (``link_error``) in both of Celery's styles.

Celery calls an errback whose task accepts three arguments as
``errback(request, exc, traceback)`` (its current style) and sends one that
takes a single argument the failed task's id (the old style). Here every
errback runs as a task of its own, on a worker, so what it is called with
must travel in its message: its first argument is the failed task's id, as
before, and its ``errback`` header holds the failure (the failed task's
request as plain data, its exception as stored, its traceback text). The
worker that runs the errback decides, from the errback's own function, which
style it is called in; a process that follows a failure (a worker, a revoke
in the web process) needs not import the errback's task.
"""

import inspect
import json

from . import serialization
from .context import Request
from .exceptions import DecodeError, EncodeError

HEADER = "errback"

# The failed task's arguments are in its request only if its body is at most
# this large: the errback's message must stay small whatever they were.
ARGUMENTS_LIMIT = 64 * 1024


# -- following a failure (the process that stores it) -------------------------

def failure_header(message, exc_text, traceback, hostname):
    """What the ``errback`` header says about the failure of ``message``."""
    headers = message.headers
    args, kwargs = _arguments(message)
    request = {
        "id": message.task_id, "task": message.task_name, "args": args, "kwargs": kwargs,
        "retries": message.retries, "hostname": hostname or None, "queue": message.queue,
        "priority": message.priority, "eta": _eta(message), "expires": message.expires,
        "group": headers.get("group_id"), "root_id": headers.get("root_id") or message.task_id,
        "parent_id": headers.get("parent_id"), "delivery_count": message.deliveries,
    }
    try:
        tagged = _tagged(request)
    except EncodeError:  # a timestamp a hand-made row holds that Python cannot
        tagged = _tagged({**request, "eta": None, "expires": None})
    return _within_budget({"request": tagged, "exc": serialization.parse_json(exc_text),
                           "traceback": traceback})


def _within_budget(failure):
    """``failure``, made smaller if it would take over half of the largest
    message (a small ``MAX_MESSAGE_SIZE``), so that the errback's message is
    never refused: without the failed task's arguments, then without its
    traceback, then with the exception's text cut; ``None`` if still too
    large (the errback gets the task id only)."""
    from .conf import settings
    from .limits import utf8_size

    budget = settings.MAX_MESSAGE_SIZE // 2
    steps = (_without_arguments, _without_traceback, lambda f: _exception_cut(f, budget // 8),
             lambda f: None)
    for smaller in steps:
        if utf8_size(serialization.compact_json(failure), budget) <= budget:
            return failure
        failure = smaller(failure)
    return None


def _without_arguments(failure):
    return {**failure, "request": {**failure["request"], "args": None, "kwargs": None}}


def _without_traceback(failure):
    return {**failure, "traceback": None}


def _exception_cut(failure, chars):
    exc = failure["exc"]
    if not isinstance(exc, dict) or not isinstance(exc.get("exc_message"), str):
        return failure
    message = exc["exc_message"][:chars]
    return {**failure, "exc": {**exc, "exc_message": message, "exc_args": [message]}}


def _eta(message):
    """When the task was to run, if it was sent for later (else None, as in Celery)."""
    available_at, created_at = message.available_at, message.created_at
    try:
        return available_at if available_at > created_at else None
    except TypeError:  # an unreadable timestamp of a hand-made row
        return None


def _arguments(message):
    """The failed task's (args, kwargs) as JSON can hold them, else (None, None)."""
    from .conf import settings
    from .messages import decode_body

    body = message.body
    if not isinstance(body, str) or len(body) > ARGUMENTS_LIMIT:
        return None, None
    try:
        args, kwargs = decode_body(message, settings.ACCEPT_CONTENT)
        # Only what JSON can carry (a pickled argument may not be).
        serialization.dumps([args, kwargs], "json")
    except (DecodeError, EncodeError):
        return None, None
    return args, kwargs


def _tagged(value):
    """``value`` as header data: JSON, with datetimes, tuples... tagged."""
    return json.loads(serialization.dumps(value, "json", what="an errback's request"))


def with_failure(errback, failure):
    """The errback (header data) as a signature whose message will carry ``failure``."""
    from .canvas import Signature, from_header

    sig = from_header(errback)
    # A chain or group as an errback is applied as before: with the task id.
    if failure is not None and type(sig) is Signature:
        sig.options["headers"] = {**(sig.options.get("headers") or {}), HEADER: failure}
    return sig


# -- running an errback (the worker) -------------------------------------------

def call_arguments(task, message, args, kwargs):
    """The arguments to call ``task`` with: ``(request, exc, traceback, *own)``
    for an errback whose function accepts them, else ``args`` as they are.

    Raises ``DecodeError`` for a failure header that cannot be read.
    """
    failure = message.headers.get(HEADER)
    if failure is None or not args or not _takes_failure(task, args[1:], kwargs):
        return args
    if not isinstance(failure, dict) or not isinstance(failure.get("request"), dict):
        raise DecodeError(f"the {HEADER!r} header is not a failure: "
                          f"{serialization.short_repr(failure, 80)}")
    traceback = failure.get("traceback")
    if traceback is not None and not isinstance(traceback, str):
        raise DecodeError(f"the {HEADER!r} header's traceback is not text")
    request = _request(failure["request"])
    try:
        exc = serialization.exception_from_dict(failure.get("exc"))
    except DecodeError as error:
        raise DecodeError(f"the {HEADER!r} header's exception: {error}") from None
    return [request, exc, traceback, *args[1:]]


def _takes_failure(task, own_args, kwargs):
    """True if the task's function accepts ``(request, exc, traceback, *own_args)``."""
    try:
        signature = inspect.signature(task.run)
    except (TypeError, ValueError):  # a callable Python cannot describe
        return False
    leading = (task,) if task.bind else ()
    try:
        signature.bind(*leading, None, None, None, *own_args, **kwargs)
    except TypeError:
        return False
    return True


def _request(data):
    """The failed task's request, rebuilt as a ``Request`` (like Celery's Context)."""
    try:
        fields = serialization.loads(json.dumps(data), "json", ["json"])
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"the {HEADER!r} header's request cannot be read: {exc}") from None
    known = {name: value for name, value in fields.items()
             if name in Request.__dataclass_fields__ and name not in ("headers", "is_eager")}
    if not isinstance(known.get("id"), str):
        raise DecodeError(f"the {HEADER!r} header's request has no task id")
    return Request(**known)
