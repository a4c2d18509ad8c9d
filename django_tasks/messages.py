"""The message: what ``apply_async`` writes and what a worker claims."""

import inspect
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from . import concurrency, serialization
from .exceptions import EncodeError
from .rate_limits import is_rate
from .timestamps import HIGHEST, LOWEST


@dataclass
class Message:
    task_id: str
    task_name: str
    queue: str
    priority: int
    available_at: datetime
    expires: datetime | None
    content_type: str
    body: str
    headers: dict = field(default_factory=dict)
    # Filled in when a worker claims it.
    id: int | None = None
    deliveries: int = 0
    created_at: datetime | None = None
    started: bool = False  # marked started by the claim itself
    # Acknowledged before its task ran (acks_late=False): never delivered again.
    acked: bool = False
    # What is wrong with a claimed message's headers (see checked_headers).
    corrupt: str | None = None
    # The worker holding it, where a read says (the orphans recovery hands back).
    claimed_by: object = field(default=None, compare=False)

    @property
    def retries(self):
        return self.headers.get("retries", 0)


def repeated(template, task_id, body):
    """``template`` with its own ``task_id`` and ``body``, its other fields
    the same objects (a group's members: see ``MessageBuilder.repeat``).

    A copy of its attributes rather than a new ``Message(...)``: the
    dataclass's ``__init__`` with its fourteen fields was a third of the cost
    of planning a group's member.
    """
    message = _new_message(Message)
    fields = template.__dict__.copy()
    fields["task_id"] = task_id
    fields["body"] = body
    message.__dict__ = fields
    return message


_new_message = object.__new__


# Longer than any task should run, short enough for the interval timer
# (setitimer) and the supervisor's clock arithmetic.
MAX_TIME_LIMIT = 10 * 365 * 24 * 3600.0


def _time_limit(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and 0 <= value <= MAX_TIME_LIMIT)


# The queue table's column; runworker -Q splits on commas and strips spaces.
MAX_QUEUE_NAME = 200


def checked_queue(name):
    """A queue name a worker can be told to consume (``runworker -Q``)."""
    if not isinstance(name, str) or not name or name != name.strip() or "," in name \
            or len(name) > MAX_QUEUE_NAME:
        raise ValueError(f"queue {name!r:.80} cannot be consumed: give a name of 1 to "
                         f"{MAX_QUEUE_NAME} characters, without commas or surrounding spaces")
    return name


def checked_priority(priority):
    """A priority the queue's column holds (PostgreSQL's smallint)."""
    if not -32768 <= priority <= 32767:
        raise ValueError(f"priority {priority!r} is out of range: give -32768 to 32767 "
                         "(higher runs first)")
    return priority


def checked_time_limit(value, what):
    """A time limit as given to ``@task`` or ``apply_async``: refused at once
    if the worker could not apply it."""
    if not _time_limit(value):
        raise ValueError(f"{what} must be a number of seconds from 0 to {MAX_TIME_LIMIT:g} "
                         f"(or None), got {value!r:.80}")
    return value


# The task id columns' length (CharField max_length): ids are any text, as
# in Celery, up to this many characters.
MAX_TASK_ID_LENGTH = 255


def is_task_id(value):
    """Whether ``value`` is an id the task id columns hold: a non-empty str of
    at most MAX_TASK_ID_LENGTH characters, without NUL (PostgreSQL's text
    cannot hold it) or lone surrogates (not UTF-8)."""
    return (type(value) is str and 0 < len(value) <= MAX_TASK_ID_LENGTH
            and "\x00" not in value and (value.isascii() or _utf8(value)))


