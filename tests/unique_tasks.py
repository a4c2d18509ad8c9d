"""Tasks of the unique-task tests (test_unique_tasks.py)."""

import os
import time

from django_tasks import task
from tests.models import Execution


def report_key(args, kwargs):
    """One report per customer; customer None: not unique."""
    return None if args[0] is None else f"report-{args[0]}"


@task(bind=True, unique_key=report_key)
def unique_report(self, customer, seconds=0.0):
    """Records how many messages with its key the queue holds while it runs:
    always 1 (itself) if the key is unique."""
    from django_tasks.models import QueuedMessage

    time.sleep(seconds)
    key = self.request.headers.get("unique_key") if self.request.headers else None
    queued = QueuedMessage.objects.filter(headers__unique_key=key).count()
    Execution.objects.create(key=f"{customer}:{queued}", task_id=self.request.id,
                             pid=os.getpid())
    return customer


@task(bind=True, unique_key="nightly", unique_for=3600, ignore_result=True)
def nightly_singleton(self):
    Execution.objects.create(key="nightly", task_id=self.request.id, pid=os.getpid())


@task(bind=True, max_retries=2, default_retry_delay=0.2)
def retries_once(self, key):
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    if self.request.retries == 0:
        raise self.retry()
    return self.request.retries
