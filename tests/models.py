from django.db import models


class Execution(models.Model):
    """One row per time a test task body ran: duplicates show double runs."""

    key = models.CharField(max_length=100)
    task_id = models.CharField(max_length=64)
    pid = models.IntegerField()


class Note(models.Model):
    """A row a test task writes, to observe (rolled-back) side effects."""

    text = models.CharField(max_length=200)


class HookCall(models.Model):
    """One row per Celery handler a test task's class ran (on_success...)."""

    task_id = models.CharField(max_length=64)
    hook = models.CharField(max_length=50)
    data = models.JSONField(default=dict)
