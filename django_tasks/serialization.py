"""Turning task arguments, results and exceptions into stored text and back.

JSON is the default. Types JSON lacks (datetime, date, time, timedelta,
Decimal, UUID, bytes, tuple, set, dicts with non-string keys) are written
as ``{"__type__": name, "value": ...}`` so they come back as the same type;
msgpack (``msgpack_serializer.py``) writes the same tagged values. Pickle
is available only when ``ACCEPT_CONTENT`` lists it, because unpickling runs
code chosen by whoever wrote the message. ``register`` adds a serializer of
the project's own.
"""

import base64
import codecs
import datetime
import decimal
import inspect
import json
import pickle
import re
import reprlib
import sys
import uuid

from .exceptions import ContentDisallowed, DecodeError, EncodeError, SerializerUnavailable

TYPE_KEY = "__type__"


def reusable_json_encoder(item_separator=", ", key_separator=": "):
    """A ``json.dumps`` (no ASCII escaping) whose encoder is built once.

    ``JSONEncoder.encode`` builds its C encoder anew on every call, which
    costs more than encoding a task's arguments or headers; the C encoder
    itself can be kept and called again. Without the circular-reference
    check, which would share state between threads, a cycle ends in
    ``RecursionError``: give it trees made by ``_to_json_tree`` (bounded by
    ``MAX_DEPTH``), or plain data of known shape.
    """
    fallback = json.JSONEncoder(separators=(item_separator, key_separator),
                                ensure_ascii=False, check_circular=False)
    make_encoder = json.encoder.c_make_encoder
    if make_encoder is None:  # no C accelerator (PyPy): the slower path
        return fallback.encode
    encoder = make_encoder(None, fallback.default, json.encoder.c_encode_basestring, None,
                           key_separator, item_separator, False, False, True)

    def encode(value):
        return "".join(encoder(value, 0))

    return encode


compact_json = reusable_json_encoder(",", ":")


#: The deepest nesting of lists, dicts, tuples and sets a value may have.
#: An explicit limit, not the interpreter's recursion limit, so a value
#: encodes (and decodes) the same in any caller and any thread; deep enough
#: for data, shallow enough that its JSON (at most three levels per level,
#: for dicts with non-string keys) stays far from that limit. A cyclic value
#: ends here too.
MAX_DEPTH = 100

_CONTAINERS = (list, dict, tuple, set, frozenset)


class _Unencodable(Exception):
    """Raised out of the walk; ``path`` collects where, outermost last."""

    def __init__(self, value, too_deep=False):
        self.value = value
        self.too_deep = too_deep
        self.path = []


