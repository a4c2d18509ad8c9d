"""``async def`` tasks for tests/test_async.py (imported by tests.tasks)."""

import asyncio
import os
import sys
import time

from django_tasks import task
from django_tasks.exceptions import SoftTimeLimitExceeded, TaskRevokedError

from .models import Note

# name -> asyncio.Event, on the worker's shared event loop.
_meetings = {}


def _meeting(name):
    if name not in _meetings:
        _meetings[name] = asyncio.Event()
    return _meetings[name]


@task(bind=True)
async def meet(self, name, other):
    """Arrive, then wait for ``other`` to arrive: two of these finish only
    when both are on the same event loop at the same time."""
    _meeting(name).set()
    async with asyncio.timeout(30):
        await _meeting(other).wait()
    return {"name": name, "id": self.request.id, "pid": os.getpid(),
            "loop": id(asyncio.get_running_loop())}


class _Client:
    """Stands for an async client made once per process (an HTTP session, a
    connection pool): bound to the event loop it was made on."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.calls = 0


_client = None


@task
async def use_shared_client():
    global _client
    if _client is None:
        _client = _Client()
    if _client.loop is not asyncio.get_running_loop():
        raise RuntimeError("the shared client is bound to another event loop")
    async with _client.lock:
        _client.calls += 1
        return {"calls": _client.calls, "pid": os.getpid()}


@task
async def async_cleans_up(seconds):
    try:
        await asyncio.sleep(seconds)
    except SoftTimeLimitExceeded:
        await Note.objects.acreate(text="async cleaned up")
        return "cleaned up"
    return "finished"


@task
async def async_sleep(seconds):
    await asyncio.sleep(seconds)
    return seconds


@task
async def async_sees_revoke(key, seconds):
    try:
        await asyncio.sleep(seconds)
    except TaskRevokedError:
        await Note.objects.acreate(text=f"revoked {key}")
        raise
    return "finished"


@task
async def async_fails(text):
    await asyncio.sleep(0)
    raise ValueError(text)


@task
async def async_exits():
    await asyncio.sleep(0)
    sys.exit(3)


@task
async def stops_the_loop():
    asyncio.get_running_loop().stop()
    await asyncio.sleep(0.05)
    return "still running"


@task
async def blocks_the_loop(seconds):
    time.sleep(seconds)  # noqa: ASYNC251 (the point: a task that blocks the loop)
    return "woke up"


@task(atomic=True)
async def atomic_async_note(text, fail):
    """Writes through Django's async ORM and enqueues, then maybe fails."""
    from .tasks import add

    await Note.objects.acreate(text=text)
    add.delay(1, 1)                    # plain .delay() on the event loop
    await add.adelay(2, 2)
    if fail:
        raise ValueError("undo")
    return text


@task
async def enqueues_from_the_loop(x):
    """A child enqueued with plain .delay() from a coroutine: its parent_id is this task."""
    from .tasks import add

    result = add.delay(x, x)
    return result.id


@task
def wait_for_note(text, seconds):
    """Returns once a note ``text`` exists (the test writes it)."""
    deadline = time.monotonic() + seconds
    while not Note.objects.filter(text=text).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no note {text!r}")
        time.sleep(0.05)
    return text


@task
async def async_echo(value):
    await asyncio.sleep(0)
    return value


@task
async def async_sees_note(text):
    """Whether a note ``text`` exists, read through Django's async ORM."""
    return await Note.objects.filter(text=text).aexists()


@task
async def async_task_group(seconds):
    """Awaits inside an asyncio.TaskGroup, which wraps what interrupts it."""
    async with asyncio.TaskGroup() as group:
        group.create_task(asyncio.sleep(seconds))
        await asyncio.sleep(seconds)
    return "finished"


@task(bind=True)
async def async_reports_progress(self, key):
    self.update_state(state="PROGRESS", meta={"done": 1})
    while not await Note.objects.filter(text=f"go-{key}").aexists():
        await asyncio.sleep(0.02)
    return "finished"
