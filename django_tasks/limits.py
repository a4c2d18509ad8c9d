"""How large a message, a stored result and an error text may be.

PostgreSQL refuses a value over 1 GB (a ``jsonb`` one over 256 MB) and a
protocol message over 1 GB, and a refused statement drops the connection:
the worker that sent it would retry forever. Long before that, a worker
holding a few such values runs out of memory. So a message too large is
refused when it is sent (``EncodeError``), a result too large ends its task
FAILURE without being sent, and error texts are cut, not refused.
"""

import json

from . import serialization
from .conf import settings
from .exceptions import EncodeError

MIB = 1024 * 1024
#: Neither setting may go above this: ``jsonb`` (a message's headers) holds
#: at most 256 MB, and a row of results and arguments must stay well under
#: PostgreSQL's 1 GB protocol message.
CEILING = 256 * MIB
#: A traceback is read by people (and logged): past this many characters
#: its middle is cut (its head and tail, where the outermost calls and the
#: error are, stay).
TRACEBACK_CHARS = 64 * 1024
#: An exception as stored (its type, message and arguments as JSON) past this
#: many characters: the message cut, the arguments replaced by the cut message.
EXCEPTION_CHARS = 64 * 1024
#: A flush of many outcomes stops growing past this many characters of
#: stored text, so one statement stays far under the 1 GB message limit.
FLUSH_CHARS = 128 * MIB


def utf8_size(text, limit):
    """``text``'s size in UTF-8 bytes; for a text of more than ``limit``
    characters, its length (already over ``limit``) without encoding it."""
    if text.isascii() or len(text) > limit:
        return len(text)  # a character is at least one byte
    return len(text.encode("utf-8", "surrogatepass"))


def check_message_size(task_name, body, headers_text):
    """Raise ``EncodeError`` if a message of ``task_name`` is over MAX_MESSAGE_SIZE."""
    limit = settings.MAX_MESSAGE_SIZE
    size = utf8_size(body, limit) + utf8_size(headers_text, limit)
    if size > limit:
        raise EncodeError(
            f"cannot call {task_name}: the message is too large: {size} bytes > {limit} "
            f"(arguments and options serialized; setting DJANGO_TASKS['MAX_MESSAGE_SIZE'])")


def result_text(value, serializer, what):
    """``value`` serialized, or ``EncodeError`` if it is over MAX_RESULT_SIZE;
    a JSON or msgpack encoding stops as soon as it passes the limit (see
    ``serialization._encode_within``)."""
    limit = settings.MAX_RESULT_SIZE
    try:
        return checked_result(serialization.dumps(value, serializer, what, limit=limit))
    except serialization.TooLarge:
        raise EncodeError(f"result too large: over {limit} bytes "
                          f"(setting DJANGO_TASKS['MAX_RESULT_SIZE'])") from None


def checked_result(text):
    """``text`` (a serialized return value), or ``EncodeError`` if it is over
    MAX_RESULT_SIZE."""
    limit = settings.MAX_RESULT_SIZE
    size = utf8_size(text, limit)
    if size > limit:
        raise EncodeError(f"result too large: {size} bytes > {limit} "
                          f"(setting DJANGO_TASKS['MAX_RESULT_SIZE'])")
    return text


def cut(text, limit):
    """``text`` with its middle replaced by a marker if it is over ``limit`` characters."""
    if text is None or len(text) <= limit:
        return text
    keep = limit // 2
    return (f"{text[:keep]}\n... [{len(text) - 2 * keep} characters cut: over "
            f"{limit}] ...\n{text[-keep:]}")


def exception_json(data):
    """A stored exception dict (``serialization.exception_to_dict``) as JSON,
    its message cut and its arguments replaced by the cut message if the
    whole is over EXCEPTION_CHARS."""
    text = json.dumps(data)
    if len(text) <= EXCEPTION_CHARS:
        return text
    short = cut(data["exc_message"], EXCEPTION_CHARS // 2)
    return json.dumps({**data, "exc_message": short, "exc_args": [short]})


def outcome_chars(outcome):
    """About how many characters storing ``outcome`` sends."""
    return sum(len(text) for text in (outcome.result_text, outcome.traceback,
                                      outcome.args_text, outcome.kwargs_text) if text)
