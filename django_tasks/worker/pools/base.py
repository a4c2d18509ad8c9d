"""The pool interface, and what it reports back to the consumer."""

import time
from dataclasses import dataclass

from ...messages import Message
from ...registry import tasks as registry
from ..timelimits import limits_for


@dataclass
class Job:
    """A message running in a slot."""

    message: Message
    slot: int
    started: float  # time.monotonic()
    soft_limit: float | None = None
    hard_limit: float | None = None
    soft_sent: bool = False
    hard_sent: bool = False

    def past_soft_limit(self, now):
        return bool(self.soft_limit) and not self.soft_sent and now - self.started > self.soft_limit

    def past_hard_limit(self, now):
        return bool(self.hard_limit) and not self.hard_sent and now - self.started > self.hard_limit


class Pool:
    name = "base"
    #: submit() runs the task to its end before it returns (solo).
    runs_inline = False

    def __init__(self, concurrency, hostname="", backend=None, worker_id=None):
        self.concurrency = concurrency
        self.hostname = hostname
        self.backend = backend
        self.worker_id = worker_id
        self.jobs = {}  # slot -> Job

    def start(self):
        """Create the slots."""

    @property
    def free_slots(self):
        return self.concurrency - len(self.jobs)

    def running(self):
        return [job.message for job in self.jobs.values()]

    def submit(self, message):
        """Start ``message`` in a free slot."""
        raise NotImplementedError

    def wait_fds(self):
        """File descriptors that become readable when ``collect`` has news."""
        return []

    def collect(self):
        """Return the outcomes of the jobs that finished since last time; never blocks."""
        raise NotImplementedError

    def enforce_time_limits(self):
        """Interrupt jobs past their soft or hard limit (where the loop must)."""

    def terminate(self, task_id):
        """Stop the running task with this id (revoke with terminate)."""
        return False

    def stop(self, cold):
        """Warm: wait for running jobs (collect still works). Cold: stop them now."""

    def _free_slot(self):
        for slot in range(self.concurrency):
            if slot not in self.jobs:
                return slot
        raise RuntimeError("no free slot")

    def _new_job(self, message, slot):
        soft, hard = limits_for(message, registry.get(message.task_name))
        job = Job(message=message, slot=slot, started=time.monotonic(),
                  soft_limit=soft, hard_limit=hard)
        self.jobs[slot] = job
        return job

    def _job_of(self, task_id):
        for job in self.jobs.values():
            if str(job.message.task_id) == str(task_id):
                return job
        return None
