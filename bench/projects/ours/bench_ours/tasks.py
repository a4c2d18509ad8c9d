"""The bench's tasks (the same three in every system)."""

import os
import time

from django_tasks import task


@task
def noop():
    return None


@task
def sleep10():
    time.sleep(0.01)


@task
def stamp():
    """When the task body started (wall clock; the client is on the same host)."""
    return time.time()


# Ours only: the rate-limited drain row (bench/run.py --rate-limit).
@task(rate_limit=f"{os.environ.get('BENCH_RATE_LIMIT', '5000')}/s")
def noop_rated():
    return None
