"""``app.control.rate_limit()``: a task's rate changed at run time.

Celery broadcasts the new rate to the running workers, which keep it in
memory until they restart. Here every worker shares one bucket per task in
the database already, so the new rate is a row there too
(``django_tasks_rateoverride``): every worker obeys it, including those
started later, until it is removed (``rate_limit(name, None)``).

Workers never read it per claimed batch: each process (a prefork child
too, which runs the gates itself) reads the whole table at most once every
``REFRESH`` seconds, as it claims (``worker/rate_gate.py``), and looks the
rates up in memory. A change reaches every worker within ``REFRESH``
seconds of the call.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import rate_limits
from .conf import settings
from .exceptions import NotRegistered
from .models import RateBucket, RateOverride, Worker
from .registry import tasks as registry

#: Seconds a worker process goes on with the overrides it read last.
REFRESH = 1.0
WHERE = "app.control.rate_limit()"


def set_rate_limit(task_name, rate_limit, destination=None, reply=False):
    """Set (``rate_limit`` a rate, ``0``: no limit) or remove (None) the
    rate every worker applies to ``task_name``'s messages; see
    ``Control.rate_limit``."""
    if not isinstance(task_name, str):
        raise TypeError(f"{WHERE}: task_name must be a task's name (a str), "
                        f"not {type(task_name).__name__}")
    if not task_name or len(task_name) > RateOverride._meta.get_field("task_name").max_length:
        raise ValueError(f"{WHERE}: task_name {task_name!r:.80} is not a task name")
    if destination is not None:
        # Every worker shares the task's bucket: a rate for one worker has
        # no meaning here, and silently applying it to all would surprise.
        raise ValueError(f"{WHERE}: destination={destination!r:.80} cannot be honoured: the "
                         "rate is shared by every worker (it is kept in the database); "
                         "call it without destination")
    if rate_limit is not None:
        rate_limits.checked_rate_limit(rate_limit, WHERE)
        # A typo would otherwise limit nothing, silently. Removing needs no
        # registered task: a renamed task's override must be removable.
        if task_name not in registry:
            raise NotRegistered(f"{WHERE}: no task named {task_name!r:.200} is registered in "
                                "this process (import its module first)")
    alias = settings.DATABASE
    with transaction.atomic(using=alias):
        if rate_limit is None:
            RateOverride.objects.using(alias).filter(task_name=task_name).delete()
        else:
            RateOverride.objects.using(alias).update_or_create(
                task_name=task_name,
                defaults={"rate_limit": rate_limit, "set_at": timezone.now()})
        forget_bucket(alias, task_name)
    if not reply:
        return None
    done = "new rate limit set successfully" if rate_limit is not None \
        else "rate limit override removed"
    return [{name: {"ok": done}} for name in live_workers(alias)]


def forget_bucket(alias, task_name):
    """The bucket's start times were taken at the old rate (a ``"1/h"``
    start holds it for an hour): the new rate starts from an unused bucket."""
    RateBucket.objects.using(alias).filter(task_name=task_name).delete()


def live_workers(alias):
    """Names of the workers alive now (as ``inspect().ping()`` would answer)."""
    fresh = timezone.now() - timedelta(seconds=settings.WORKER_LOST_TIMEOUT)
    rows = Worker.objects.using(alias).filter(stopped_at__isnull=True,
                                             last_heartbeat__gte=fresh).order_by("started_at")
    return [f"{row.hostname} (pid {row.pid})" for row in rows]


def read_overrides(alias):
    """{task name: rate} of every override."""
    return dict(RateOverride.objects.using(alias).values_list("task_name", "rate_limit"))

