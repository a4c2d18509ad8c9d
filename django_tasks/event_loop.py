"""The event loop ``async def`` tasks share: one per process.

A task's coroutine runs on the process's loop thread, so while one task
awaits, others run: ``-P threads -c N`` overlaps up to N async tasks (solo,
and each prefork child, run one task at a time, so one coroutine at a time).
The pool thread that took the task waits for it, and meanwhile:

- runs the coroutine's ``sync_to_async`` calls (Django's async ORM makes
  them): in the task's own thread, on its connection, inside the transaction
  of an ``atomic=True`` task. The coroutine's context names this thread as
  asgiref's executor, as ``async_to_sync`` does for the thread that calls it.
- passes on to the coroutine what is raised in the thread while it waits
  (soft and hard time limits, ``revoke(terminate=True)``, cold shutdown), at
  the ``await`` where the coroutine stands. It arrives as an exception that
  is both what was raised (``except SoftTimeLimitExceeded`` catches it, as in
  a sync task) and an ``asyncio.CancelledError`` (so ``gather``,
  ``wait_for``… cancel what they wait for, as on any cancellation). The
  task ends with what was raised, unless it catches it.

The loop thread starts with the first async task of a process (in a prefork
child, never in the parent before the fork). A task that stops the loop
(``loop.stop()``) does not stop the other tasks: it runs again. If the
thread dies, the tasks waiting on it fail with the reason, and the next
task gets a new loop. A task that blocks the loop (a sync ``time.sleep``)
holds up every async task of the process: if its hard limit, a revoke or a
cold shutdown cannot reach it within ``BLOCKED_LOOP_GRACE``, the loop is
given up (the task ends with that exception, the next tasks get a new loop,
and the old thread stops once what runs on it has ended).
"""

import asyncio
import collections
import contextvars
import functools
import logging
import os
import queue
import threading
import time
from concurrent.futures import Executor, Future

from asgiref.sync import AsyncToSync

from .exceptions import SoftTimeLimitExceeded

logger = logging.getLogger("django_tasks.worker")

# How long a waiting pool thread sleeps at a time: an exception injected into
# a thread (the threads pool's time limits) takes effect when it wakes.
WAIT_SLICE = 0.1
# How long an interruption other than the soft limit may wait for a blocked
# loop to deliver it before the loop is given up.
BLOCKED_LOOP_GRACE = 2.0


def run(coroutine):
    """Run ``coroutine`` (an ``async def`` task's call) on this process's event
    loop and return its value or raise its exception; this thread waits, runs
    the coroutine's ``sync_to_async`` calls, and passes on interruptions."""
    loop_thread = _loop_thread()
    call = _Call(coroutine, loop_thread)
    try:
        loop_thread.loop.call_soon_threadsafe(call.start)
    except RuntimeError:  # closed: its thread ended after we picked it
        call = _Call(coroutine, _loop_thread(replace=loop_thread))
        call.loop_thread.loop.call_soon_threadsafe(call.start)
    return call.wait()


# -- the loop thread --------------------------------------------------------

class _LoopThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.given_up = False
        self.tasks = 0  # task coroutines on the loop; changed on the loop's thread only
        self._thread = threading.Thread(target=self._run, name="django_tasks-event-loop",
                                        daemon=True)
        self._thread.start()

    def alive(self):
        return self._thread.is_alive()

    def _run(self):
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            # A task's loop.stop() ends run_forever(), not the other tasks.
            while not (self.given_up and self.tasks == 0):
                loop.run_forever()
            self._cancel_leftovers()
        except BaseException:
            logger.exception("The event loop of async tasks stopped; the tasks on it fail, "
                             "the next ones get a new loop")
        finally:
            loop.close()

    def _cancel_leftovers(self):
        """What task code left running (background tasks, result listeners)."""
        leftovers = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            self.loop.run_until_complete(asyncio.wait(leftovers, timeout=1.0))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())

    def give_up(self):
        """No new tasks here; the thread ends once the tasks on it have."""
        self.given_up = True
        try:
            self.loop.call_soon_threadsafe(self.stop_if_idle)
        except RuntimeError:
            pass  # closed: its thread has ended already

    def stop_if_idle(self):  # on the loop's thread
        if self.given_up and self.tasks == 0:
            self.loop.stop()


