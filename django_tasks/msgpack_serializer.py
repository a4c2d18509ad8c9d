"""msgpack as a serializer: ``SERIALIZER="msgpack"`` (Celery's ``'msgpack'``).

Optional: ``pip install 'django-pgtasks[msgpack]'``. Values are walked
as for JSON (``serialization._to_json_tree``: the same tagged types, the
same depth limit and refusal of cycles) except that bytes stay bytes, and
integers outside msgpack's 64 bits are tagged as decimal text. Messages
and results live in text columns, so the packed bytes are stored base64
encoded (what kombu does for binary bodies on text transports).
"""

import base64

from .exceptions import DecodeError, EncodeError, SerializerUnavailable
from .serialization import (
    BoundedParts,
    TooLarge,
    _decode_tree,
    _describe,
    _many_items,
    _tagged,
    _to_json_tree,
    _Unencodable,
    unencodable_error,
)

INSTALL = "pip install 'django-pgtasks[msgpack]' (or: pip install msgpack)"
# Outside these, msgpack has no integer type.
_LOWEST, _HIGHEST = -(2 ** 63), 2 ** 64 - 1


def module():
    """The ``msgpack`` package, or None where it is not installed.

    Imported at each use (a dictionary look-up once imported), so that only
    the processes that use msgpack need it.
    """
    try:
        import msgpack
    except ImportError:
        return None
    return msgpack


class MsgpackSerializer:
    name = "msgpack"
    content_type = "application/x-msgpack"
    #: Decoding runs no code of the data's choosing: the admin shows it decoded.
    safe_to_display = True

    def missing(self):
        """What to install for msgpack to work here, or None."""
        return None if module() is not None else INSTALL

    def dumps(self, value, what="value", limit=None):
        msgpack = module()
        if msgpack is None:
            raise EncodeError(f"cannot serialize {what} with msgpack: the msgpack package is "
                              f"not installed ({INSTALL})")
        try:
            tree = _to_json_tree(value, raw_bytes=True)
        except _Unencodable as exc:
            raise unencodable_error(exc, what, "msgpack") from None
        except Exception as exc:  # the value's own methods: items(), isoformat()...
            raise EncodeError(f"{what} cannot be serialized: {_describe(exc)}") from exc
        try:
            try:
                data = _pack(msgpack, tree, limit)
            except OverflowError:  # rare: find the integers msgpack cannot hold
                data = _pack(msgpack, _big_integers_tagged(tree), limit)
        except TooLarge:
            raise
        except RecursionError:
            raise EncodeError(f"{what} is nested too deeply to be packed here") from None
        except (ValueError, TypeError, OverflowError) as exc:
            # A text that is not Unicode (a lone surrogate); an integer over
            # 4,300 digits.
            raise EncodeError(f"{what} cannot be serialized with msgpack: "
                              f"{_describe(exc)}") from None
        return base64.b64encode(data).decode("ascii")

    def loads(self, text):
        msgpack = module()
        if msgpack is None:
            raise SerializerUnavailable(
                "cannot decode msgpack content: the msgpack package is not installed in this "
                f"process ({INSTALL})")
        try:
            data = base64.b64decode(text, validate=True)
        except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
            raise DecodeError(f"cannot decode msgpack content: it is not base64: {exc}") from None
        try:
            tree = msgpack.unpackb(data, raw=False, ext_hook=_refuse_extension)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # Truncated or trailing data, text that is not UTF-8, a map with
            # keys that are not text, nesting past msgpack's own stack.
            raise DecodeError(f"cannot decode msgpack content: {_describe(exc)}") from None
        return _decode_tree(tree)


def _pack(msgpack, tree, limit):
    """``tree`` packed; past ``limit`` characters of base64, ``TooLarge``.

    As ``serialization._encode_within`` for JSON: a small tree is one call
    (the caller measures it); the large parts of a large one are packed an
    item at a time, the size checked between them, so the C packer never
    holds the GIL long and a result over the limit is not built whole.
    """
    if limit is None or not _many_items(tree):
        return msgpack.packb(tree)
    packer = msgpack.Packer(autoreset=True)
    # The bytes whose base64 is at most ``limit`` characters.
    parts = BoundedParts(limit // 4 * 3, limit)
    add = parts.add

    def pack(node):
        if isinstance(node, list) and _many_items(node):
            add(packer.pack_array_header(len(node)))
            for item in node:
                pack(item)
        elif isinstance(node, dict) and _many_items(node):
            add(packer.pack_map_header(len(node)))
            for key, item in node.items():
                add(packer.pack(key))
                pack(item)
        else:
            add(packer.pack(node))

    pack(tree)
    return b"".join(parts)


def _big_integers_tagged(node):
    """``node`` (a tree from ``_to_json_tree``) with every integer msgpack
    cannot hold tagged as its decimal text."""
    if isinstance(node, int) and not isinstance(node, bool):
        if _LOWEST <= node <= _HIGHEST:
            return node
        return _tagged("int", str(int(node)))  # ValueError past 4,300 digits, as in JSON
    if isinstance(node, list):
        return [_big_integers_tagged(item) for item in node]
    if isinstance(node, dict):
        return {key: _big_integers_tagged(item) for key, item in node.items()}
    return node


def _refuse_extension(code, data):
    raise ValueError(f"unknown msgpack extension type {code}")

