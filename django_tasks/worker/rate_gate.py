"""The rate gate: claimed messages of rate-limited tasks start only as
their task's shared bucket allows (see ``rate_limits.py``).

Per claimed batch, one statement per task name (and rate) takes the starts
it may from the bucket; the rest go back to the queue uncounted, each with
``available_at`` at its own time in the bucket's line, so that they come
due one at a time and are not claimed again before. The worker that
handed them back wakes at those times to claim them (others may claim
them too: a hand-back wakes nobody, the messages are not due yet).
"""

import functools
import heapq
import math
import time
from datetime import timedelta

from .. import rate_limits

EARLY = timedelta(seconds=rate_limits.TOLERANCE)
# The step of a rate, read once per distinct header value.
_step = functools.lru_cache(maxsize=256)(rate_limits.interval)


class RateGate:
    def __init__(self):
        # When this process's handed-back messages come due (monotonic):
        # (first, how many, step) for each batch handed back.
        self.due = []

    def __call__(self, backend, messages, worker_id):
        """Cut short by a database error, it is run again (flow_gate.py):
        starts taken before the error are taken again (wasted: the task runs
        below its rate for a moment, never above it)."""
        limited = None
        for message in messages:
            rate = message.headers.get("rate_limit")
            if rate is not None and message.corrupt is None:
                if limited is None:
                    limited = {}
                limited.setdefault((message.task_name, rate), []).append(message)
        if limited is None:
            return messages, self.next_wake()
        deferred_ids, deferred_at = [], []
        for (name, rate), group in limited.items():
            step = _step(rate)
            if step is None:  # a rate of 0 written by hand: no limit, as when sent
                continue
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