def _utf8(text):
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def checked_task_id(value, what="task_id"):
    """A task (or group) id given by the caller, as stored: any text, as in
    Celery; a ``uuid.UUID`` as its canonical text. Refused at the call if no
    row could hold it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str (any text), got {type(value).__name__}")
    value = str(value)  # a subclass's own behaviour goes no further
    if not is_task_id(value):
        raise ValueError(f"{what} {value!r:.80} cannot be stored: give 1 to "
                         f"{MAX_TASK_ID_LENGTH} characters, without NUL or lone surrogates")
    return value


# The headers that hold task or group ids (result columns, a chord's row).
ID_HEADERS = ("parent_id", "root_id", "group_id", "chord")


def _id_or_none(value):
    return value is None or is_task_id(value)


def _signatures(value):
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


# The most retries a result row holds (an integer column on every database).
MAX_RETRIES_HEADER = 2 ** 31 - 1

# The headers the worker reads before or around running a task, and what
# each must be for it to read them safely.
HEADER_CHECKS = {
    "retries": lambda value: isinstance(value, int) and not isinstance(value, bool)
    and 0 <= value <= MAX_RETRIES_HEADER,
    "time_limit": _time_limit, "soft_time_limit": _time_limit,
    "ignore_result": lambda value: value is None or isinstance(value, bool),
    "parent_id": _id_or_none, "root_id": _id_or_none, "group_id": _id_or_none,
    "chord": _id_or_none,
    "link": _signatures, "link_error": _signatures, "chain": _signatures,
    concurrency.HEADER: concurrency.valid_header,
    "rate_limit": is_rate,
}


class Unreadable:
    """A stored column value Python cannot hold (a timestamp of 'infinity' or
    year 10000, JSON nested thousands deep, text that is not UTF-8), read
    in its place so that one bad row does not fail the read of its batch."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error

    def __repr__(self):
        return f"<unreadable: {self.error}>"


# What reading a stored value may raise, besides the database's own errors.
READ_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def checked_headers(headers):
    """A claimed message's headers, and what is wrong with them (None if nothing).

    A hand-made or damaged row must not stop a worker: it fails as corrupt,
    and a value of the wrong type is left out so nothing trips over it on
    the way.
    """
    if not isinstance(headers, dict):
        return {}, f"headers are not a JSON object: {headers!r:.120}"
    # Over the message's own keys (usually one or two): this runs for every
    # message claimed.
    wrong = [key for key, value in headers.items()
             if (valid := HEADER_CHECKS.get(key)) is not None and not valid(value)]
    if not wrong:
        return headers, None
    problem = f"header {wrong[0]!r} is {headers[wrong[0]]!r:.80}"
    return {k: v for k, v in headers.items() if k not in wrong}, problem


def new_task_id():
    """A version 7 UUID (RFC 9562) as text: the clock's milliseconds, then 74
    random bits.

    Ids that grow with time land at the right edge of the results' primary
    key and of the indexes over parent and group ids, where random ones
    would each dirty a page of their own. Formatted from the bytes
    directly: half the cost of going through a ``UUID`` object, paid for
    every task sent and every group member.
    """
    raw = bytearray(os.urandom(16))
    raw[:6] = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_task_ids(count):
    """``count`` ids as ``new_task_id`` makes them, with one read of the clock
    and of the random source for all of them (a group's members), in
    ascending order.

    Ascending, a group's rows reach the end of the queue's task_id index
    one after another, where the server inserts them without descending the
    tree, rather than each at a random place among the others of that
    millisecond. The ids are as random as before: only which member gets
    which changes. Each step is one pass over all the ids (slices with a
    stride, ``translate``), not Python code per id.
    """
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    randomness = os.urandom(10 * count)
    raw = bytearray(16 * count)
    for i in range(6):
        raw[i::16] = stamp[i:i + 1] * count
    for i in range(10):
        raw[6 + i::16] = randomness[i::10]
    raw[6::16] = raw[6::16].translate(_VERSION_7)
    raw[8::16] = raw[8::16].translate(_RFC_9562_VARIANT)
    digits = raw.hex().encode()
    text = bytearray(b"-" * (37 * count))  # each id's 36 characters, and a space
    for digit, place in enumerate(_DIGIT_PLACES):
        text[place::37] = digits[digit::32]
    text[36::37] = b" " * count
    ids = text.decode().split()
    ids.sort()
    return ids


_VERSION_7 = bytes((byte & 0x0F) | 0x70 for byte in range(256))
_RFC_9562_VARIANT = bytes((byte & 0x3F) | 0x80 for byte in range(256))
# Where each of an id's 32 hex digits goes among its characters (8-4-4-4-12).
_DIGIT_PLACES = [digit + (digit >= 8) + (digit >= 12) + (digit >= 16) + (digit >= 20)
                 for digit in range(32)]