def _to_json_tree(value, depth=0, raw_bytes=False):
    """``value`` as plain JSON data, tagging the types JSON lacks.

    ``depth`` counts the containers around ``value``. Loops rather than
    comprehensions, so that an error can name the index or key it came from
    (built only then, not for every item). With ``raw_bytes``, bytes stay
    bytes (for formats that hold them, such as msgpack).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, _CONTAINERS):
        if depth >= MAX_DEPTH:
            raise _Unencodable(value, too_deep=True)
        depth += 1
        if isinstance(value, list):
            return _items(value, depth, raw_bytes)
        if isinstance(value, dict):
            return _dict(value, depth, raw_bytes)
        if isinstance(value, tuple):
            return _tagged("tuple", _items(value, depth, raw_bytes))
        name = "frozenset" if isinstance(value, frozenset) else "set"
        return _tagged(name, _items(value, depth, raw_bytes, member=True))
    if isinstance(value, datetime.datetime):
        return _tagged("datetime", value.isoformat())
    if isinstance(value, datetime.date):
        return _tagged("date", value.isoformat())
    if isinstance(value, datetime.time):
        return _tagged("time", value.isoformat())
    if isinstance(value, datetime.timedelta):
        return _tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if isinstance(value, decimal.Decimal):
        return _tagged("decimal", str(value))
    if isinstance(value, uuid.UUID):
        return _tagged("uuid", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        if raw_bytes:
            return bytes(value)
        return _tagged("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    raise _Unencodable(value)


def _items(items, depth, raw_bytes, member=False):
    tree = []
    index = 0
    try:
        for index, item in enumerate(items):  # noqa: B007 (read when an item fails)
            tree.append(_to_json_tree(item, depth, raw_bytes))
    except _Unencodable as exc:
        exc.path.append("<item>" if member else f"[{index}]")
        raise
    return tree


def _dict(value, depth, raw_bytes):
    plain = TYPE_KEY not in value
    tree = {}
    key = None
    try:
        for key, item in value.items():
            if not isinstance(key, str):
                plain = False
                break
            tree[key] = _to_json_tree(item, depth, raw_bytes)
    except _Unencodable as exc:
        exc.path.append(f"[{short_repr(key, 40)}]")
        raise
    if plain:
        return tree
    pairs = []
    in_key = False
    try:
        for key, item in value.items():
            in_key = True
            encoded_key = _to_json_tree(key, depth, raw_bytes)
            in_key = False
            pairs.append([encoded_key, _to_json_tree(item, depth, raw_bytes)])
    except _Unencodable as exc:
        shown = short_repr(key, 40)
        exc.path.append(f"<key {shown}>" if in_key else f"[{shown}]")
        raise
    return _tagged("dict", pairs)


def _tagged(name, value):
    return {TYPE_KEY: name, "value": value}


class _Malformed(ValueError):
    """A tagged value of the wrong shape (_decode_tagged says which)."""


def _require(kind):
    def check(decode):
        def checked(value, depth):
            if not isinstance(value, kind):
                raise _Malformed(f"holds {type(value).__name__}, not {kind.__name__}")
            return decode(value, depth)
        return checked
    return check


@_require(list)
def _decode_dict(pairs, depth):
    value = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise _Malformed(f"holds {short_repr(pair, 40)}, not a [key, value] pair")
        value[_from_json_tree(pair[0], depth)] = _from_json_tree(pair[1], depth)
    return value


@_require(list)
def _decode_tuple(items, depth):
    return tuple(_decode_list(items, depth))


@_require(list)
def _decode_set(items, depth):
    return set(_decode_list(items, depth))


@_require(list)
def _decode_frozenset(items, depth):
    return frozenset(_decode_list(items, depth))


@_require(list)
def _decode_timedelta(parts, depth):
    if len(parts) != 3 or not all(type(part) is int for part in parts):
        raise _Malformed("is not [days, seconds, microseconds]")
    return datetime.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


def _from_text(parse):
    return _require(str)(lambda text, depth: parse(text))


def _parse_int(text):
    # Digits only: int() would also take spaces and underscores.
    if not _INTEGER.fullmatch(text):
        raise _Malformed(f"holds {short_repr(text, 40)}, not an integer")
    return int(text)


_INTEGER = re.compile(r"-?[0-9]+")


#: Each decoder takes the tag's value and the depth; bad input raises
#: _Malformed or one of _DECODING_ERRORS, which _decode_tagged turns into a
#: DecodeError (bad values nested in it raise DecodeError themselves).
_DECODERS = {
    "dict": _decode_dict,
    "tuple": _decode_tuple,
    "set": _decode_set,
    "frozenset": _decode_frozenset,
    "datetime": _from_text(datetime.datetime.fromisoformat),
    "date": _from_text(datetime.date.fromisoformat),
    "time": _from_text(datetime.time.fromisoformat),
    "timedelta": _decode_timedelta,
    "decimal": _from_text(decimal.Decimal),
    "uuid": _from_text(uuid.UUID),
    "bytes": _from_text(lambda text: base64.b64decode(text, validate=True)),
    # Integers msgpack cannot hold (outside 64 bits), in decimal.
    "int": _from_text(_parse_int),
}
_CONTAINER_TAGS = {"dict", "tuple", "set", "frozenset"}
# What parsing a tagged value raises on bad input: ValueError (and its
# binascii.Error), TypeError (an unhashable set member or dict key),
# OverflowError and decimal.InvalidOperation (both ArithmeticError).
_DECODING_ERRORS = (ValueError, TypeError, ArithmeticError)


# What json.loads makes of JSON's scalars: nothing to decode (a shortcut, as
# most items are).
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _decode_list(items, depth):
    return [item if item.__class__ in _JSON_SCALARS else _from_json_tree(item, depth)
            for item in items]


def _from_json_tree(value, depth=0):
    """Parsed JSON back to the value it encodes; only DecodeError on bad input."""
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise _too_deep()
        depth += 1
        return [item if item.__class__ in _JSON_SCALARS else _from_json_tree(item, depth)
                for item in value]
    if isinstance(value, dict):
        if TYPE_KEY in value and len(value) == 2 and "value" in value:
            return _decode_tagged(value[TYPE_KEY], value["value"], depth)
        if depth >= MAX_DEPTH:
            raise _too_deep()
        depth += 1
        return {key: item if item.__class__ in _JSON_SCALARS else _from_json_tree(item, depth)
                for key, item in value.items()}
    return value


def _decode_tagged(name, value, depth):
    decoder = _DECODERS.get(name) if isinstance(name, str) else None
    if decoder is None:
        raise DecodeError(f"cannot decode: unknown tagged type {short_repr(name, 40)}")
    if name in _CONTAINER_TAGS:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        depth += 1
    try:
        return decoder(value, depth)
    except DecodeError:  # a value nested in this one said what is wrong
        raise
    except _Malformed as exc:
        raise DecodeError(f"cannot decode a {name!r} tagged value: it {exc}") from None
    except _DECODING_ERRORS as exc:
        raise DecodeError(f"cannot decode a {name!r} tagged value "
                          f"{short_repr(value, 60)}: {type(exc).__name__}: {exc}") from None


def _decode_tree(tree):
    try:
        return _from_json_tree(tree)
    except RecursionError:  # MAX_DEPTH keeps clear of it, unless the caller is deep already
        raise DecodeError("cannot decode JSON: nested too deeply for the stack here") from None


def _too_deep():
    return DecodeError(f"cannot decode JSON: nested too deeply (more than {MAX_DEPTH} levels "
                       "of lists, dicts, tuples or sets)")


class TooLarge(EncodeError):
    """The text being made passed ``limit`` characters (so at least as many bytes)."""

    def __init__(self, limit):
        super().__init__(f"more than {limit} characters")
        self.limit = limit


class BoundedParts(list):
    """The pieces of an encoding made an item at a time: ``add`` raises
    ``TooLarge(limit)`` as soon as their total length passes ``most`` (the
    pieces' own unit: characters, or bytes whose base64 is ``limit``
    characters)."""

    def __init__(self, most, limit):
        super().__init__()
        self.most, self.limit, self.size = most, limit, 0

    def add(self, piece):
        self.size += len(piece)
        if self.size > self.most:
            raise TooLarge(self.limit)
        self.append(piece)


# A part of a result holding more items than this (in all its lists and
# dicts) is encoded an item at a time.
CHUNK_ITEMS = 1000


def _many_items(node):
    """Whether the lists and dicts in ``node`` hold more than CHUNK_ITEMS items
    in all (counting stops there)."""
    count = 0
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, (list, dict)):
            count += len(current)
            if count > CHUNK_ITEMS:
                return True
            pending.extend(current.values() if isinstance(current, dict) else current)
    return False


def _encode_within(tree, limit):
    """``compact_json(tree)``, or ``TooLarge`` once the text passes ``limit``
    characters.

    The C encoder holds the GIL for all of one call: encoding a large result
    whole would starve the heartbeat thread (the worker declared lost while
    it encodes) and build all of a text that is then refused. The large
    parts go an item at a time instead, the running size checked between
    them; a small result is one call, as before.
    """
    if not _many_items(tree):
        return compact_json(tree)  # one call: the caller measures it exactly
    parts = BoundedParts(limit, limit)
    add = parts.add

    def encode(node):
        if isinstance(node, list) and _many_items(node):
            add("[")
            for index, item in enumerate(node):
                if index:
                    add(",")
                encode(item)
            add("]")
        elif isinstance(node, dict) and _many_items(node):
            add("{")
            for index, (key, item) in enumerate(node.items()):
                add(("," if index else "") + compact_json(key) + ":")
                encode(item)
            add("}")
        else:
            add(compact_json(node))

    encode(tree)
    return "".join(parts)


def unencodable_error(exc, what, format_name):
    """The EncodeError for an ``_Unencodable`` raised out of ``_to_json_tree``."""
    where = what + "".join(reversed(exc.path))
    if len(where) > 120:
        where = where[:100] + "..." + where[-17:]
    if exc.too_deep:
        return EncodeError(f"{where} is nested too deeply or cyclic (more than "
                           f"{MAX_DEPTH} levels of lists, dicts, tuples or sets)")
    kind = type(exc.value)
    return EncodeError(f"{where} of type {kind.__module__}.{kind.__qualname__} "
                       f"is not {format_name} serializable: {short_repr(exc.value)}")


def json_tree(value, what="value"):
    """``value`` as plain JSON data (types JSON lacks tagged), or EncodeError."""
    try:
        return _to_json_tree(value)
    except _Unencodable as exc:
        raise unencodable_error(exc, what, "JSON") from None
    except Exception as exc:  # the value's own methods: items(), isoformat()...
        raise EncodeError(f"{what} cannot be serialized: {_describe(exc)}") from exc


class JSONSerializer:
    name = "json"
    content_type = "application/json"
    #: The admin may decode it for display: loading runs no code of the data's choosing.
    safe_to_display = True

    def missing(self):
        """What to install for this serializer to work here, or None."""
        return None

    def dumps(self, value, what="value", limit=None):
        try:
            tree = _to_json_tree(value)
            return compact_json(tree) if limit is None else _encode_within(tree, limit)
        except _Unencodable as exc:
            raise unencodable_error(exc, what, "JSON") from None
        except TooLarge:
            raise
        except Exception as exc:  # the value's own methods: items(), isoformat()...
            # Also the integer too long for text (ValueError past 4,300 digits).
            raise EncodeError(f"{what} cannot be serialized: {_describe(exc)}") from exc

    def loads(self, text):
        return _decode_tree(parse_json(text))


def parse_json(text):
    """``json.loads`` that raises only DecodeError (also when nested 100,000 deep)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"cannot decode JSON: {exc}") from None


