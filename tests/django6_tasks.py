"""Tasks written against Django 6's own API (``django.tasks``), run by this
app's worker through ``django_tasks.backends.DatabaseBackend``.

Imported by the tests app on Django 6 only (tests/apps.py): Django 5.2 has
no ``django.tasks``.
"""

import os

from django.tasks import task

from .models import Execution


@task
def add(x, y):
    return x + y


@task
def fail(text):
    raise ValueError(text)


@task
def record(key):
    Execution.objects.create(key=key, task_id="", pid=os.getpid())
    return key


@task(takes_context=True)
def who_am_i(context, label):
    result = context.task_result
    return {"label": label, "id": result.id, "attempt": context.attempt,
            "status": result.status, "worker_ids": result.worker_ids,
            "queue_name": result.task.queue_name}


@task
async def async_multiply(x, y):
    return x * y


@task(takes_context=True)
async def async_who_am_i(context):
    return {"id": context.task_result.id, "attempt": context.attempt}


@task
def returns_a_set():
    return {1, 2}


@task(queue_name="django-other", priority=7)
def on_the_other_queue():
    return "other"
