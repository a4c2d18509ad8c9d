"""Helpers for testing code that enqueues tasks, without a worker process.

``run_queued_tasks()`` runs what is queued, here and now, through the same
claim, execution and result-storing code a worker uses (real
serialization, real result rows), so a test sees what production would::

    from django_tasks.testing import run_queued_tasks

    def test_signup_sends_mail(transactional_db):
        signup("a@example.com")
        (outcome,) = run_queued_tasks()
        assert outcome.state == "SUCCESS"

``eager()`` switches ``EAGER`` on for a block, for code that waits on results.
"""

import contextlib
import os
import uuid

from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from .conf import settings
from .execution import execute
from .models import QueuedMessage, Worker
from .queue import get_backend

TEST_WORKER_ID = uuid.UUID(int=0)


def queued_messages(queue=None):
    """The messages waiting in the queue (all queues unless one is named)."""
    rows = QueuedMessage.objects.using(settings.DATABASE).order_by("-priority", "id")
    return list(rows.filter(queue=queue) if queue else rows)


def run_queued_tasks(queues=None, limit=10_000, hostname="testing"):
    """Run due queued tasks synchronously; returns their outcomes in run order.

    Tasks enqueued by the tasks it runs are run too, up to ``limit`` in all.
    """
    backend = get_backend()
    if queues is None:
        queues = list(QueuedMessage.objects.using(settings.DATABASE)
                      .values_list("queue", flat=True).distinct())
    outcomes = []
    _register_test_worker(hostname, queues)
    try:
        while len(outcomes) < limit:
            batch = backend.claim(TEST_WORKER_ID, queues, 1, start=1) if queues else []
            if not batch:
                return outcomes
            outcome = execute(batch[0], hostname=hostname)
            backend.finish([outcome], TEST_WORKER_ID)
            outcomes.append(outcome)
        return outcomes
    finally:
        backend.stop_worker(TEST_WORKER_ID, len(outcomes), 0)


def _register_test_worker(hostname, queues):
    """A live worker row to claim under: claims take nothing for a stopped one."""
    Worker.objects.using(settings.DATABASE).update_or_create(
        id=TEST_WORKER_ID, defaults={
            "hostname": hostname, "pid": os.getpid(), "queues": list(queues), "pool": "testing",
            "concurrency": 1, "last_heartbeat": timezone.now(), "stopped_at": None})


@contextlib.contextmanager
def eager():
    """Run tasks inline on ``.delay()`` for the duration of the block."""
    user = dict(getattr(django_settings, "DJANGO_TASKS", None) or {})
    with override_settings(DJANGO_TASKS={**user, "EAGER": True}):
        yield
