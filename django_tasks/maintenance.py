"""Housekeeping shared by the worker, the management commands and the admin."""

from typing import NamedTuple

from django.utils import timezone

from .conf import settings
from .queue import get_backend


class Purged(NamedTuple):
    results: int
    groups: int  # saved groups and finished chords
    unique_locks: int = 0  # lock rows of unique keys that hold nothing any more


def purge_expired_results(now=None, expires=None, batch_size=None):
    """Delete results older than ``RESULT_EXPIRES``, and the saved groups,
    finished chords and stale unique-key locks created before then; returns
    how many of each went.

    Deletes in batches of ``PURGE_BATCH_SIZE`` so a large backlog never
    holds one long lock on the results table.
    """
    expires = settings.RESULT_EXPIRES if expires is None else expires
    if expires is None:
        return Purged(0, 0)
    cutoff = (now or timezone.now()) - expires
    batch_size = batch_size or settings.PURGE_BATCH_SIZE
    backend = get_backend()
    return Purged(backend.purge_results(cutoff, batch_size),
                  backend.purge_groups(cutoff, batch_size),
                  backend.purge_unique_locks(cutoff, batch_size))
