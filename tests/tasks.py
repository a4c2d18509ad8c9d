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
def exit_on_first_delivery(self, key):
    """Kills its own process the first time it runs, like a segfault would."""
    if self.request.delivery_count <= 1:
        os._exit(13)
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    return key


@task
def always_exit():
    os._exit(13)


@task(bind=True)
def slow_record(self, key, seconds, seconds_again=None):
    """``seconds_again``, if given: how long a delivery after the first sleeps."""
    if seconds_again is not None and self.request.delivery_count > 1:
        seconds = seconds_again
    time.sleep(seconds)
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    return key


@task(soft_time_limit=0.5)
def cleans_up_on_soft_limit(seconds):
    from django_tasks.exceptions import SoftTimeLimitExceeded

    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        Note.objects.create(text="cleaned up")
        return "cleaned up"
    return "finished"


@task(time_limit=1)
def ignores_limits(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: B036 (this task deliberately swallows every limit)
            continue
    return "survived"


@task
async def async_add(x, y):
    import asyncio

    await asyncio.sleep(0.01)
    return x + y


@task(bind=True)
def report_pid(self):
    return os.getpid()


@task(bind=True)
def spin_record(self, key, seconds):
    """Runs Python code in short steps (so even a thread can be interrupted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    return key


@task(bind=True)
def record_tick(self):
    """Record which periodic tick sent this run (one row per execution)."""
    tick = self.request.headers.get("periodic_tick", "")
    Execution.objects.create(key=tick, task_id=self.request.id, pid=os.getpid())
    return tick


from .canvas_tasks import *  # noqa: E402, F403  (workers import tests.tasks only)
from .poison_tasks import *  # noqa: E402, F403
from .taskclass_tasks import *  # noqa: E402, F403


@task
def needs_note(text):
    """Fails until a ``Note`` with ``text`` exists: a failure a retry can fix."""
    if not Note.objects.filter(text=text).exists():
        raise LookupError(f"no note {text!r} yet")
    return f"found {text}"


@task
def raise_message(text):
    raise ValueError(text)


@task
def make_text(length, char="x"):
    """Returns a text of ``length`` characters (a result of a chosen size)."""
    return char * length


@task
def raise_long(length):
    raise ValueError("y" * length)


@task(ignore_result=True)
def add_ignoring_result(x, y):
    return x + y


from .async_tasks import *  # noqa: E402, F403
from .delivery_tasks import *  # noqa: E402, F403


def _span(kind, key, seconds):
    """Sleep ``seconds`` and note when this run began and ended (concurrency tests)."""
    started = time.time()
    if seconds >= 1:
        # A long run says it has begun, for tests that interrupt it mid-run.
        Note.objects.create(text=f"begun-{kind} {key} {os.getpid()}")
    time.sleep(seconds)
    Note.objects.create(text=f"{kind} {key} {started!r} {time.time()!r} {os.getpid()}")
    return key


@task(bind=True, concurrency_limit=2,
      concurrency_key=lambda args, kwargs: args[0] if args else kwargs['key'])
def limited_span(self, key, seconds=0.0, seconds_again=None):
    """``seconds_again``, if given: how long a delivery after the first takes."""
    if seconds_again is not None and self.request.delivery_count > 1:
        seconds = seconds_again
    return _span("limited", key, seconds)


@task(concurrency_limit=1)
def one_at_a_time(key, seconds=0.0):
    return _span("single", key, seconds)


@task
def unlimited_span(key, seconds=0.0):
    return _span("unlimited", key, seconds)


@task(bind=True, concurrency_limit=1, max_retries=1)
def limited_retry(self, key, seconds=0.0):
    """Retries once, then notes its run: the retry keeps its key."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return _span("retried", key, seconds)


# Rate-limited tasks (test_rate_limit.py).
from .rate_tasks import *  # noqa: E402, F403
from .unique_tasks import *  # noqa: E402, F403