class PickleSerializer:
    name = "pickle"
    content_type = "application/x-python-serialize"
    safe_to_display = False

    def missing(self):
        return None

    def dumps(self, value, what="value", limit=None):
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except RecursionError:
            raise EncodeError(f"{what} is nested too deeply to be pickled") from None
        except Exception as exc:  # __reduce__ and friends: the value's own code
            raise EncodeError(f"{what} cannot be pickled: {_describe(exc)}") from exc
        return base64.b64encode(data).decode("ascii")

    def loads(self, text):
        try:
            return pickle.loads(base64.b64decode(text))
        except Exception as exc:  # unpickling can raise anything the data names
            raise DecodeError(f"cannot unpickle: {_describe(exc)}") from exc


SERIALIZERS = {"json": JSONSerializer(), "pickle": PickleSerializer()}


# For messages and logs: a few levels and items of any value, so a value
# nested thousands deep, cyclic or huge is shown without being walked whole.
_bounded_repr = reprlib.Repr()
_bounded_repr.maxlevel, _bounded_repr.maxstring = 4, 160
_bounded_repr.maxother, _bounded_repr.maxlong = 160, 60


def short_repr(value, limit=80):
    """``repr(value)`` cut to ``limit`` characters; never raises."""
    try:
        text = _bounded_repr.repr(value)
    except Exception as exc:  # a value's own __repr__
        text = f"<{type(value).__qualname__} object: repr() raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc):
    """``Type: message`` of an exception raised by someone else's code."""
    return f"{type(exc).__name__}: {_text_of(exc)}"


