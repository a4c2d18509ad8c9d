"""Tasks of the rate limit tests: each returns when its body started."""

import os
import time

from django_tasks import task

from .models import Execution

RATE = 20  # per second


@task(rate_limit=f"{RATE}/s")
def limited(i):
    return time.time()


@task
def unlimited(i):
    return time.time()


@task(bind=True, rate_limit="10/s")
def limited_record(self, key, seconds):
    """Records each run (duplicates show double runs), then takes a while."""
    started = time.time()
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    time.sleep(seconds)
    return started
