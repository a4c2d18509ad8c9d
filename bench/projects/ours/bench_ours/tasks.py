"""The bench's tasks (the same three in every system, and ours' limited one)."""

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


@task(concurrency_limit=2, concurrency_key=lambda args, kwargs: args[0])
def sleep10_limited(key):
    """sleep10 with at most 2 running at once per key (ours only)."""
    time.sleep(0.01)