def _text_of(exc):
    """``str(exc)``, or a placeholder where that raises (or recurses)."""
    try:
        return str(exc)
    except Exception as error:  # the exception's own __str__
        return f"<unprintable {type(exc).__qualname__}: str() raised {type(error).__name__}>"


def get_serializer(name):
    """The serializer called ``name``; EncodeError if there is none."""
    serializer = SERIALIZERS.get(name) if isinstance(name, str) else None
    if serializer is None:
        raise EncodeError(f"unknown serializer {name!r}; known: {sorted(SERIALIZERS)}")
    return serializer


def dumps(value, serializer="json", what="value", limit=None):
    """Serialize ``value``; ``what`` names it in the error message. With
    ``limit``, a text longer than that many characters may be ``TooLarge``
    (JSON's and msgpack's encodings stop when they get there)."""
    return get_serializer(serializer).dumps(value, what, limit)


def accepts(accept, name):
    """Whether ``accept`` (an ACCEPT_CONTENT list) allows serializer ``name``,
    by its name or, as Celery allows, by its content type
    (``application/json``)."""
    if name in accept:
        return True
    serializer = SERIALIZERS.get(name)
    return serializer is not None and serializer.content_type in accept


def by_name_or_content_type(entry):
    """The serializer an ACCEPT_CONTENT entry names, or None."""
    for serializer in SERIALIZERS.values():
        if entry in (serializer.name, serializer.content_type):
            return serializer
    return None


def loads(text, content_type, accept):
    """Deserialize ``text`` written by ``content_type`` if ``accept`` allows it."""
    if not accepts(accept, content_type):
        raise ContentDisallowed(
            f"refusing to deserialize content of type {content_type!r}: "
            f"ACCEPT_CONTENT is {list(accept)}")
    serializer = SERIALIZERS.get(content_type)
    if serializer is None:
        raise SerializerUnavailable(
            f"cannot decode content of type {content_type!r}: no serializer of that name is "
            f"registered in this process (known: {sorted(SERIALIZERS)}); register it with "
            "django_tasks.serialization.register() in an AppConfig.ready() that workers run too")
    return serializer.loads(text)


