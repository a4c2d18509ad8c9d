"""Warm and cold shutdown on SIGTERM / SIGINT, as Celery does it.

The first signal asks for a warm shutdown: stop claiming, hand back what is
claimed but not started, let the running task finish. A second signal is a
cold shutdown: ``ColdShutdown`` is raised where the task is running, and its
message is handed back too.
"""

import logging
import os
import signal

from ..exceptions import ColdShutdown

logger = logging.getLogger("django_tasks.worker")


class ShutdownState:
    def __init__(self):
        self.warm = False
        self.wakeup_fd = None
        self.signal_name = None  # the first stop signal received (worker_shutting_down)

    def install(self):
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, self._handle)
        # A signal writes a byte here, so a worker waiting in select() for
        # work wakes at once instead of at the end of its poll interval.
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self.wakeup_fd = read_end

    def drain(self):
        if self.wakeup_fd is None:
            return
        try:
            while os.read(self.wakeup_fd, 512):
                continue
        except BlockingIOError:
            return

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        self.signal_name = self.signal_name or name
        if signum == signal.SIGQUIT or self.warm:
            logger.warning("worker: Cold shutdown (%s): stopping running tasks and "
                           "handing them back to the queue", name)
            raise ColdShutdown.on_signal(name)
        self.warm = True
        logger.warning("worker: Warm shutdown (%s): finishing running tasks; "
                       "send it again for a cold shutdown", name)