def to_aware(value, what):
    """Accept an aware datetime, or a naive one in the current time zone,
    within the range every part of the system can read back (PostgreSQL
    stores far wider ones; Python's datetime, so psycopg, Django and the
    admin, reads years 1 to 9999 in any time zone it is shown in)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        in_range = LOWEST <= value <= HIGHEST
    except (OverflowError, ValueError):  # the zone's offset leaves datetime's range
        in_range = False
    if not in_range:
        raise ValueError(f"{what} {value!r} is out of range: give a moment between "
                         f"{LOWEST.date()} and {HIGHEST.date()} (UTC)")
    return value


def _later(now, seconds, what):
    """``now`` plus ``seconds`` (a number or a timedelta), checked."""
    if isinstance(seconds, timedelta):
        delta = seconds
    else:
        try:
            if isinstance(seconds, bool):
                raise TypeError
            seconds = float(seconds)
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be a number of seconds, got {seconds!r:.80}") from None
        if not math.isfinite(seconds):
            raise ValueError(f"{what} must be a finite number of seconds, got {seconds!r}")
        try:
            delta = timedelta(seconds=seconds)
        except OverflowError:
            delta = None
    try:
        moment = None if delta is None else now + delta
    except OverflowError:
        moment = None
    if moment is None:
        raise ValueError(f"{what} {seconds!r:.80} is out of range: it ends after {HIGHEST.date()}")
    return to_aware(moment, what)


def compute_available_at(now, countdown=None, eta=None):
    if countdown is not None and eta is not None:
        raise ValueError("give countdown or eta, not both")
    if countdown is not None:
        return _later(now, countdown, "countdown")
    if eta is not None:
        return to_aware(eta, "eta")
    return now


def compute_expires(now, expires):
    """``expires`` is seconds from now, a timedelta, or a datetime."""
    if expires is None:
        return None
    if isinstance(expires, datetime):
        return to_aware(expires, "expires")
    return _later(now, expires, "expires")


_PLAIN = (int, float, str, bool, type(None))


def encode_body(task, args, kwargs, serializer):
    """Serialize the call's arguments, naming the culprit on failure."""
    body = {"args": list(args), "kwargs": dict(kwargs)}
    if serializer == "json" and _plain(args, kwargs):
        # The common case (ids, numbers, strings) needs no type tags: skip the walk.
        try:
            return serialization.compact_json(body)
        except ValueError:
            pass  # an int too long for text: the walk below says which argument
    try:
        return serialization.dumps(body, serializer, what="arguments")
    except EncodeError:
        raise _explain_encode_error(task, args, kwargs, serializer) from None


def _plain(args, kwargs):
    if not args and not kwargs:
        return True
    return (all(type(value) in _PLAIN for value in args)
            and all(type(value) in _PLAIN for value in kwargs.values())
            and serialization.TYPE_KEY not in kwargs)


def _explain_encode_error(task, args, kwargs, serializer):
    names = _positional_names(task)
    for position, value in enumerate(args):
        label = f"args[{position}]"
        if position < len(names):
            label = f"argument {names[position]!r} ({label})"
        error = _try_encode(value, serializer, label)
        if error is not None:
            return EncodeError(f"cannot call {task.name}: {error}")
    for key, value in kwargs.items():
        error = _try_encode(value, serializer, f"argument {key!r} (kwargs[{key!r}])")
        if error is not None:
            return EncodeError(f"cannot call {task.name}: {error}")
    return EncodeError(f"cannot call {task.name}: the arguments cannot be serialized")


def _try_encode(value, serializer, label):
    try:
        serialization.dumps(value, serializer, what=label)
    except EncodeError as exc:
        return str(exc)
    return None


def _positional_names(task):
    try:
        params = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError):
        return []
    if task.bind and params:
        params = params[1:]
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def decode_body(message, accept):
    return decode_body_parsed(message, accept)[:2]


def decode_body_parsed(message, accept):
    """``decode_body``'s args and kwargs, and a JSON body's parsed JSON
    (None for another format): see ``serialization.loads_json_parsed``."""
    if message.content_type == "json":
        data, parsed = serialization.loads_json_parsed(message.body, accept)
    else:
        data, parsed = serialization.loads(message.body, message.content_type, accept), None
    if not isinstance(data, dict) or not isinstance(data.get("args", []), list) \
            or not isinstance(data.get("kwargs", {}), dict):
        raise serialization.DecodeError("message body is not {'args': [...], 'kwargs': {...}}")
    return data.get("args", []), data.get("kwargs", {}), parsed
