"""Tasks of the Task-class tests: handlers, update_state, replace, Reject, Ignore."""

import os
import time

from django_tasks import Task, task
from django_tasks.exceptions import Ignore, Reject

from .models import Execution, HookCall, Note
from .tasks import add


def _record(hook, task_id, **data):
    HookCall.objects.create(task_id=task_id, hook=hook, data=data)


def _einfo(einfo):
    if einfo is None:
        return None
    return {"type": einfo.type.__name__, "exception": repr(einfo.exception),
            "has_traceback": "Traceback (most recent call last)" in einfo.traceback}


class RecordingTask(Task):
    """Records every handler call with its arguments."""

    def before_start(self, task_id, args, kwargs):
        _record("before_start", task_id, args=list(args), kwargs=kwargs,
                request_id=self.request.id)

    def on_success(self, retval, task_id, args, kwargs):
        _record("on_success", task_id, retval=retval, args=list(args), kwargs=kwargs)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        _record("on_failure", task_id, exc=repr(exc), args=list(args), kwargs=kwargs,
                einfo=_einfo(einfo), same=einfo.exception is exc)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        _record("on_retry", task_id, exc=repr(exc), args=list(args), kwargs=kwargs,
                einfo=_einfo(einfo))

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        _record("after_return", task_id, status=status, retval=repr(retval), args=list(args),
                kwargs=kwargs, einfo=_einfo(einfo))


@task(base=RecordingTask)
def hooked_add(x, y=0):
    return x + y


@task(base=RecordingTask)
def hooked_fail(text):
    raise ValueError(text)


@task(base=RecordingTask, bind=True, default_retry_delay=0)
def hooked_retry_once(self, text):
    if self.request.retries == 0:
        try:
            raise KeyError(text)
        except KeyError as exc:
            raise self.retry(exc=exc) from None
    return text


class DefaultsTask(Task):
    """Option defaults as class attributes, as in Celery."""

    max_retries = 5
    autoretry_for = (ZeroDivisionError,)
    default_retry_delay = 0
    queue = "default"


@task(base=DefaultsTask, bind=True)
def divide_until_third(self):
    if self.request.retries < 2:
        return 1 / 0
    return self.request.retries


@task(base=DefaultsTask, max_retries=1)
def defaults_overridden():
    return "ok"


class BrokenSuccessTask(RecordingTask):
    def on_success(self, retval, task_id, args, kwargs):
        raise RuntimeError("on_success broke")


@task(base=BrokenSuccessTask)
def broken_on_success(x):
    return x


class BrokenFailureTask(RecordingTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        raise RuntimeError("on_failure broke")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        raise RuntimeError("after_return broke")


@task(base=BrokenFailureTask)
def broken_on_failure(text):
    raise ValueError(text)


class BrokenStartTask(RecordingTask):
    def before_start(self, task_id, args, kwargs):
        raise RuntimeError("before_start broke")


@task(base=BrokenStartTask)
def broken_before_start():
    _record("body", "?")
    return "ran"


# -- update_state --------------------------------------------------------------

def wait_for_note(text, timeout=60.0):
    """Block until the test writes Note(text) (the test's go-ahead)."""
    deadline = time.monotonic() + timeout
    while not Note.objects.filter(text=text).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no note {text!r}")
        time.sleep(0.02)


@task(bind=True)
def reports_progress(self, key):
    self.update_state(state="PROGRESS", meta={"done": 1, "total": 2})
    wait_for_note(f"go-{key}")
    return "finished"


@task(bind=True, atomic=True)
def reports_progress_atomically(self, key):
    Note.objects.create(text=f"written-{key}")
    self.update_state(state="PROGRESS", meta={"done": 1, "total": 2})
    wait_for_note(f"go-{key}")
    return "finished"


@task(bind=True, default_retry_delay=0)
def progress_then_retry(self, key):
    self.update_state(state="PROGRESS", meta={"attempt": self.request.retries})
    if self.request.retries == 0:
        wait_for_note(f"retry-{key}")
        raise self.retry()
    wait_for_note(f"go-{key}")
    return self.request.retries


@task(bind=True)
def bad_update_state(self, state, meta=None):
    self.update_state(state=state, meta=meta)
    return "unreachable"


@task(bind=True)
def bad_meta(self):
    self.update_state(state="PROGRESS", meta={"object": object()})
    return "unreachable"


@task(bind=True)
def updates_other(self, other_id):
    self.update_state(task_id=other_id, state="WAITING-FOR-YOU", meta=[1, 2])
    return "ok"


# -- Ignore, Reject, replace ------------------------------------------------------

@task(bind=True)
def ignores_after_progress(self):
    self.update_state(state="PROGRESS", meta={"step": 3})
    raise Ignore()


@task
def ignores():
    raise Ignore()


@task
def rejects(reason):
    raise Reject(reason, requeue=False)


@task(bind=True)
def rejects_with_requeue(self, key, times):
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    if Execution.objects.filter(key=key).count() <= times:
        raise Reject("not now", requeue=True)
    return self.request.delivery_count


@task(bind=True)
def replaced_by_add(self, x):
    return self.replace(add.s(x, 10))


@task(bind=True)
def replaced_by_chain(self, x):
    return self.replace(add.s(x, 1) | add.s(2))


@task(bind=True)
def replaced_by_group(self, *xs):
    from django_tasks import group

    return self.replace(group(add.s(x, x) for x in xs))


@task
def total(numbers):
    return sum(numbers)


@task(bind=True)
def replaced_by_chord(self, *xs):
    from django_tasks import chord

    return self.replace(chord([add.s(x, x) for x in xs], total.s()))


@task(bind=True)
def replaced_by_chain_to_group(self, x):
    from django_tasks import group

    return self.replace(add.s(x, 1) | group(add.s(1), add.s(2)))


@task(bind=True)
def replaced_by_starmap(self):
    return self.replace(add.starmap([(1, 1)]))


@task(bind=True)
def replaced_by_empty_chain(self):
    from django_tasks import chain

    return self.replace(chain())


@task(bind=True)
def replaced_by_chord_member(self, group_id):
    return self.replace(add.s(1, 1).set(chord=group_id))


@task(bind=True, atomic=True)
def atomic_note_then_replace(self, key):
    Note.objects.create(text=key)
    return self.replace(add.s(1, 2))
