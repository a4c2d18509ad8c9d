"""Housekeeping shared by the worker, the management commands and the admin."""

from django.utils import timezone

from .conf import settings
from .queue import get_backend


def purge_expired_results(now=None, expires=None, batch_size=None):
    """Delete results older than ``RESULT_EXPIRES``; returns how many went.

    Deletes in batches of ``PURGE_BATCH_SIZE`` so a large backlog never
    holds one long lock on the results table.
    """
    expires = settings.RESULT_EXPIRES if expires is None else expires
    if expires is None:
        return 0
    cutoff = (now or timezone.now()) - expires
    return get_backend().purge_results(cutoff, batch_size or settings.PURGE_BATCH_SIZE)
