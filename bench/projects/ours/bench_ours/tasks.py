"""The bench's tasks (the same three in every system)."""

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