def loads_json_parsed(text, accept):
    """``loads(text, "json", accept)``, with the parsed JSON it decoded
    (which shares no list or dict with the value): what shows the value as
    JSON again without parsing ``text`` twice."""
    if not accepts(accept, "json"):
        return loads(text, "json", accept), None  # raises ContentDisallowed
    tree = parse_json(text)
    return _decode_tree(tree), tree


# What a registered serializer may be called: stored in a 32-character
# column, listed in settings, given on the command line.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
BUILT_IN = ("json", "pickle", "msgpack")


def register(name, dumps, loads, content_type=None, content_encoding="utf-8"):
    """Make serializer ``name`` available to ``SERIALIZER``,
    ``@task(serializer=)`` and ``apply_async(serializer=)``; workers decode
    it only when their ``ACCEPT_CONTENT`` lists it (by name or content type).

    Celery's ``kombu.serialization.register`` signature. ``dumps(value)``
    returns ``str`` or ``bytes``. With a text ``content_encoding`` (UTF-8
    by default) bytes are read in that encoding, the text is stored as it
    is and ``loads`` gets it back as ``str``; with ``"binary"`` the bytes
    are stored base64-encoded and ``loads`` gets them back as ``bytes``.
    Call it where both the processes that send and the workers run it: an
    ``AppConfig.ready()``. Registering a name again replaces it; the
    built-in names cannot be replaced.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"serializer name {name!r:.80} is not usable: give 1 to 32 letters, "
                         "digits and '_.+-', starting with a letter or digit")
    if name in BUILT_IN:
        raise ValueError(f"serializer {name!r} is built in and cannot be replaced")
    if not callable(dumps) or not callable(loads):
        raise TypeError(f"serializer {name!r}: dumps and loads must be callables")
    content_type = f"application/x-{name}" if content_type is None else content_type
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise ValueError(f"serializer {name!r}: content_type {content_type!r:.80} is not a "
                         "MIME type such as 'application/x-yaml'")
    for other in SERIALIZERS.values():
        if content_type in (other.name, other.content_type) and other.name != name:
            raise ValueError(f"serializer {name!r}: content type {content_type!r} is "
                             f"already the serializer {other.name!r}'s")
    if content_encoding != "binary":
        try:
            codecs.lookup(content_encoding)
        except (LookupError, TypeError):
            raise ValueError(f"serializer {name!r}: content_encoding {content_encoding!r:.80} "
                             "is neither 'binary' nor a text encoding such as 'utf-8'") from None
    SERIALIZERS[name] = RegisteredSerializer(name, dumps, loads, content_type, content_encoding)


def unregister(name):
    """Remove a serializer ``register`` added (a built-in one stays)."""
    if name in BUILT_IN:
        raise ValueError(f"serializer {name!r} is built in and cannot be removed")
    SERIALIZERS.pop(name, None)


class RegisteredSerializer:
    """A serializer given to ``register``: its errors become EncodeError and
    DecodeError naming it, and its output is made safe for a text column."""

    # Its loads is the project's code: the admin shows what it stored as stored.
    safe_to_display = False

    def __init__(self, name, dumps, loads, content_type, content_encoding):
        self.name, self.content_type, self.content_encoding = name, content_type, content_encoding
        self.binary = content_encoding == "binary"
        self._dumps, self._loads = dumps, loads

    def __repr__(self):
        return f"<serializer {self.name!r} ({self.content_type}, {self.content_encoding})>"

    def missing(self):
        return None

    def dumps(self, value, what="value", limit=None):
        try:
            data = self._dumps(value)
        except Exception as exc:  # the serializer's own code, or the value's
            raise EncodeError(f"{what} cannot be serialized with {self.name!r}: "
                              f"{_describe(exc)}") from exc
        if isinstance(data, (bytes, bytearray, memoryview)):
            if self.binary:
                return base64.b64encode(data).decode("ascii")
            try:
                data = bytes(data).decode(self.content_encoding)
            except UnicodeDecodeError as exc:
                raise EncodeError(f"serializer {self.name!r} returned bytes that are not "
                                  f"{self.content_encoding} for {what} ({exc}); register it "
                                  "with content_encoding='binary'") from None
        elif not isinstance(data, str):
            raise EncodeError(f"serializer {self.name!r} returned {type(data).__qualname__} for "
                              f"{what}, not str or bytes")
        elif self.binary:
            return base64.b64encode(self._utf8(data, what)).decode("ascii")
        if "\0" in data:
            raise EncodeError(f"serializer {self.name!r} returned text holding NUL characters "
                              f"for {what}, which a database text column cannot hold; "
                              "register it with content_encoding='binary'")
        if not data.isascii():
            self._utf8(data, what)  # the database stores UTF-8
        return data

    def _utf8(self, data, what):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"serializer {self.name!r} returned text that is not valid "
                              f"Unicode for {what}: {exc}") from None

    def loads(self, text):
        data = text
        if self.binary:
            try:
                data = base64.b64decode(text, validate=True)
            except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
                raise DecodeError(f"cannot decode {self.name!r} content: it is not "
                                  f"base64: {exc}") from None
        try:
            return self._loads(data)
        except Exception as exc:  # the serializer's own code, on data anyone may have written
            raise DecodeError(f"cannot decode {self.name!r} content: {_describe(exc)}") from exc


# Exceptions are stored as plain data and rebuilt only from classes this
# process has already imported, never by importing what a stored row names
# or by unpickling what a worker wrote (as Celery after CVE-2021-23727).

def exception_to_dict(exc):
    """``exc`` as plain JSON data; never raises, whatever the exception holds.

    Arguments that cannot be stored (cyclic, too deep, of other types) are
    replaced by the exception's text, and a text that cannot be made by a
    placeholder naming the class.
    """
    cls = type(exc)
    message = _text_of(exc)
    try:
        args = json.loads(JSONSerializer().dumps(list(exc.args)))
    except Exception:  # args may be a property of the exception's own
        args = [message]
    module = cls.__module__
    return {
        "exc_type": cls.__qualname__,
        "exc_module": module if isinstance(module, str) else None,
        "exc_message": message,
        "exc_args": args,
    }


def exception_from_json(text):
    """The exception stored as ``text`` (see ``exception_from_dict``)."""
    return exception_from_dict(parse_json(text))


def exception_from_dict(data):
    """Rebuild an exception of the original type where that is safe.

    The class must already be imported (this never imports a module a
    stored row names) and be a subclass of ``Exception`` (never
    ``SystemExit``, ``KeyboardInterrupt``...), and building it with the
    stored arguments must work; otherwise an ``Exception`` subclass of the
    same name stands in, so callers still see which error happened.
    Malformed data raises ``DecodeError``.
    """
    if not isinstance(data, dict):
        raise DecodeError(f"cannot decode a stored exception: {short_repr(data, 60)} "
                          "is not a dict")
    name = data.get("exc_type") or "Exception"
    module = data.get("exc_module") or "builtins"
    message = data.get("exc_message") or ""
    args = data.get("exc_args", [message])
    for field, value, kind in (("exc_type", name, str), ("exc_module", module, str),
                               ("exc_message", message, str), ("exc_args", args, list)):
        if not isinstance(value, kind):
            raise DecodeError(f"cannot decode a stored exception: its {field} is "
                              f"{short_repr(value, 60)}, not {kind.__name__}")
    args = _decode_tree(args)
    cls = _imported_exception_class(module, name)
    if cls is not None:
        rebuilt = _construct(cls, args)
        if rebuilt is not None:
            return rebuilt
    return _stand_in(module, name)(message)


def _imported_exception_class(module, qualname):
    """The ``Exception`` subclass named, if its module is imported; else None.

    Static look-ups only: no module ``__getattr__`` (which may import) and no
    descriptor runs.
    """
    target = sys.modules.get(module)
    for part in qualname.split("."):
        if target is None:
            return None
        target = inspect.getattr_static(target, part, None)
    if isinstance(target, type) and issubclass(target, Exception):
        return target
    return None


def _construct(cls, args):
    try:
        rebuilt = cls(*args)
        str(rebuilt)  # callers print it: a __str__ that fails is no use
    except Exception:  # the class's own code: any failure means "stand in"
        return None
    return rebuilt if isinstance(rebuilt, Exception) else None


def _stand_in(module, qualname):
    qualname = qualname.replace("\0", "") or "Exception"
    name = qualname.rsplit(".", 1)[-1] or "Exception"
    return type(name, (Exception,), {"__module__": module, "__qualname__": qualname})


# Last: it builds on this module's tagged values.
from .msgpack_serializer import MsgpackSerializer  # noqa: E402

SERIALIZERS["msgpack"] = MsgpackSerializer()
