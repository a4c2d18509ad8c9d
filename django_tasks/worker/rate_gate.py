"""The rate gate: claimed messages of rate-limited tasks start only as
their task's shared bucket allows (see ``rate_limits.py``).

Per claimed batch, one statement per task name (and rate) takes the starts
it may from the bucket; the rest go back to the queue uncounted, each with
``available_at`` at its own time in the bucket's line, so that they come
due one at a time and are not claimed again before. The worker that
handed them back wakes at those times to claim them (others may claim
them too: a hand-back wakes nobody, the messages are not due yet).

A rate set by ``app.control.rate_limit()`` (``rate_control.py``) replaces
the one a message was sent with, or limits a message sent with none. The
overrides are read at most once every ``rate_control.REFRESH`` seconds per
process, as the gate runs, and looked up in memory.
"""

import functools
import heapq
import math
import os
import time
from datetime import timedelta

from .. import rate_control, rate_limits

EARLY = timedelta(seconds=rate_limits.TOLERANCE)
# The step of a rate, read once per distinct header value.
_step = functools.lru_cache(maxsize=256)(rate_limits.interval)


class RateGate:
    def __init__(self):
        # When this process's handed-back messages come due (monotonic):
        # (first, how many, step) for each batch handed back.
        self.due = []
        # {task name: rate} of app.control.rate_limit(), as read at
        # read_at (monotonic) by process read_pid (a forked child reads its own).
        self.overrides = {}
        self.read_at = 0.0
        self.read_pid = None
        # Tasks this process took starts of since it read the overrides.
        self.took = set()

    def __call__(self, backend, messages, worker_id):
        """Cut short by a database error, it is run again (flow_gate.py):
        starts taken before the error are taken again (wasted: the task runs
        below its rate for a moment, never above it)."""
        overrides = self.current_overrides(backend)
        limited = None
        for message in messages:
            rate = message.headers.get("rate_limit")
            if overrides and message.task_name in overrides:
                rate = overrides[message.task_name]
            if rate is not None and message.corrupt is None:
                if limited is None:
                    limited = {}
                limited.setdefault((message.task_name, rate), []).append(message)
        if limited is None:
            return messages, self.next_wake()
        deferred_ids, deferred_at = [], []
        for (name, rate), group in limited.items():
            step = _step(rate)
            if step is None:  # 0 (a header written by hand, an override): no limit
                continue
            self.took.add(name)
            admitted, first, now = backend.take_rate_tokens(name, len(group), step,
                                                            rate_limits.TOLERANCE)
            waiting = group[admitted:]
            if not waiting:
                continue
            # Due as early as the bucket's tolerance lets them start: a claim
            # a little late then still finds the start it was planned for.
            first -= EARLY
            for position, message in enumerate(waiting):
                deferred_ids.append(message.id)
                deferred_at.append(first + timedelta(seconds=position * step))
            # The database's clock says how long until then; this process's
            # monotonic clock measures it.
            wake = time.monotonic() + (first - now).total_seconds()
            heapq.heappush(self.due, (wake, len(waiting), step))
        if deferred_ids:
            backend.hand_back(deferred_ids, worker_id, undeliver=True,
                              available_at=deferred_at)
            deferred = set(deferred_ids)
            messages = [m for m in messages if m.id not in deferred]
            if not messages:
                # The slots this claim was for are still free, and the
                # messages behind these may be of other tasks: claim again now.
                return messages, time.monotonic()
        return messages, self.next_wake()

    def current_overrides(self, backend):
        """The overrides, read again once ``REFRESH`` seconds old."""
        now = time.monotonic()
        pid = os.getpid()
        if pid == self.read_pid and now - self.read_at < rate_control.REFRESH:
            return self.overrides
        overrides = rate_control.read_overrides(backend.alias)
        if pid == self.read_pid:
            # Starts this process took at the old rate since the call reset
            # the bucket (a "1/h" start holds it for an hour): reset it again,
            # now that no start of this process is at the old rate.
            for name in self.took:
                if overrides.get(name, self) != self.overrides.get(name, self):
                    rate_control.forget_bucket(backend.alias, name)
        self.overrides, self.read_at, self.read_pid = overrides, now, pid
        self.took = set()
        return overrides

    def next_wake(self):
        """The next moment a message this process handed back comes due (or None)."""
        due = self.due
        if not due:
            return None
        now = time.monotonic()
        while due and due[0][0] <= now:
            first, count, step = heapq.heappop(due)
            passed = math.floor((now - first) / step) + 1
            if passed < count:
                heapq.heappush(due, (first + passed * step, count - passed, step))
        return due[0][0] if due else None


gate = RateGate()
