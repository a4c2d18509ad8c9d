"""Tasks of the delivery tests: at-most-once tasks, task loggers, signal receivers."""

import os
import time

from django_tasks import task

from .models import Execution


@task(bind=True, acks_late=False)
def once_then_block(self, key, seconds):
    """At most once: records that it ran, then blocks (to be killed)."""
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    time.sleep(seconds)
    return key


@task(bind=True, acks_late=False)
def once_record(self, key):
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    return key


@task(bind=True)
def record_then_block_first_time(self, key, seconds):
    """At least once (the default): records, and blocks on its first delivery only."""
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    if self.request.delivery_count <= 1:
        time.sleep(seconds)
    return key
