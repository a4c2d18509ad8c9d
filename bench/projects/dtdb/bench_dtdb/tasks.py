"""The bench's tasks (the same three in every system)."""

import time

from django.tasks import task


@task
def noop():
    return None


@task
def sleep10():
    time.sleep(0.01)


@task
def stamp():
    return time.time()
