"""Celery's delivery options on a task: refused when not booleans (as the task
is declared), and a system-check note for those that change nothing here.

What the options do is the worker's (worker/at_most_once.py).
"""

from django.core import checks

from .registry import tasks as registry

DELIVERY_OPTIONS = ("acks_late", "reject_on_worker_lost", "acks_on_failure_or_timeout")

NOTES = {
    "reject_on_worker_lost": (
        False, "django_tasks.I040",
        "reject_on_worker_lost=False has no effect: with acks_late=True a task whose worker "
        "died is delivered again (up to MAX_DELIVERIES).",
        "For a WorkerLostError failure instead, as Celery gives, use acks_late=False."),
    "acks_on_failure_or_timeout": (
        False, "django_tasks.I041",
        "acks_on_failure_or_timeout=False has no effect: a failed or timed-out task is "
        "stored as FAILURE and leaves the queue (there is no dead-letter queue).",
        "Remove the option, or retry failures with autoretry_for / self.retry()."),
}


def check_delivery_values(task):
    """Refuse, when the task is declared, a delivery option that is not a boolean."""
    for name in DELIVERY_OPTIONS:
        value = getattr(task, name)
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"@task({name}=...) of {task.name} must be True, False or None, "
                            f"got {value!r:.80}")


@checks.register(checks.Tags.compatibility)
def check_delivery_options(app_configs=None, **kwargs):
    messages = []
    for name in sorted(registry.keys()):
        task = registry.get(name)
        for option, (noted, check_id, text, hint) in NOTES.items():
            if getattr(task, option, None) is noted:
                messages.append(checks.Info(f"{name}: {text}", hint=hint, obj=name,
                                            id=check_id))
    return messages
