"""Turning task arguments, results and exceptions into stored text and back.

JSON is the default. Types JSON lacks (datetime, date, time, timedelta,
Decimal, UUID, bytes, tuple, set, dicts with non-string keys) are written
as ``{"__type__": name, "value": ...}`` so they come back as the same type.
Pickle is available only when ``ACCEPT_CONTENT`` lists it, because
unpickling runs code chosen by whoever wrote the message.
"""

import base64
import builtins
import datetime
import decimal
import importlib
import json
import pickle
import uuid

from .exceptions import ContentDisallowed, DecodeError, EncodeError

TYPE_KEY = "__type__"


def reusable_json_encoder(item_separator=", ", key_separator=": "):
    """A ``json.dumps`` (no ASCII escaping) whose encoder is built once.

    ``JSONEncoder.encode`` builds its C encoder anew on every call, which
    costs more than encoding a task's arguments or headers; the C encoder
    itself can be kept and called again. Without the circular-reference
    check, which would share state between threads, a cycle ends in
    ``RecursionError``.
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


class _Unencodable(Exception):
    def __init__(self, path, value):
        self.path = path
        self.value = value


def _to_json_tree(value, path):
    """Return ``value`` as plain JSON data, tagging the types JSON lacks."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_to_json_tree(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TYPE_KEY not in value:
            return {key: _to_json_tree(item, f"{path}[{key!r}]") for key, item in value.items()}
        return _tagged("dict", [[_to_json_tree(key, f"{path}<key {key!r}>"),
                                 _to_json_tree(item, f"{path}[{key!r}]")]
                                for key, item in value.items()])
    if isinstance(value, tuple):
        items = [_to_json_tree(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return _tagged("tuple", items)
    if isinstance(value, (set, frozenset)):
        items = [_to_json_tree(item, f"{path}<item>") for item in value]
        return _tagged("frozenset" if isinstance(value, frozenset) else "set", items)
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
        return _tagged("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    raise _Unencodable(path, value)


def _tagged(name, value):
    return {TYPE_KEY: name, "value": value}


_DECODERS = {
    "dict": lambda v: {_from_json_tree(k): _from_json_tree(item) for k, item in v},
    "tuple": lambda v: tuple(_from_json_tree(item) for item in v),
    "set": lambda v: {_from_json_tree(item) for item in v},
    "frozenset": lambda v: frozenset(_from_json_tree(item) for item in v),
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "timedelta": lambda v: datetime.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v),
}


def _from_json_tree(value):
    if isinstance(value, list):
        return [_from_json_tree(item) for item in value]
    if isinstance(value, dict):
        if TYPE_KEY in value and len(value) == 2 and "value" in value:
            decoder = _DECODERS.get(value[TYPE_KEY])
            if decoder is None:
                raise DecodeError(f"unknown tagged type {value[TYPE_KEY]!r}")
            return decoder(value["value"])
        return {key: _from_json_tree(item) for key, item in value.items()}
    return value


class JSONSerializer:
    name = "json"

    def dumps(self, value, what="value"):
        try:
            tree = _to_json_tree(value, what)
        except _Unencodable as exc:
            raise EncodeError(
                f"{exc.path} of type {type(exc.value).__module__}.{type(exc.value).__qualname__} "
                f"is not JSON serializable: {_short_repr(exc.value)}") from None
        return compact_json(tree)

    def loads(self, text):
        try:
            return _from_json_tree(json.loads(text))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DecodeError(f"cannot decode JSON: {exc}") from exc


class PickleSerializer:
    name = "pickle"

    def dumps(self, value, what="value"):
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise EncodeError(f"{what} cannot be pickled: {exc}") from exc
        return base64.b64encode(data).decode("ascii")

    def loads(self, text):
        try:
            return pickle.loads(base64.b64decode(text))
        except Exception as exc:  # unpickling can raise anything the data names
            raise DecodeError(f"cannot unpickle: {exc!r}") from exc


SERIALIZERS = {"json": JSONSerializer(), "pickle": PickleSerializer()}


def _short_repr(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def get_serializer(name):
    try:
        return SERIALIZERS[name]
    except KeyError:
        raise EncodeError(f"unknown serializer {name!r}; known: {sorted(SERIALIZERS)}") from None


def dumps(value, serializer="json", what="value"):
    """Serialize ``value``; ``what`` names it in the error message."""
    return get_serializer(serializer).dumps(value, what)


def loads(text, content_type, accept):
    """Deserialize ``text`` written by ``content_type`` if ``accept`` allows it."""
    if content_type not in accept:
        raise ContentDisallowed(
            f"refusing to deserialize content of type {content_type!r}: "
            f"ACCEPT_CONTENT is {list(accept)}")
    if content_type not in SERIALIZERS:
        raise DecodeError(f"unknown content type {content_type!r}")
    return SERIALIZERS[content_type].loads(text)


# Exceptions are stored as plain data and rebuilt only from importable
# classes, never by unpickling what a worker wrote.

def exception_to_dict(exc):
    cls = type(exc)
    try:
        args = json.loads(JSONSerializer().dumps(list(exc.args)))
    except EncodeError:
        args = [str(exc)]
    return {
        "exc_type": cls.__qualname__,
        "exc_module": cls.__module__,
        "exc_message": str(exc),
        "exc_args": args,
    }


def exception_from_dict(data):
    """Rebuild an exception instance of the original type where that is safe.

    The class must be importable and a subclass of ``BaseException``;
    otherwise an ``Exception`` subclass of the same name is made up, so
    callers still see which error happened.
    """
    name = data.get("exc_type") or "Exception"
    module = data.get("exc_module") or "builtins"
    message = data.get("exc_message", "")
    args = _from_json_tree(data.get("exc_args", [message]))
    cls = _import_exception_class(module, name)
    if cls is not None:
        rebuilt = _construct(cls, args)
        if rebuilt is not None:
            return rebuilt
    made_up = type(name.rsplit(".", 1)[-1], (Exception,), {"__module__": module})
    return made_up(message)


def _construct(cls, args):
    try:
        return cls(*args)
    except (TypeError, ValueError):  # a constructor that wants other arguments
        return None


def _import_exception_class(module, qualname):
    try:
        target = builtins if module == "builtins" else importlib.import_module(module)
    except ImportError:
        return None
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    if isinstance(target, type) and issubclass(target, BaseException):
        return target
    return None
