"""Turning a task call and its options into a Message.

One builder serves a batch of calls to the same task (a group's members):
the clock, the routing and the settings are read once for all of them, and
the enqueue moment is one instant for the whole batch.
"""

from django.utils import timezone

from . import concurrency, publishing, signals
from .conf import settings
from .context import running_task
from .limits import check_message_size
from .messages import (
    ID_HEADERS,
    Message,
    checked_priority,
    checked_queue,
    checked_task_id,
    checked_time_limit,
    compute_available_at,
    compute_expires,
    encode_body,
    new_task_id,
    repeated,
)
from .rate_limits import checked_rate_limit, message_rate
from .routing import resolve_options
from .serialization import compact_json
from .signature_data import signatures_to_header


class MessageBuilder:
    def __init__(self, task):
        self.task = task
        self.now = timezone.now()
        self.parent = running_task.get()
        self.routes = settings.TASK_ROUTES
        self.default_queue = settings.DEFAULT_QUEUE
        self.default_serializer = task.serializer or settings.SERIALIZER
        self.default_expires = getattr(task, "expires", None)  # @task(expires=...)
        self._routed = {}  # (queue, priority) asked for -> (queue, priority) resolved
        self._bodies_without_arguments = {}  # serializer -> body (see repeat)
        # A message of fewer characters than this fits in MAX_MESSAGE_SIZE
        # whatever they are (at most 4 bytes each in UTF-8): not measured.
        self._surely_fits = settings.MAX_MESSAGE_SIZE // 4

    def build(self, args=None, kwargs=None, *, countdown=None, eta=None,
              expires=None, queue=None, priority=None, task_id=None,
              link=None, link_error=None, ignore_result=None, headers=None,
              serializer=None, time_limit=None, soft_time_limit=None, rate_limit=None,
              announce=True):
        """The message of one call. ``announce=False``: without sending
        ``before_task_publish``, which the caller sends if it writes the
        message (a unique send: ``publishing.before_write``)."""
        task = self.task
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        queue, priority = self._route(queue, priority)
        if expires is None:
            expires = self.default_expires
        serializer = serializer or self.default_serializer
        body = encode_body(task, args, kwargs, serializer)
        task_id = new_task_id() if task_id is None else checked_task_id(task_id)
        message_headers = dict(headers or {})
        if message_headers:
            _check_id_headers(message_headers)
        message_headers.setdefault("retries", 0)
        parent = self.parent
        if parent is not None:
            message_headers.setdefault("parent_id", parent.id)
            message_headers.setdefault("root_id", parent.root_id or parent.id)
        if ignore_result if ignore_result is not None else task.ignore_result:
            message_headers["ignore_result"] = True
        if time_limit is not None:
            message_headers["time_limit"] = checked_time_limit(time_limit, "time_limit")
        if soft_time_limit is not None:
            message_headers["soft_time_limit"] = checked_time_limit(soft_time_limit,
                                                                    "soft_time_limit")
        if getattr(task, "concurrency_limit", None) is not None:
            limited = concurrency.header(task, args, kwargs)
            if limited is not None:
                message_headers[concurrency.HEADER] = limited
        if rate_limit is None:
            rate_limit = getattr(task, "rate_limit", None)  # checked by @task
        else:
            checked_rate_limit(rate_limit, f"rate_limit of {task.name}")
        if rate_limit is not None:
            rate_limit = message_rate(rate_limit)  # 0: no limit, as in Celery
            if rate_limit is not None:
                message_headers["rate_limit"] = rate_limit
        if link:
            message_headers["link"] = signatures_to_header(link)
        if link_error:
            message_headers["link_error"] = signatures_to_header(link_error)
        now = self.now
        available_at = now if countdown is None and eta is None \
            else compute_available_at(now, countdown, eta)
        expires = None if expires is None else compute_expires(now, expires)
        if announce and signals.before_task_publish.receivers and not settings.EAGER:
            publishing.before(task.name, task_id, args, kwargs, message_headers, queue,
                              available_at, expires)
        check_message_size(task.name, body, compact_json(message_headers))
        return Message(
            task_id=task_id, task_name=task.name, queue=queue, priority=priority,
            available_at=available_at, expires=expires,
            content_type=serializer, body=body, headers=message_headers, created_at=now)

    def repeatable(self):
        """Whether a message ``build()`` made with no options but its id and
        headers can be repeated for other arguments (``repeat``): nothing
        else in it depends on the arguments or on a receiver of the call."""
        return (getattr(self.task, "concurrency_limit", None) is None
                and not (signals.before_task_publish.receivers and not settings.EAGER))

    def repeat(self, template, headers_text, args, kwargs, task_id):
        """``template`` (see ``repeatable``) for the call with ``args``,
        ``kwargs`` and the new id ``task_id``; ``headers_text``: its headers
        as ``compact_json`` makes them.

        The message shares the template's headers dict: a plan's messages
        are written, announced (``after_task_publish`` receivers get a copy
        of the headers) and dropped, and nothing changes their headers once
        built; the writer then encodes them once (``CopyWriter.write``).
        """
        serializer = template.content_type
        if args or kwargs:
            body = encode_body(self.task, args, kwargs, serializer)
        else:  # every call without arguments has the same body
            body = self._bodies_without_arguments.get(serializer)
            if body is None:
                body = self._bodies_without_arguments[serializer] = encode_body(
                    self.task, (), {}, serializer)
        if len(body) + len(headers_text) > self._surely_fits:
            check_message_size(template.task_name, body, headers_text)
        return repeated(template, task_id, body)

    def _route(self, queue, priority):
        key = (queue, priority)
        routed = self._routed.get(key)
        if routed is None:
            routed = resolve_options(
                {"queue": queue, "priority": priority},
                {"queue": self.task.queue, "priority": self.task.priority},
                self.routes, self.task.name, self.default_queue)
            self._routed[key] = routed = (checked_queue(routed[0]), checked_priority(routed[1]))
        return routed


def _check_id_headers(headers):
    """Ids given in ``headers`` (a group's or chord's id, a parent's) are
    stored in result rows as task ids are: refused at the call if they
    could not be."""
    for key in ID_HEADERS:
        value = headers.get(key)
        if value is not None:
            headers[key] = checked_task_id(value, key)
