"""The solo pool: the task runs in the worker's own main thread."""

from ..slot import run_message
from ..timelimits import MainThreadTask, install_terminate_handler
from .base import Pool


class SoloPool(Pool):
    name = "solo"
    runs_inline = True

    def __init__(self, concurrency, slot_state=None, **options):
        super().__init__(1, **options)
        self._done = []
        # A prefork child's: what it runs, for the worker process to see.
        self.slot_state = slot_state

    def start(self):
        install_terminate_handler()

    def submit(self, message):
        slot = self._free_slot()
        job = self._new_job(message, slot)
        if self.slot_state is not None:
            self.slot_state.task_started(message.id, job.hard_limit)
        try:
            outcome = run_message(message, self.hostname, self.backend, self.worker_id,
                                  in_main_thread=True)
        finally:
            del self.jobs[slot]
            if self.slot_state is not None:
                self.slot_state.task_ended()
        self._done.append(outcome)

    def collect(self):
        done, self._done = self._done, []
        return done

    def terminate(self, task_id):
        # Called from the heartbeat thread while the main thread runs the task.
        if self._job_of(task_id) is None:
            return False
        MainThreadTask.request_terminate(task_id)
        return True
