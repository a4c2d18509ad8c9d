"""The worker's log handler: the same error a thousand times is one line and a count.

A failure that repeats (a job that fails on every turn, a child that dies
on start) would otherwise write the same traceback many times a second and
bury everything else. The first one is logged as it is; the same one again
within ``window`` seconds is counted instead, and the count rides on the
next one logged after that.
"""

import logging
import time
from collections import OrderedDict

REPEAT_WINDOW = 60.0
KEYS_KEPT = 256


class RepeatFilter(logging.Filter):
    def __init__(self, window=REPEAT_WINDOW, clock=time.monotonic):
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen = OrderedDict()  # key -> [first logged at, repeats held back]

    def filter(self, record):
        if record.levelno < logging.WARNING:
            return True  # a line per task received and done: each its own
        key = _identity(record)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{seen[1]} more like this in the {self.window:g}s before]"
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        while len(self._seen) > KEYS_KEPT:
            self._seen.popitem(last=False)
        return True


def _identity(record):
    """Records are the same when they say the same; with a traceback, when
    the same template reports the same error (pids and ids aside)."""
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        return (record.name, record.levelno, str(record.msg), type(error), str(error)[:500])
    return (record.name, record.levelno, record.getMessage())
