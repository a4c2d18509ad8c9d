"""The threads pool: N threads in the worker process, for I/O-bound tasks."""

import logging
import os
import queue
import threading
import time

from django.db import connections

from ...exceptions import (
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)
from ...execution import interrupted_outcome
from ..slot import run_message
from ..timelimits import raise_in_thread
from .base import Pool

logger = logging.getLogger("django_tasks.worker")


class ThreadPool(Pool):
    name = "threads"

    def __init__(self, concurrency, **options):
        super().__init__(concurrency, **options)
        # One inbox per slot, so a slot is always the same thread.
        self._inboxes = [queue.SimpleQueue() for _ in range(concurrency)]
        self._done = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._threads = []

    def start(self):
        self._threads = [self._start_thread(slot) for slot in range(self.concurrency)]

    def _start_thread(self, slot):
        thread = threading.Thread(target=self._work, args=(slot,), daemon=True,
                                  name=f"ThreadPoolWorker-{slot + 1}")
        thread.start()
        return thread

    def _work(self, slot):
        inbox = self._inboxes[slot]
        try:
            while True:
                message = inbox.get()
                if message is None:
                    return
                outcome = run_message(message, self.hostname, self.backend, self.worker_id,
                                      in_main_thread=False)
                self._done.put((slot, outcome))
                os.write(self._wake_write, b"x")
        finally:
            connections.close_all()

    def submit(self, message):
        slot = self._free_slot()
        self._new_job(message, slot)
        self._inboxes[slot].put(message)

    def wait_fds(self):
        return [self._wake_read]

    def collect(self):
        try:
            while os.read(self._wake_read, 4096):
                continue
        except BlockingIOError:
            pass  # the wake-up pipe is drained; the outcomes are in the queue
        outcomes = self._finished()
        if not all(thread.is_alive() for thread in self._threads):
            outcomes += self._replace_dead_threads()
        return outcomes

    def _finished(self):
        outcomes = []
        while True:
            try:
                slot, outcome = self._done.get_nowait()
            except queue.Empty:
                return outcomes
            self.jobs.pop(slot, None)
            outcomes.append(outcome)

    def _replace_dead_threads(self):
        """A slot whose thread died (something raised past the task's own
        handling) gets a new thread; the task it was running fails."""
        dead = [slot for slot, thread in enumerate(self._threads) if not thread.is_alive()]
        # A thread that died just after handing its outcome over: that outcome stands.
        outcomes = self._finished()
        for slot in dead:
            name = self._threads[slot].name
            job = self.jobs.pop(slot, None)
            if job is not None:
                message = job.message
                logger.error("%s died running %s[%s]; its slot gets a new thread", name,
                             message.task_name, message.task_id)
                error = WorkerLostError(f"{name} died running the task (see the worker's "
                                        "log for what it raised)")
                outcomes.append(interrupted_outcome(message, error, self.hostname))
            else:
                logger.error("%s died; its slot gets a new thread", name)
            self._inboxes[slot] = queue.SimpleQueue()
            self._threads[slot] = self._start_thread(slot)
        return outcomes

    def _interrupt(self, job, exc_type):
        return raise_in_thread(self._threads[job.slot].ident, exc_type)

    def enforce_time_limits(self):
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.past_soft_limit(now):
                job.soft_sent = True
                self._interrupt(job, SoftTimeLimitExceeded)
            if job.past_hard_limit(now):
                job.hard_sent = True
                self._interrupt(job, TimeLimitExceeded)

    def terminate(self, task_id):
        job = self._job_of(task_id)
        return job is not None and self._interrupt(job, TaskRevokedError)

    def stop(self, cold):
        if cold:
            for job in list(self.jobs.values()):
                self._interrupt(job, TaskRevokedError)
        for inbox in self._inboxes:
            inbox.put(None)
