"""Tasks for the canvas and retry tests (imported by tests/tasks.py)."""

import json
import os
import time

from django_tasks import task

from .models import Execution, Note


class Flaky(Exception):
    pass


@task
def fail_with_value_error(*args):
    raise ValueError(f"failed on {args!r}")


@task
def sum_and_record(numbers, key):
    """A chord body that leaves a row each time it runs (exactly-once checks)."""
    Execution.objects.create(key=key, task_id=str(len(numbers)), pid=os.getpid())
    return sum(numbers)


@task
def note_error(task_id, key):
    """An errback: records which task failed."""
    Note.objects.create(text=f"{key}:{task_id}")
    return task_id


@task
def note_value(value, key):
    """A success callback: records the value it was linked with."""
    Note.objects.create(text=f"{key}:{value!r}")
    return value


@task(bind=True, max_retries=5)
def succeed_on_third_attempt(self, key, countdown):
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    if self.request.retries < 2:
        raise self.retry(exc=Flaky(f"attempt {self.request.retries + 1}"), countdown=countdown)
    return f"done after {self.request.retries} retries"


@task(bind=True)
def retry_without_exc(self, max_retries):
    raise self.retry(countdown=0, max_retries=max_retries)


@task(bind=True)
def retry_past_limit_with_exc(self):
    raise self.retry(exc=Flaky("original"), countdown=0, max_retries=1)


@task(autoretry_for=(Flaky,), retry_backoff=2, retry_backoff_max=5, retry_jitter=False,
      max_retries=4)
def always_flaky(key):
    Execution.objects.create(key=key, task_id="-", pid=os.getpid())
    raise Flaky(f"flaky {key}")


@task(bind=True, atomic=True)
def atomic_note_then_hang(self, text):
    """Writes a row, then on its first delivery says so and hangs (to be killed)."""
    Note.objects.create(text=text)
    if self.request.delivery_count <= 1:
        print(f"halfway through {text}", flush=True)
        time.sleep(120)
    return text


@task
def note_failure(request, exc, traceback, key):
    """An errback in Celery's current style: records what it was called with."""
    # A note holds 200 characters: whether the traceback is the exception's.
    Note.objects.create(text=json.dumps({
        "key": key, "id": request.id, "task": request.task.rpartition(".")[2],
        "args": request.args, "root": request.root_id == request.id,
        "exc": f"{type(exc).__name__}: {exc}"[:45], "raisable": isinstance(exc, Exception),
        "tb": None if traceback is None else traceback.startswith("Traceback")
        and traceback.strip().endswith(f"{type(exc).__name__}: {exc}")}, separators=(",", ":")))
    return request.id


@task(bind=True)
def bound_note_failure(self, request, exc, traceback):
    """A bound errback in Celery's current style (``self`` first)."""
    Note.objects.create(text=f"bound:{request.id}:{type(exc).__name__}:{self.request.id}")


@task(time_limit=1)
def sleep_past_time_limit(seconds):
    time.sleep(seconds)


@task
def identity(value):
    return value