_current = {"loop_thread": None}
_lock = threading.Lock()


def _loop_thread(replace=None):
    """This process's loop thread, started now if there is none (or it died,
    was given up, or is the parent's, copied by a fork)."""
    with _lock:
        current = _current["loop_thread"]
        if current is None or current is replace or current.pid != os.getpid() \
                or current.given_up or not current.alive():
            current = _current["loop_thread"] = _LoopThread()
        return current


def _give_up(loop_thread):
    with _lock:
        if _current["loop_thread"] is loop_thread:
            _current["loop_thread"] = None
    loop_thread.give_up()


def _reset_after_fork():
    global _lock
    # The parent's loop thread does not exist here, and another of its
    # threads may have held the lock at the fork.
    _lock = threading.Lock()
    _current["loop_thread"] = None


os.register_at_fork(after_in_child=_reset_after_fork)


# -- one task's run ---------------------------------------------------------

class _Call(Executor):
    """One async task's run: its coroutine on the loop, this thread waiting
    for it. Also the executor of the coroutine's ``sync_to_async`` calls."""

    def __init__(self, coroutine, loop_thread):
        self.loop_thread = loop_thread
        self._coroutine = _Interruptible(coroutine)
        self._context = contextvars.copy_context()  # the running task, for the coroutine
        self._work = collections.deque()
        self._wake = queue.SimpleQueue()
        self._serving = True
        self._serving_lock = threading.Lock()
        self._task = None
        self._outcome = Future()  # (True, value) or (False, exception)
        self._forwarded = 0  # interruptions passed on (this thread)
        self._delivered = 0  # interruptions that reached the coroutine (loop thread)
        self._undelivered = None  # (exception, since): passed on, not yet delivered

    # -- on the loop's thread ------------------------------------------

    def start(self):
        self.loop_thread.tasks += 1
        self._task = self.loop_thread.loop.create_task(self._main(), context=self._context)
        self._task.add_done_callback(self._ended)

    async def _main(self):
        # sync_to_async(thread_sensitive=True) finds its executor here.
        AsyncToSync.executors.current = self
        try:
            return True, await self._coroutine
        except BaseException as exc:  # sys.exit() in a task ends the task, not the loop
            return False, self._coroutine.raised(exc)

    def _ended(self, task):
        with self._serving_lock:
            self._serving = False
        if task.cancelled():  # the loop's leftovers, cancelled as it closes
            outcome = (False, RuntimeError("the event loop of async tasks stopped "
                                           "while this task ran on it"))
        else:
            outcome = task.result()
        self._outcome.set_result(outcome)
        self._wake.put(None)
        self.loop_thread.tasks -= 1
        self.loop_thread.stop_if_idle()

    def _deliver(self, exc):
        self._delivered += 1
        if self._task is None or self._task.done():
            return
        # sync_to_async calls queued but not started never run: the coroutine
        # is interrupted at its await.
        for item in list(self._work):
            item.future.cancel()
        self._coroutine.interrupt(self._task, exc)

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        with self._serving_lock:
            if not self._serving:
                # A coroutine the task left behind: asgiref's executors refuse
                # the same way (and aio.call_outside_event_loop goes elsewhere).
                raise RuntimeError("the async task whose thread would run this has ended")
            self._work.append(_WorkItem(future, fn, args, kwargs))
        self._wake.put(None)
        return future

    # -- on the task's thread ------------------------------------------

    def wait(self):
        failure = None
        while True:
            try:
                failure = self._serve()
                break
            except BaseException as exc:
                # A time limit, a revoke, a cold shutdown: for the coroutine.
                if not self._forward(exc):
                    failure = exc  # the loop is closed: nothing left to interrupt
                    break
        with self._serving_lock:
            self._serving = False
        for item in self._work:  # the coroutine was left behind: never run
            item.future.cancel()
        if failure is not None:
            raise failure
        ok, value = self._outcome.result()
        if ok:
            return value
        raise value

    def _serve(self):
        """Run the coroutine's sync calls until it ends; returns the exception
        to raise instead of its outcome, if any.

        The whole loop is inside the caller's ``try``: an exception injected
        into this thread lands at any bytecode, the loop's jump back included.
        """
        while True:
            self._run_work()
            if self._outcome.done():
                return None
            if not self.loop_thread.alive():
                return RuntimeError("the event loop of async tasks stopped while this task "
                                    "ran on it (see the worker's log)")
            if self._undelivered is not None:
                exc, since = self._undelivered
                if self._delivered >= self._forwarded:
                    self._undelivered = None
                elif time.monotonic() - since > BLOCKED_LOOP_GRACE:
                    logger.error("An async task blocks the event loop (%r could not reach it); "
                                 "the next async tasks get a new loop", exc)
                    _give_up(self.loop_thread)
                    return exc
            try:
                self._wake.get(timeout=WAIT_SLICE)
            except queue.Empty:
                pass

    def _forward(self, exc):
        """Have the loop raise ``exc`` in the coroutine; False if it is closed."""
        self._forwarded += 1
        if self._undelivered is None and not isinstance(exc, SoftTimeLimitExceeded):
            self._undelivered = (exc, time.monotonic())
        try:
            self.loop_thread.loop.call_soon_threadsafe(self._deliver, exc)
        except RuntimeError:
            return False
        return True

    def _run_work(self):
        work = self._work
        while work:
            work.popleft().run()


