"""The bench's tasks (the same three in every system, and ours' limited one)."""

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


@task(concurrency_limit=2, concurrency_key=lambda args, kwargs: args[0])
def sleep10_limited(key):
    """sleep10 with at most 2 running at once per key (ours only)."""
    time.sleep(0.01)


# Ours only: the rate-limited drain row (bench/run.py --rate-limit).
@task(rate_limit=f"{os.environ.get('BENCH_RATE_LIMIT', '5000')}/s")
def noop_rated():
    return None


# Ours only: the drain that stores no results, as graphile-worker's.
@task(ignore_result=True)
def noop_ignored():
    return None
