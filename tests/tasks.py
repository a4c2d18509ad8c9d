"""Tasks the test suite enqueues; workers started by the tests import them."""

import os
import time

from django_tasks import task

from .models import Execution, Note


@task
def add(x, y):
    return x + y


@task
def fail_with_type_error(value):
    raise TypeError(f"bad value: {value!r}")


@task
def echo(value):
    return value


@task(bind=True)
def record(self, key):
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    return key


@task
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


@task
def write_note(text):
    Note.objects.create(text=text)
    return text


@task
def return_unserializable():
    return object()


@task(bind=True)
def who_am_i(self):
    return {"id": self.request.id, "retries": self.request.retries,
            "queue": self.request.queue, "hostname": self.request.hostname}


@task(bind=True)
def record_tick(self):
    """Record which periodic tick sent this run (one row per execution)."""
    tick = self.request.headers.get("periodic_tick", "")
    Execution.objects.create(key=tick, task_id=self.request.id, pid=os.getpid())
    return tick
