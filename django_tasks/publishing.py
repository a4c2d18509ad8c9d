"""``before_task_publish`` and ``after_task_publish``, as Celery sends them.

Sent in the process that sends the task, with the task's name as sender, and
Celery's message shapes (protocol 2): ``headers`` holds ``task`` and ``id``
(and ``eta``, ``expires``, ``retries``, ``root_id``, ``parent_id``, ``group``)
besides the message's own headers; ``body`` is ``(args, kwargs, embed)``,
``embed`` holding ``callbacks``, ``errbacks``, ``chain`` and ``chord``;
``routing_key`` is the queue, ``exchange`` is ``""``.

A ``before_task_publish`` receiver may change ``headers`` (a tracing id, a
tenant): keys it adds or changes, other than those named above, are written
into the message and reach the worker as ``self.request.headers``.
``after_task_publish`` follows the write of the message, which, inside a
transaction, becomes visible to workers when that transaction commits.
"""

from . import signals
from .conf import settings
from .exceptions import ContentDisallowed, DecodeError
from .limits import check_message_size
from .messages import decode_body
from .serialization import compact_json
from .task_signals import send

# Headers made up for the receivers from the message's own fields: not written back.
DERIVED = frozenset(("task", "id", "eta", "expires", "group", "lang"))


def _headers(message, message_headers):
    return {**message_headers, "lang": "py", "task": message["task_name"],
            "id": message["task_id"],
            "eta": _iso(message["available_at"]), "expires": _iso(message["expires"]),
            "group": message_headers.get("group_id")}


def _iso(value):
    return value.isoformat() if value is not None else None


def _embed(headers):
    return {"callbacks": headers.get("link"), "errbacks": headers.get("link_error"),
            "chain": headers.get("chain"), "chord": headers.get("chord")}


def before(task_name, task_id, args, kwargs, message_headers, queue, available_at, expires):
    """Send before_task_publish; write back what its receivers changed in the headers."""
    if not signals.before_task_publish.receivers:
        return
    fields = {"task_name": task_name, "task_id": task_id, "available_at": available_at,
              "expires": expires}
    headers = _headers(fields, message_headers)
    seen = dict(headers)
    send(signals.before_task_publish, sender=task_name,
         body=(list(args), dict(kwargs), _embed(message_headers)), exchange="",
         routing_key=queue, headers=headers, properties={"correlation_id": task_id},
         declare=[], retry_policy=None)
    for key, value in headers.items():
        if key not in DERIVED and (key not in seen or seen[key] is not value):
            message_headers[key] = value


def before_write(message, args, kwargs):
    """What sends ``before_task_publish`` for ``message``, built without it,
    right before it is written (``None`` when nothing listens): a unique
    send, which publishes nothing when its key is held, knows that only
    once it has taken the key. What the receivers add to the headers is
    checked against the size limit as at build time."""
    if not signals.before_task_publish.receivers or settings.EAGER:
        return None

    def announce():
        before(message.task_name, message.task_id, args, kwargs, message.headers,
               message.queue, message.available_at, message.expires)
        check_message_size(message.task_name, message.body, compact_json(message.headers))

    return announce


def after(messages):
    """Send after_task_publish for ``messages``, just written."""
    if not signals.after_task_publish.receivers:
        return
    for message in messages:
        try:  # a body this process just wrote, in a format it chose
            args, kwargs = decode_body(message, [message.content_type])
        except (ContentDisallowed, DecodeError):
            args, kwargs = [], {}
        fields = {"task_name": message.task_name, "task_id": message.task_id,
                  "available_at": message.available_at, "expires": message.expires}
        send(signals.after_task_publish, sender=message.task_name,
             body=(args, kwargs, _embed(message.headers)),
             exchange="", routing_key=message.queue,
             headers=_headers(fields, message.headers))
