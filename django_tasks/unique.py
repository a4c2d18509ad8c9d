"""Unique tasks: ``unique_key`` and ``unique_for`` (issue 19).

While a message of the same task with the same key waits or runs (and,
with ``unique_for``, that many seconds after it finished), another send
writes nothing and returns the holder's ``AsyncResult``.

A key is held by a row of ``UniqueLock`` naming the task id of its holder;
whether the hold is still live is derived from the queue table (the holder's
message is there) and the row's ``finished_at`` (set in the transaction that
acknowledges the holder). Nothing has to be released: a worker killed while
running the holder leaves its message in the queue, so the key stays held
until recovery has run it to its end, and nothing can leak.
"""

import math
from datetime import timedelta

from .messages import MAX_TASK_ID_LENGTH

# The headers of a unique message: the key (the finish hook, the admin) and
# its unique_for (only when above 0: the finish hook records the end then).
KEY_HEADER = "unique_key"
FOR_HEADER = "unique_for"
MAX_KEY_LENGTH = MAX_TASK_ID_LENGTH
# Ten years: beyond any interval either database adds to a timestamp.
MAX_UNIQUE_FOR = 10 * 366 * 24 * 3600


def checked_key(value, where):
    """``value`` (a str key) as stored, else ``TypeError``/``ValueError`` naming ``where``."""
    if type(value) is not str:
        raise TypeError(f"{where}: unique_key must be a str, got {type(value).__name__}: "
                        f"{value!r:.80}")
    if not value or len(value) > MAX_KEY_LENGTH or "\x00" in value:
        raise ValueError(f"{where}: unique_key {value!r:.80} must be 1 to {MAX_KEY_LENGTH} "
                         "characters, without NUL")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{where}: unique_key {value!r:.80} is not valid text "
                         "(lone surrogate)") from None
    return value


def checked_unique_for(value, where):
    """``value`` as seconds (a float, 0 to MAX_UNIQUE_FOR), else a clear error."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: unique_for must be seconds (a number or a timedelta), "
                        f"got {type(value).__name__}: {value!r:.80}")
    if not math.isfinite(value) or not 0 <= value <= MAX_UNIQUE_FOR:
        raise ValueError(f"{where}: unique_for {value!r} must be between 0 and "
                         f"{MAX_UNIQUE_FOR} seconds")
    return float(value)


def checked_task_options(task):
    """At ``@task``: ``unique_key`` is a str or a callable; ``unique_for`` needs one."""
    where = f"@task of {task.name}"
    if task.unique_key is not None and not callable(task.unique_key):
        checked_key(task.unique_key, where)
    task.unique_for = checked_unique_for(task.unique_for, where) or None
    if task.unique_for and task.unique_key is None:
        raise TypeError(f"{where}: unique_for needs a unique_key (a str, or a callable "
                        "of (args, kwargs) returning the key)")


def key_of_call(task, args, kwargs, unique_key, unique_for, where):
    """The (key, unique_for seconds) of one send, or None when it is not unique.

    ``unique_key`` and ``unique_for`` are the call's (None: the task's).
    """
    if unique_key is None:
        unique_key = task.unique_key
        if callable(unique_key):
            unique_key = _call_key_function(unique_key, args, kwargs, where)
    if unique_key is None:
        if unique_for is not None and task.unique_key is None:
            raise TypeError(f"{where}: unique_for needs a unique_key")
        checked_unique_for(unique_for, where)
        return None
    key = checked_key(unique_key, where)
    seconds = checked_unique_for(unique_for if unique_for is not None else task.unique_for,
                                 where)
    return key, seconds


def _call_key_function(function, args, kwargs, where):
    try:
        key = function(tuple(args or ()), dict(kwargs or {}))
    except Exception as exc:
        raise ValueError(f"{where}: the unique_key callable {function!r} raised "
                         f"{type(exc).__name__}: {exc}") from exc
    if key is not None and type(key) is not str:
        raise TypeError(f"{where}: the unique_key callable {function!r} returned "
                        f"{type(key).__name__} {key!r:.80}; it must return a str key, or "
                        "None for a call that is not unique")
    return key


def mark(message, key, seconds):
    """Write the key (and a unique_for above 0) into ``message``'s headers."""
    message.headers[KEY_HEADER] = key
    if seconds:
        message.headers[FOR_HEADER] = seconds


# -- the finish hook: when a holder with unique_for ended ---------------------

def _ending(outcomes):
    return [o.message for o in outcomes
            if o.message.headers.get(FOR_HEADER) and o.retry_at is None and not o.requeue
            and _recordable(o.message.headers)]


def _recordable(headers):
    """Headers as a unique send writes them: anything else (a forged or
    damaged row) is not recorded, and never fails the acknowledgement."""
    key, seconds = headers.get(KEY_HEADER), headers.get(FOR_HEADER)
    return (type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH and "\x00" not in key
            and type(seconds) in (int, float) and 0 < seconds <= MAX_UNIQUE_FOR)


def record_finishes(outcomes, queue):
    """Note when unique holders with ``unique_for`` ended (their acknowledgement's
    transaction): their keys stay held that long after."""
    ended = _ending(outcomes)
    if ended:
        queue.record_unique_finishes(ended)


record_finishes.wants = lambda outcomes: bool(_ending(outcomes))
