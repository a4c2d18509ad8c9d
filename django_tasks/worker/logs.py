"""The worker's log handler: the same error a thousand times is one line and a count.

``configure`` adds it to the ``django_tasks`` logger, next to whatever the
project's ``LOGGING`` set up, which it keeps: records still reach the
project's handlers (the root logger's included), a file, an error tracker.
Only a console handler of the project's writing to the same stream skips
the records the worker's handler already printed, so nothing shows twice.

A failure that repeats (a job that fails on every turn, a child that dies
on start) would otherwise write the same traceback many times a second and
bury everything else. The first one is logged as it is; the same one again
within ``window`` seconds is counted instead, and the count rides on the
next one logged after that.
"""

import logging
import sys
import time
from collections import OrderedDict

WORKER_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
# Celery's, for the records of task loggers (django_tasks.log.get_task_logger).
TASK_FORMAT = ("[%(asctime)s: %(levelname)s/%(processName)s] "
               "%(task_name)s[%(task_id)s]: %(message)s")

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
    if getattr(record, "task_id", None) is not None:
        return (record.name, record.levelno, record.getMessage())  # one task's own end
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        return (record.name, record.levelno, str(record.msg), type(error), str(error)[:500])
    return (record.name, record.levelno, record.getMessage())


class WorkerFormatter(logging.Formatter):
    """The worker's format, and Celery's task format for task loggers' records."""

    def __init__(self):
        super().__init__(WORKER_FORMAT)
        self._task = logging.Formatter(TASK_FORMAT)

    def format(self, record):
        if getattr(record, "task_name", None) is not None \
                and not record.name.startswith("django_tasks"):
            return self._task.format(record)
        return super().format(record)


class _Shown(logging.Filter):
    """Marks the records the worker's handler took (printed, or counted as repeats)."""

    def filter(self, record):
        record.django_tasks_shown = True
        return True


class _NotShownYet(logging.Filter):
    """On a project console handler: skip what the worker's handler printed."""

    def filter(self, record):
        return not getattr(record, "django_tasks_shown", False)


def configure(level, logfile=None):
    """The worker's logging: its handler on ``django_tasks``, the project's kept.

    As in Celery, a receiver of ``signals.setup_logging`` takes logging over
    entirely: the worker then adds nothing.
    """
    from .. import signals
    from ..log import task_logger

    options = {"loglevel": level, "logfile": logfile, "format": WORKER_FORMAT,
               "colorize": False}
    if signals.setup_logging.send(sender=None, **options):
        return None
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    handler.setFormatter(WorkerFormatter())
    handler.addFilter(_Shown())
    handler.addFilter(RepeatFilter())
    handler.django_tasks_worker = True
    logger = logging.getLogger("django_tasks")
    # A second configure (runworker called again in one process) replaces its own.
    logger.handlers[:] = [h for h in logger.handlers
                          if not getattr(h, "django_tasks_worker", False)] + [handler]
    logger.setLevel(level)
    if not logfile:
        _skip_printed_records(logger, handler.stream)
    signals.after_setup_logger.send(sender=None, logger=logger, **options)
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **options)
    return handler


def _skip_printed_records(logger, stream):
    """Console handlers above ``logger`` writing to ``stream`` skip the records
    the worker's handler printed there already."""
    ancestor = logger.parent if logger.propagate else None
    while ancestor is not None:
        for handler in ancestor.handlers:
            if isinstance(handler, logging.StreamHandler) \
                    and not isinstance(handler, logging.FileHandler) \
                    and getattr(handler, "stream", None) is stream \
                    and not any(isinstance(f, _NotShownYet) for f in handler.filters):
                handler.addFilter(_NotShownYet())
        ancestor = ancestor.parent if ancestor.propagate else None
