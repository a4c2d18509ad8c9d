"""Sending tasks from code that runs in an event loop (async views, consumers).

Django refuses database calls from a thread that runs an event loop
(``SynchronousOnlyOperation``): its connections are per thread, and the
coroutines of one loop would share one. ``.delay()`` / ``.apply_async()``
called there still work: their database work runs in another thread, and
the loop waits for it, as for any blocking call.

Which thread:

- The thread that runs this code's ``sync_to_async`` calls, when one is
  waiting on the loop for exactly that (asgiref's ``AsyncToSync`` sets it:
  a worker running an ``async def`` task, ``async_to_sync``, Django's test
  client). There the enqueue joins that thread's transaction: an
  ``atomic=True`` async task's, a test case's.
- Otherwise one thread of this module, per process. An async view (ASGI) has
  no transaction of its own on the loop's thread, none can be open there, so
  the enqueue commits at once, as ``.delay()`` does outside ``atomic()``.
  That thread's connections follow ``CONN_MAX_AGE`` as a request's do.

``await task.adelay()`` (``sync_to_async``) does not hold up the loop: it is
the better call in async code; plain ``.delay()`` is there so that code
written for Celery runs unchanged.
"""

import asyncio
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import AsyncToSync
from django.db import close_old_connections

# asyncio's own fast check (``get_running_loop`` raises when there is none,
# which would cost every plain ``.delay()`` an exception).
running_loop = asyncio._get_running_loop


def in_event_loop():
    """Whether this thread is running an event loop right now."""
    return running_loop() is not None


def call_outside_event_loop(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a thread without an event loop, with
    this context's variables (the running task, for ``parent_id``); blocks
    until it returns, and returns what it returns or raises what it raises."""
    context = contextvars.copy_context()
    future = None
    executor = getattr(AsyncToSync.executors, "current", None)
    if executor is not None:
        try:
            future = executor.submit(context.run, function, *args, **kwargs)
        except RuntimeError:
            pass  # its thread no longer waits for this loop (it quit): use ours
    if future is None:
        future = _own_thread().submit(context.run, _with_fresh_connections, function,
                                      *args, **kwargs)
    return future.result()


def _with_fresh_connections(function, *args, **kwargs):
    # As around a request: a connection broken or past CONN_MAX_AGE is
    # replaced before, and closed after if it is past its age.
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()


_thread = {"pid": None, "executor": None}
_thread_lock = threading.Lock()


def _own_thread():
    """This process's thread for database calls made from event loops (a new
    one after a fork: the parent's thread does not exist in the child)."""
    pid = os.getpid()
    if _thread["pid"] != pid:
        with _thread_lock:
            if _thread["pid"] != pid:
                _thread["executor"] = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="django_tasks-from-event-loop")
                _thread["pid"] = pid
    return _thread["executor"]


def _reset_after_fork():
    global _thread_lock
    _thread_lock = threading.Lock()  # another thread may have held it at the fork
    _thread["pid"] = _thread["executor"] = None


os.register_at_fork(after_in_child=_reset_after_fork)
