"""Planning: turning a frozen canvas into the messages (and chord rows) to write.

A ``Plan`` collects what applying a canvas writes; ``write_planned`` hands
it to the queue's writer in batches, in one transaction, while the canvas
is still being planned.
"""

import functools
import gc
from contextlib import contextmanager

from django.db import transaction

from . import publishing
from .aio import call_outside_event_loop, in_event_loop
from .message_builder import MessageBuilder
from .queue import get_backend
from .serialization import compact_json


class Plan:
    """What applying a canvas writes: messages, and chord rows, in one go.

    With a ``writer`` (see ``queue.base.BatchWriter``) the messages go to it
    in batches while the canvas is still being planned: on PostgreSQL the
    server stores a large group's first members while the client plans the
    rest. Without one they stay in ``messages``.
    """

    def __init__(self, writer=None):
        self.messages = []
        self.chords = []  # unsaved TaskGroup rows
        self._builders = {}
        self._writer = writer

    def builder(self, task_name):
        """One MessageBuilder per task for the whole plan (see message_builder)."""
        builder = self._builders.get(task_name)
        if builder is None:
            from .task import task_for_sending  # task.py imports this module

            # A task this process does not know is still sent, by name, as
            # Celery does: a link or errback of one ends as that task's own
            # NotRegistered failure on a worker, not as the sender's error.
            builder = self._builders[task_name] = MessageBuilder(task_for_sending(task_name))
        return builder

    def add(self, message):
        self.messages.append(message)
        if self._writer is not None and len(self.messages) >= WRITE_EVERY:
            self._writer.write(self.messages)
            publishing.after(self.messages)
            self.messages = []

    def add_calls(self, headers):
        """An ``add(sig, args, kwargs, task_id)`` for signatures with no
        options of their own (a group's members): each adds what
        ``sig.plan(plan, args, kwargs, frozen={"task_id": task_id, **headers})``
        would. The first call of each task is built as any call is; the
        next ones repeat it with their own arguments and id when nothing
        else can differ (``MessageBuilder.repeatable``): the routing, the
        headers and their checks are done once per task, not per call.
        """
        # task name -> its calls' repeat (MessageBuilder.repeat with the
        # task's first message and its headers' text), or None: built each time.
        repeats = {}

        def add(sig, args, kwargs, task_id):
            if sig["immutable"]:
                args, kwargs = sig["args"], sig["kwargs"]
            else:
                args = (*args, *sig["args"]) if args else sig["args"]
                kwargs = {**sig["kwargs"], **kwargs} if kwargs else sig["kwargs"]
            name = sig["task"]
            repeat = repeats.get(name, repeats)
            if repeat is not None and repeat is not repeats:
                message = repeat(args, kwargs, task_id)
            else:
                builder = self.builder(name)
                message = builder.build(args, kwargs, task_id=task_id, headers=headers)
                if repeat is repeats:
                    repeats[name] = (functools.partial(builder.repeat, message,
                                                       compact_json(message.headers))
                                     if builder.repeatable() else None)
            self.add(message)

        return add

    def write(self, queue):
        """Write inside the caller's transaction: ONE enqueue, and the chord rows."""
        queue.enqueue(self.messages)
        publishing.after(self.messages)
        self.write_chords(queue)

    def write_chords(self, queue):
        from .models import TaskGroup

        if self.chords:
            TaskGroup.objects.using(queue.alias).bulk_create(self.chords)


def write_planned(fill):
    """Write what ``fill(plan)`` plans, in one transaction, while it plans."""
    if in_event_loop():  # an async view's .delay(): see aio.py
        return call_outside_event_loop(write_planned, fill)
    queue = get_backend()
    with transaction.atomic(using=queue.alias), queue.message_writer() as writer:
        plan = Plan(writer)
        fill(plan)
        writer.finish(plan.messages)
        publishing.after(plan.messages)
        plan.write_chords(queue)


# Messages handed to a plan's writer at a time: enough for a COPY to pay off.
WRITE_EVERY = 500


# Applying a canvas of thousands of calls allocates hundreds of thousands of
# short-lived containers (copies, results, messages, rows), none of them in a
# cycle; the cyclic collector's full passes over them, triggered by their mere
# number, were a large share of a large group's enqueue time.
PAUSE_COLLECTOR_FROM = 1000  # calls


@contextmanager
def collector_paused(pause):
    """Hold off the cyclic garbage collector (not refcounting) for the block.

    The collector's switch is process-wide: if another thread turns it off
    meanwhile, it is back on when the block ends; when the caller had turned
    it off, it stays off.
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

