"""Tables: the hot queue of messages, task results, and workers.

The queue table holds only messages that are waiting or running; a message
is deleted when its result is stored, so the claim query scans a small,
hot index however many results pile up.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import states
from .fields import TaskIdField


class QueuedMessage(models.Model):
    id = models.BigAutoField(primary_key=True)
    task_id = TaskIdField(unique=True)  # result look-ups by task id
    task_name = models.CharField(max_length=255)
    queue = models.CharField(max_length=200)
    # Higher runs first (as in RabbitMQ and Django's task framework).
    priority = models.SmallIntegerField(default=0)
    # Not claimable before this time (countdown / eta / retry delay).
    available_at = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    content_type = models.CharField(max_length=32, default="json")
    # The serialized {"args": [...], "kwargs": {...}}.
    body = models.TextField()
    # Everything else a worker needs: retries, parent/root/group ids,
    # callbacks, ignore_result, eager/time-limit options.
    headers = models.JSONField(default=dict)
    # How many times a worker has claimed it (redelivery counting).
    deliveries = models.IntegerField(default=0)
    claimed_by = models.UUIDField(null=True, blank=True)
    # The process of that worker holding it (a prefork child claims for
    # itself): what to hand back when that one process dies.
    claimed_pid = models.IntegerField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Set just before an acks_late=False task runs: from then on the message
    # is never delivered again (at most once); a worker lost past this point
    # ends it FAILURE with WorkerLostError.
    acked_at = models.DateTimeField(null=True, blank=True)
    # Set by revoke(terminate=True); the worker holding it stops the task.
    terminate_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # concurrency_limit (concurrency.py, worker/concurrency_gate.py): the
    # key of a limited message once the gate has seen it (null: not
    # limited, or not gated yet), and whether it holds one of its key's
    # slots. The slots taken are counted from these rows, never kept
    # apart, so a message deleted by any path frees its slot.
    concurrency_key = models.CharField(max_length=200, null=True, blank=True)
    holds_slot = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name = "queued message"
        # Admin actions, each behind its own permission.
        permissions = [
            ("revoke_queuedmessage", "Can revoke queued or running tasks"),
            ("run_now_queuedmessage", "Can run a queued task now"),
        ]
        indexes = [
            # The claim query: unclaimed rows of a queue in priority order.
            models.Index(
                fields=["queue", "-priority", "available_at", "id"],
                condition=Q(claimed_by__isnull=True),
                name="django_tasks_claim_idx",
            ),
            # Releasing the messages of a stopped or lost worker.
            models.Index(
                fields=["claimed_by"],
                condition=Q(claimed_by__isnull=False),
                name="django_tasks_claimed_by_idx",
            ),
            # Housekeeping's sweep of waiting messages whose expires passed
            # (expired_waiting); only messages given an expiry are in it.
            models.Index(
                fields=["expires"],
                condition=Q(claimed_by__isnull=True, expires__isnull=False),
                name="django_tasks_expires_idx",
            ),
            # A key's slot holders, counted by the gate, and its waiting
            # messages in run order, woken one at a time; only messages
            # under a concurrency limit are in it.
            models.Index(
                fields=["task_name", "concurrency_key", "-priority", "id"],
                condition=Q(concurrency_key__isnull=False),
                name="django_tasks_concurrency_idx",
            ),
            # The slot holders alone (a few per key), counted on every
            # admission however many messages of the key wait.
            models.Index(
                fields=["task_name", "concurrency_key"],
                condition=Q(holds_slot=True),
                name="django_tasks_slot_holders_idx",
            ),
        ]

    def __str__(self):
        return f"{self.task_name}[{self.task_id}]"


class TaskResult(models.Model):
    task_id = TaskIdField(primary_key=True)  # look-ups by id
    task_name = models.CharField(max_length=255)
    # Celery's states, or a task's own (update_state), up to MAX_STATE_LENGTH.
    state = models.CharField(max_length=states.MAX_STATE_LENGTH, choices=states.CHOICES,
                             default=states.PENDING)
    content_type = models.CharField(max_length=32, default="json")
    # The return value, or for FAILURE/RETRY/REVOKED the exception as a dict.
    result = models.TextField(null=True, blank=True)
    traceback = models.TextField(null=True, blank=True)
    # The arguments, serialized as in the message, for inspection.
    args = models.TextField(null=True, blank=True)
    kwargs = models.TextField(null=True, blank=True)
    queue = models.CharField(max_length=200, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    retries = models.IntegerField(default=0)
    # How many times a worker claimed the message (more than 1: redelivered).
    deliveries = models.IntegerField(default=1)
    parent_id = TaskIdField(null=True, blank=True)
    root_id = TaskIdField(null=True, blank=True)
    group_id = TaskIdField(null=True, blank=True)
    date_created = models.DateTimeField(null=True, blank=True)
    date_started = models.DateTimeField(null=True, blank=True)
    date_done = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "task result"
        # Admin actions, each behind its own permission.
        permissions = [
            ("retry_taskresult", "Can retry failed tasks"),
            ("purge_taskresult", "Can purge expired results"),
        ]
        indexes = [
            # Purging results older than RESULT_EXPIRES.
            models.Index(fields=["date_done"], name="django_tasks_done_idx"),
            # GroupResult look-ups of a group's members.
            models.Index(fields=["group_id"], condition=Q(group_id__isnull=False),
                         name="django_tasks_group_idx"),
            # The admin's result list filtered by state, newest first
            # (WHERE state = %s ORDER BY date_done DESC).
            models.Index(fields=["state", "date_done"], name="django_tasks_state_done_idx"),
            # The admin's result list filtered by task name, newest first; and
            # the task-name filter's choices (a loose scan, distinct_values()).
            models.Index(fields=["task_name", "date_done"], name="django_tasks_name_done_idx"),
            # The same for queues: the queue filter and its choices.
            models.Index(fields=["queue", "date_done"], name="django_tasks_queue_done_idx"),
            # A result's children (parent_id = id) on its admin page.
            models.Index(fields=["parent_id"], condition=Q(parent_id__isnull=False),
                         name="django_tasks_parent_idx"),
        ]

    def __str__(self):
        return f"{self.task_name}[{self.task_id}] {self.state}"


class Worker(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    queues = models.JSONField(default=list)
    pool = models.CharField(max_length=16)
    concurrency = models.IntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    # Updated every HEARTBEAT_INTERVAL; stale beyond WORKER_LOST_TIMEOUT = lost.
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    processed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            # Finding workers whose heartbeat went stale.
            models.Index(fields=["last_heartbeat"], condition=Q(stopped_at__isnull=True),
                         name="django_tasks_heartbeat_idx"),
        ]

    def __str__(self):
        return f"{self.hostname} (pid {self.pid})"


class Dashboard(Worker):
    """The admin's live dashboard; a proxy so it has a place and a permission in the admin."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
        default_permissions = ("view",)


