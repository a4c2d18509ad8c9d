"""Waiting for results in async code, without holding up the event loop.

``AsyncResult.aget()`` reads the result where Django's async ORM runs its
queries (``sync_to_async``) and waits between reads on the event loop
itself. Where the database sends notifications (PostgreSQL with
``LISTEN_NOTIFY``), one connection per event loop listens for stored results
and wakes the coroutines waiting for the tasks each notification names, so
any number of concurrent ``aget()`` calls share it and hold no thread while
they wait. Elsewhere, and while that connection is lost, they poll every
``interval``.
"""

import asyncio
import contextvars
import logging
import os
import threading
import weakref
from contextlib import asynccontextmanager

logger = logging.getLogger("django_tasks")

# event loop -> {database alias: _Listener}; gone with the loop.
_listeners = weakref.WeakKeyDictionary()
_listeners_lock = threading.Lock()


def _reset_after_fork():
    global _listeners_lock
    # Another thread may have held it at the fork. The parent's listeners stay
    # referenced: finalizing their connections here would end the parent's.
    _listeners_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


@asynccontextmanager
async def news_of(backend, wanted, patience):
    """A ``Waiter`` for news of the task ``wanted`` (as notifications spell its id).

    Subscribed before it is handed over, so that news of a result stored
    after the caller's next look is not missed; if subscribing takes longer
    than ``patience`` seconds (the caller's polling interval), it is handed
    over anyway: the caller looks again after that interval regardless.
    """
    if not backend.wakes_up:
        yield Waiter(None)
        return
    listener = await _listener(backend, patience)
    event = asyncio.Event()
    listener.add(wanted, event)
    try:
        yield Waiter(event)
    finally:
        listener.remove(wanted, event)


class Waiter:
    def __init__(self, event):
        self._event = event

    def clear(self):
        """Forget earlier news: call before each look at the result."""
        if self._event is not None:
            self._event.clear()

    async def wait(self, timeout):
        """Until news came since ``clear()``, or ``timeout`` seconds."""
        if self._event is None:
            await asyncio.sleep(timeout)
            return
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            pass  # no news: the caller looks anyway (results stored without notice)


async def _listener(backend, patience):
    loop = asyncio.get_running_loop()
    with _listeners_lock:  # event loops of other threads use the mapping too
        per_alias = _listeners.setdefault(loop, {})
    listener = per_alias.get(backend.alias)
    if listener is None or not listener.alive:
        listener = per_alias[backend.alias] = _Listener(backend)
    try:
        async with asyncio.timeout(patience):
            await listener.listening.wait()
    except TimeoutError:
        pass  # still connecting: the caller polls until it listens
    return listener


class _Listener:
    """One event loop's connection listening for stored results."""

    def __init__(self, backend):
        self.backend = backend
        self.waiters = {}  # task id -> set of asyncio.Event
        self.listening = asyncio.Event()
        self.alive = True
        # A context of its own: the first caller's (its running task...) is
        # not the listener's.
        self.task = asyncio.get_running_loop().create_task(
            self._listen(), context=contextvars.Context())

    def add(self, wanted, event):
        self.waiters.setdefault(wanted, set()).add(event)
        if not self.alive:
            event.set()  # look now, then poll

    def remove(self, wanted, event):
        events = self.waiters.get(wanted)
        if events is not None:
            events.discard(event)
            if not events:
                del self.waiters[wanted]

    async def _listen(self):
        try:
            async for payloads in self.backend.result_notifications():
                self.listening.set()
                for payload in payloads:
                    # As AsyncResult.get() reads them: a payload lists task
                    # ids; one that merely contains an id only costs a look.
                    for wanted, events in self.waiters.items():
                        if wanted in payload:
                            for event in events:
                                event.set()
        except Exception:
            logger.exception("The connection that wakes aget() calls failed; they poll until "
                             "the next one connects")
        finally:
            self.alive = False
            self.listening.set()
            for events in self.waiters.values():
                for event in events:
                    event.set()
