"""Retry policy as pure functions: when, and whether, to run a task again."""

import random


def backoff_countdown(retries, factor, maximum, jitter, rng=random):
    """Seconds to wait before retry number ``retries + 1`` (exponential).

    ``factor * 2 ** retries`` capped at ``maximum``; with ``jitter`` a
    uniformly random value between 0 and that, as Celery does, so that a
    burst of failures does not come back as a burst.
    """
    countdown = min(maximum, factor * (2 ** retries))
    if jitter:
        countdown = rng.randrange(int(countdown) + 1)
    return max(0, int(countdown))


def autoretry_countdown(task, retries, rng=random):
    """The countdown for an ``autoretry_for`` retry of ``task``."""
    if task.retry_backoff:
        factor = 1 if task.retry_backoff is True else int(task.retry_backoff)
        return backoff_countdown(retries, factor, task.retry_backoff_max, task.retry_jitter, rng)
    return task.default_retry_delay


def may_retry(retries, max_retries):
    """``max_retries=None`` retries forever."""
    return max_retries is None or retries < max_retries