class HousekeepingRun(models.Model):
    """When each housekeeping job may next run, shared by all workers.

    A worker runs a job only if it moves ``next_run`` forward itself (one
    conditional UPDATE), so however many workers there are, each job runs
    about once per interval.
    """

    name = models.CharField(max_length=64, primary_key=True)
    next_run = models.DateTimeField()

    def __str__(self):
        return f"{self.name} (next {self.next_run:%Y-%m-%d %H:%M:%S})"


class TaskGroup(models.Model):
    """A saved group's members, and for a chord its body and countdown.

    ``remaining`` is decremented in the transaction that stores each
    member's result; the transaction that takes it to zero enqueues the
    body, so the body is enqueued exactly once and no one polls.
    """

    group_id = TaskIdField(primary_key=True)  # GroupResult.restore(id)
    # The members' results in call order: task ids, or nested {"group_id", "results"}.
    results = models.JSONField(default=list)
    # Chords only: the body signature (a dict) and how many members are unfinished.
    chord_body = models.JSONField(null=True, blank=True)
    remaining = models.IntegerField(null=True, blank=True)
    date_created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "task group"
        indexes = [
            # purge_groups(): WHERE date_created < %s (finished ones).
            models.Index(fields=["date_created"], name="django_tasks_group_created_idx"),
        ]

    def __str__(self):
        kind = "chord" if self.chord_body is not None else "group"
        return f"{kind} {self.group_id}"


# Beat's tables live with beat; importing them here makes them this app's models.
from .beat.models import PeriodicTask, PeriodicTick  # noqa: E402, F401


class RateBucket(models.Model):
    """The start times of a rate-limited task, shared by all workers (see
    ``rate_limits.py``): GCRA's theoretical arrival time, and the end of the
    line of messages handed back to wait for their turn."""

    task_name = models.CharField(max_length=255, primary_key=True)
    tat = models.DateTimeField()
    horizon = models.DateTimeField()

    def __str__(self):
        return f"{self.task_name} (next start {self.tat:%Y-%m-%d %H:%M:%S.%f})"


class RateOverride(models.Model):
    """A task's rate set at run time by ``app.control.rate_limit()``: every
    worker obeys it instead of the rate its messages were sent with (see
    ``rate_control.py``); ``0`` (or ``"0"``) is no limit. Kept until
    removed (``rate_limit(name, None)``), across worker restarts."""

    task_name = models.CharField(max_length=255, primary_key=True)
    # As given (10, 0.5, "10/m"): the same values a rate_limit header holds.
    rate_limit = models.JSONField()
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "rate limit override"

    def __str__(self):
        return f"{self.task_name} ({self.rate_limit})"


class UniqueLock(models.Model):
    """Who holds a task's unique key (see unique.py): the task id of the
    message sent with it. Held while that message is in the queue, and
    until ``held_until`` after it finished; a stale row is taken over
    by the next send, and purged with the results."""

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    task_id = TaskIdField()
    unique_for = models.FloatField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # Set when the holder is acknowledged, if unique_for > 0: its end
    # plus unique_for. Before, the holder's message in the queue holds the key.
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "unique lock"
        constraints = [
            models.UniqueConstraint(fields=["task_name", "key"],
                                    name="django_tasks_unique_key"),
        ]

    def __str__(self):
        return f"{self.task_name}[{self.key}]"
