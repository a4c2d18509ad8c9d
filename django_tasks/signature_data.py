"""Signatures as stored data: the canvas's options, the registry of canvas
types, and the conversion between a Signature and the plain JSON data a
message's headers hold (``chain``, ``link``, ``link_error``, a chord's body).

It imports no other canvas module, so that ``message_builder`` (which
stores a call's ``link=``) and the canvas modules that plan with it
(``planning``, ``signatures``) depend on it without depending on each other
in a circle. Each canvas class registers itself here (``register_type``),
the plain ``Signature`` first, so that data is rebuilt into its class.
"""

import json

from . import serialization

# Options that become arguments of Task.build_message.
MESSAGE_OPTIONS = ("countdown", "eta", "expires", "queue", "priority", "task_id", "link",
                   "link_error", "ignore_result", "serializer", "time_limit", "soft_time_limit",
                   "rate_limit")
# Options that say where a task stands in a workflow; they travel as headers.
WORKFLOW_OPTIONS = ("chord", "group_id")
MESSAGE_OPTION_SET = frozenset(MESSAGE_OPTIONS)
# A signature sent alone (``sig.delay()``) is sent as its task's apply_async
# with them; a canvas's members cannot have them (see unique.py).
UNIQUE_OPTIONS = frozenset(("unique_key", "unique_for"))
NOT_IN_CANVAS = ("{name}: {key} is not applied to the members of a group, chain or chord, "
                 "nor to callbacks (they are sent as one batch, or by the worker as each "
                 "step finishes); send the task alone (apply_async) to make it unique")
WORKFLOW_OPTION_SET = frozenset(WORKFLOW_OPTIONS)

# subtask_type -> class; "" for the plain Signature.
_TYPES: dict = {}


def register_type(cls):
    _TYPES[cls.subtask_type_name or ""] = cls
    return cls


def signature_from_dict(data):
    """``data`` (a signature as a dict) rebuilt into its canvas class."""
    return _TYPES[data.get("subtask_type") or ""].from_dict(data)


# -- storing signatures in headers ----------------------------------------

def copy_tree(value):
    """A copy of a canvas's plain containers (dicts, signatures, lists, tuples, sets).

    The values inside are shared, as Celery's ``clone`` shares arguments:
    they are serialized when the canvas is applied, and ``copy.deepcopy``
    of every value made a large group's clones the bulk of its enqueue time.
    """
    kind = type(value)
    if kind is dict or isinstance(value, _TYPES[""]):
        # A signature is a dict subclass with no state of its own: rebuilt as is.
        copied = {} if kind is dict else dict.__new__(kind)
        for key, item in value.items():
            # Leaves and empty containers without a call: a group of
            # thousands of signatures is mostly strings, numbers, None and
            # empty argument lists.
            dict.__setitem__(copied, key, item if type(item) in _LEAVES
                             else type(item)() if type(item) in _CONTAINERS and not item
                             else copy_tree(item))
        return copied
    if kind is list:
        return [item if type(item) in _LEAVES else copy_tree(item) for item in value]
    if kind is tuple:
        return tuple(copy_tree(item) for item in value)
    if kind is set:
        return set(value)
    return value


_LEAVES = frozenset((str, int, float, bool, type(None)))
_CONTAINERS = (list, dict)


def to_header(sig):
    """A signature as plain JSON data, with datetimes, tuples… tagged."""
    text = serialization.dumps(dict(sig), "json", what=f"signature {sig!r}")
    data = json.loads(text)
    if "unique_" in text:
        _refuse_unique(data)
    return data


def _refuse_unique(data):
    """A signature sent later (a chain's step, a chord's body, a callback) is
    sent by the worker without the uniqueness check: refused at the call."""
    if isinstance(data, dict):
        options = data.get("options")
        if "task" in data and isinstance(options, dict):
            for key in UNIQUE_OPTIONS:
                if options.get(key) is not None:
                    raise TypeError(NOT_IN_CANVAS.format(name=data["task"], key=key))
        values = data.values()
    elif isinstance(data, list):
        values = data
    else:
        return
    for value in values:
        _refuse_unique(value)


def from_header(data):
    return signature_from_dict(serialization.loads(json.dumps(data), "json", ["json"]))


def signatures_to_header(value):
    """``link=``/``link_error=`` (one signature or a list) as header data."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [to_header(maybe_signature(item)) for item in items]


def maybe_signature(value):
    if value is None or isinstance(value, _TYPES[""]):
        return value
    if isinstance(value, dict):
        return signature_from_dict(value)
    raise TypeError(f"expected a signature, got {type(value).__name__}: {value!r}")

