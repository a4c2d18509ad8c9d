"""``@task(concurrency_limit=N, concurrency_key=callable)``: the options, checked.

At most N messages of a task with the same key run at once, across every
worker. The key is computed when the message is sent, from the call's
arguments, and travels in its ``concurrency`` header with the limit:
``[key, limit]``. The worker's concurrency gate (worker/concurrency_gate.py)
reads it there; a message without the header is not limited and costs the
gate one look at its headers.
"""

HEADER = "concurrency"
# The key is stored in an indexed column of the queue table.
MAX_KEY_LENGTH = 200
# The key of a task limited as a whole (no concurrency_key given).
WHOLE_TASK = ""


def checked_limit(value, where):
    """``value`` if it is None or a positive int, else ``ValueError`` naming ``where``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"{where}: concurrency_limit {value!r} is not a positive int "
                     "(the number of tasks with the same key that may run at once)")


def check_options(task):
    """The decorator's ``concurrency_limit``/``concurrency_key``, checked."""
    where = f"@task of {task.name}"
    checked_limit(task.concurrency_limit, where)
    key = task.concurrency_key
    if key is not None and not callable(key):
        raise TypeError(f"{where}: concurrency_key {key!r} is not callable: give a function "
                        "of (args, kwargs) returning the key (a str) or None")
    if key is not None and task.concurrency_limit is None:
        raise ValueError(f"{where}: concurrency_key needs concurrency_limit "
                         "(how many tasks with the same key may run at once)")


def checked_key(value, where):
    """A key returned by a ``concurrency_key`` function: a str (or None)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{where}: concurrency_key returned {value!r:.80}, not a str or None")
    if len(value) > MAX_KEY_LENGTH or "\x00" in value:
        raise ValueError(f"{where}: concurrency_key returned {value!r:.80}: a key is at most "
                         f"{MAX_KEY_LENGTH} characters, without NUL")
    return value


def header(task, args, kwargs):
    """The ``concurrency`` header of a call of ``task`` (None: not limited).

    The key function gets the call's ``(args, kwargs)``, as a ``unique_key``
    function does; whatever it raises reaches the caller, naming the option.
    """
    limit = getattr(task, "concurrency_limit", None)
    if limit is None:
        return None
    function = task.concurrency_key
    if function is None:
        return [WHOLE_TASK, limit]
    where = f"{task.name}.apply_async()"
    try:
        key = function(tuple(args or ()), dict(kwargs or {}))
    except Exception as exc:
        raise ValueError(f"{where}: concurrency_key raised {type(exc).__name__}: {exc}") \
            from exc
    key = checked_key(key, where)
    return None if key is None else [key, limit]


def valid_header(value):
    """What a claimed message's header must be for the gate to read it."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and len(value[0]) <= MAX_KEY_LENGTH and "\x00" not in value[0]
            and isinstance(value[1], int) and not isinstance(value[1], bool) and value[1] > 0)


def describe_key(key):
    """A key as the admin and tasks_status show it."""
    return "(the whole task)" if key == WHOLE_TASK else key