class _WorkItem:
    """A ``sync_to_async`` call, run on the task's thread."""

    __slots__ = ("future", "fn", "args", "kwargs")

    def __init__(self, future, fn, args, kwargs):
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self):
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # a time limit landing here too: the coroutine's to see
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class _Interruptible:
    """Awaits a coroutine, letting the loop's thread raise an exception in it
    at the await where it stands: ``Task.cancel()`` wakes the coroutine, and
    the CancelledError that brings is replaced on its way in."""

    def __init__(self, coroutine):
        self._coroutine = coroutine
        self._started = False
        self._pending = None  # the exception to raise in it, and what that stands for
        self._cancels = 0
        self._thrown = []  # (raised in it, what that stood for)

    def interrupt(self, task, exc):
        self._pending = (_as_cancellation(exc), exc)
        if self._started:
            self._cancels += 1
            task.cancel()

    def raised(self, exc):
        """What the task ended with, when its coroutine raised ``exc``."""
        for thrown, original in self._thrown:
            if exc is thrown:
                return original.with_traceback(exc.__traceback__)
        if not self._thrown:
            return exc
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled on the way (what it awaited turned the exception into
            # a plain cancellation: sync_to_async does): still the interruption.
            return self._thrown[-1][1].with_traceback(exc.__traceback__)
        if isinstance(exc, BaseExceptionGroup):
            # A TaskGroup wraps what its body raised: when that is only the
            # interruption, the task ends with it (a revoke still REVOKED, a
            # cold shutdown still handed back).
            ours, rest = exc.split(lambda leaf: any(leaf is thrown for thrown, _ in self._thrown))
            if ours is not None and rest is None:
                return self._thrown[-1][1].with_traceback(exc.__traceback__)
        return exc

    def _take_pending(self):
        thrown, original = self._pending
        self._pending = None
        self._thrown.append((thrown, original))
        return thrown

    def __await__(self):
        coroutine = self._coroutine
        self._started = True
        value = None
        error = self._take_pending() if self._pending is not None else None
        while True:
            try:
                yielded = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
            value = error = None
            try:
                value = yield yielded
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                error = exc
                if self._pending is not None and isinstance(exc, asyncio.CancelledError):
                    error = self._take_pending()
                    task = asyncio.current_task()
                    for _ in range(self._cancels):  # the cancellation is used up
                        task.uncancel()
                    self._cancels = 0


def _as_cancellation(exc):
    """``exc`` as an exception of a class that is both its own and
    ``asyncio.CancelledError`` (with the same name, args and attributes)."""
    cls = _cancellation_class(type(exc))
    if cls is None:
        return asyncio.CancelledError(str(exc))
    thrown = BaseException.__new__(cls)
    thrown.args = exc.args
    thrown.__dict__.update(getattr(exc, "__dict__", {}))
    return thrown


@functools.cache
def _cancellation_class(cls):
    if issubclass(cls, asyncio.CancelledError):
        return cls
    try:
        return type(cls.__name__, (cls, asyncio.CancelledError),
                    {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    except TypeError:  # a layout that cannot be combined (a C exception with fields)
        return None
