"""A backend for Django 6's task framework (``django.tasks``) on this app's queue.

    TASKS = {"default": {"BACKEND": "django_tasks.backends.DatabaseBackend",
                         "QUEUES": ["default"]}}

Code written against Django's API (``@task``, ``.enqueue()``,
``.get_result()``) then runs on ``runworker``: ``enqueue`` writes one of
this app's messages (in the caller's transaction, like ``.delay()``) and
the worker runs it, stores its result and reports it back as Django's
``TaskResult``.

How the worker finds the function: every ``django.tasks.Task`` made for
this backend (its module imported) registers a runner task under the
function's module path (``Task.module_path``), the name its messages carry.
The worker imports every installed app's ``tasks.py`` at start, as it does
for ``@django_tasks.task``; a Django task defined elsewhere must be
imported by the app (``AppConfig.ready``), or the worker ends it FAILED
with ``NotRegistered``. Nothing is imported by a name read from a row.

Only this module imports ``django.tasks``, which exists from Django 6.0 on.
"""

import dataclasses
import inspect
import json
from traceback import format_exception

import django

try:
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError as exc:  # Django 5.2: no django.tasks
    raise ImportError(
        "django_tasks.backends.DatabaseBackend needs Django 6.0 or later (it is a backend "
        f"for django.tasks, new in Django 6.0); Django {django.get_version()} is installed. "
        "On Django 5.2 use django_tasks' own @task API.") from exc

from django.apps import apps
from django.core import checks
from django.utils import timezone
from django.utils.json import normalize_json

from . import states
from .arguments import check_arguments
from .conf import settings
from .exceptions import DecodeError
from .message_builder import MessageBuilder
from .messages import MAX_QUEUE_NAME, checked_queue
from .queue import enqueue as write_messages
from .queue import get_backend as get_queue
from .registry import tasks as registry
from .serialization import loads, parse_json
from .task import Task as RunnerTask

# Longest task name the queue and result tables hold.
MAX_TASK_NAME = 255

# Our final states, as Django's.
FINAL_STATUS = {
    states.SUCCESS: TaskResultStatus.SUCCESSFUL,
    states.FAILURE: TaskResultStatus.FAILED,
    states.REVOKED: TaskResultStatus.FAILED,
}
# States of a row whose task will run (again): waiting, or handed back for a retry.
WAITING_STATES = frozenset((states.PENDING, states.RECEIVED, states.RETRY))

KNOWN_OPTIONS = frozenset()


class DatabaseBackend(BaseTaskBackend):
    """Django's task backend API on this app's queue, worker and results."""

    supports_defer = True        # run_after becomes the message's eta
    supports_async_task = True   # async def functions run on the worker's event loop
    supports_get_result = True   # results are rows any process can read
    supports_priority = True     # the claim takes higher priorities first

    def validate_task(self, task):
        super().validate_task(task)
        try:
            checked_queue(task.queue_name)
        except ValueError as exc:
            raise InvalidTask(str(exc)) from None
        if len(task.module_path) > MAX_TASK_NAME:
            raise InvalidTask(f"the task's module path is longer than {MAX_TASK_NAME} "
                              f"characters: {task.module_path[:80]}...")
        # Every Task made for this backend (at import) can be run by a worker
        # that imported it.
        runner_for(task)

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        runner = runner_for(task)
        # Django's TaskResult makes the arguments plain JSON (or raises): the
        # message holds the same values the result reports.
        result = TaskResult(
            task=task, id="", status=TaskResultStatus.READY, enqueued_at=None,
            started_at=None, finished_at=None, last_attempted_at=None, args=args,
            kwargs=kwargs, backend=self.alias, errors=[], worker_ids=[])
        # A call that does not fit the function fails here, not on a worker.
        check_arguments(runner, result.args, result.kwargs)
        message = MessageBuilder(runner).build(
            result.args, result.kwargs, queue=task.queue_name, priority=task.priority,
            eta=task.run_after)
        write_messages([message])
        result = dataclasses.replace(result, id=message.task_id,
                                     enqueued_at=message.created_at)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id):
        queue = get_queue()
        # The message first: the transaction that deletes it stores the
        # final row, so a message gone means the row read next is final.
        message = queue.get_message(result_id)
        row = queue.get_result(result_id)
        if row is None and message is None:
            raise TaskResultDoesNotExist(result_id)
        name = row.task_name if row is not None else message.task_name
        runner = registry.get(name)
        django_task = getattr(runner, "django_task", None)
        if django_task is None:
            raise TaskResultDoesNotExist(
                f"{result_id} is a task of {name!r}, which is not a django.tasks Task "
                "imported in this process")
        if row is not None and row.state in FINAL_STATUS:
            return self._finished_result(django_task, row)
        return self._unfinished_result(django_task, message, row)

    def check(self, **kwargs):
        errors = []
        if not apps.is_installed("django_tasks"):
            errors.append(checks.Error(
                f"TASKS[{self.alias!r}] uses django_tasks.backends.DatabaseBackend, but "
                "django_tasks is not in INSTALLED_APPS",
                hint="Add \"django_tasks\" to INSTALLED_APPS (its tables hold the queue and "
                     "the results) and run migrate.", id="django_tasks.E201"))
        unknown = sorted(set(self.options) - KNOWN_OPTIONS)
        if unknown:
            errors.append(checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] has keys DatabaseBackend does not know: "
                f"{', '.join(map(repr, unknown))}",
                hint="It takes no OPTIONS: the database, serializer and worker settings "
                     "are DJANGO_TASKS's.", id="django_tasks.E202"))
        for name in sorted(self.queues):
            try:
                checked_queue(name)
            except ValueError:
                errors.append(checks.Error(
                    f"TASKS[{self.alias!r}]['QUEUES'] has {name!r:.80}, which no worker can "
                    "consume", hint=f"Give names of 1 to {MAX_QUEUE_NAME} characters, "
                    "without commas or surrounding spaces.", id="django_tasks.E203"))
        return errors

    # -- results ----------------------------------------------------------

    def _finished_result(self, django_task, row):
        status = FINAL_STATUS[row.state]
        errors = []
        if status == TaskResultStatus.FAILED:
            errors.append(TaskError(exception_class_path=_exception_path(row.result),
                                    traceback=row.traceback or ""))
        result = self._result(
            django_task, row.task_id, status, queue_name=row.queue,
            enqueued_at=row.date_created, started_at=row.date_started,
            finished_at=row.date_done, args=_json_or(row.args, []),
            kwargs=_json_or(row.kwargs, {}),
            worker_ids=_worker_ids(row.worker, row.deliveries), errors=errors)
        if status == TaskResultStatus.SUCCESSFUL:
            value = None if row.result is None else \
                loads(row.result, row.content_type, settings.ACCEPT_CONTENT)
            object.__setattr__(result, "_return_value", value)
        return result

    def _unfinished_result(self, django_task, message, row):
        if message is not None:
            running = message.claimed_by is not None and message.started_at is not None
            body = _json_or(message.body, {}) if message.content_type == "json" else {}
            worker = _worker_name(message.claimed_by) if running else ""
            return self._result(
                django_task, message.task_id,
                TaskResultStatus.RUNNING if running else TaskResultStatus.READY,
                queue_name=message.queue, priority=message.priority,
                run_after=message.available_at if message.available_at > message.created_at
                else None,
                enqueued_at=message.created_at,
                started_at=message.started_at if running else None, finished_at=None,
                args=body.get("args", []), kwargs=body.get("kwargs", {}),
                worker_ids=_worker_ids(worker, message.deliveries))
        # The row alone: a task's own state (update_state) or one not yet final.
        status = TaskResultStatus.READY if row.state in WAITING_STATES \
            else TaskResultStatus.RUNNING
        return self._result(
            django_task, row.task_id, status, queue_name=row.queue,
            enqueued_at=row.date_created, started_at=row.date_started, finished_at=None,
            args=_json_or(row.args, []), kwargs=_json_or(row.kwargs, {}),
            worker_ids=_worker_ids(row.worker, row.deliveries))

    def _result(self, django_task, result_id, status, *, queue_name, enqueued_at,
                started_at, finished_at, args, kwargs, worker_ids, errors=(),
                priority=None, run_after=None):
        return TaskResult(
            task=_as_sent(django_task, queue_name, priority, run_after), id=result_id,
            status=status, enqueued_at=enqueued_at, started_at=started_at,
            finished_at=finished_at, last_attempted_at=started_at,
            args=args if isinstance(args, list) else [],
            kwargs=kwargs if isinstance(kwargs, dict) else {},
            backend=self.alias, errors=list(errors), worker_ids=worker_ids)


# -- the worker's side ----------------------------------------------------

def runner_for(django_task):
    """The task (of this app's kind) that runs ``django_task``'s function on a
    worker, registered under its module path; made once per function."""
    name = django_task.module_path
    runner = registry.get(name)
    known = getattr(runner, "django_task", None)
    if known is not None and known.func is django_task.func:
        return runner
    if runner is not None and known is None:
        raise InvalidTask(f"{name} is also a django_tasks @task: decorate a function "
                          "with one of the two task APIs, not both")
    runner = RunnerTask(_runner_function(django_task), name=name, bind=True,
                        serializer="json", max_retries=0)
    runner.django_task = django_task
    return registry.register(runner)


def _runner_function(django_task):
    """The runner's body: Django's function called as Django's backends call
    it (a ``TaskContext`` first if it takes one; the return value made plain
    JSON), the ``django.tasks`` signals sent around it."""
    func = django_task.func

    def start(runner, args, kwargs):
        result = _running_result(django_task, runner.request, args, kwargs)
        task_started.send(DatabaseBackend, task_result=result)
        context = (TaskContext(task_result=result),) if django_task.takes_context else ()
        return result, context

    if inspect.iscoroutinefunction(func):
        async def run(runner, *args, **kwargs):
            result, context = start(runner, args, kwargs)
            try:
                return _succeeded(result, await func(*context, *args, **kwargs))
            except Exception as exc:
                _failed(result, exc)
                raise
    else:
        def run(runner, *args, **kwargs):
            result, context = start(runner, args, kwargs)
            try:
                return _succeeded(result, func(*context, *args, **kwargs))
            except Exception as exc:
                _failed(result, exc)
                raise

    # What the caller passes (checked at enqueue): the function's parameters
    # without the context the worker gives.
    parameters = list(inspect.signature(func).parameters.values())
    if django_task.takes_context:
        parameters = parameters[1:]
    runner_parameter = inspect.Parameter("runner", inspect.Parameter.POSITIONAL_ONLY)
    run.__signature__ = inspect.Signature([runner_parameter, *parameters])
    run.__name__, run.__qualname__ = func.__name__, func.__qualname__
    run.__module__, run.__doc__ = func.__module__, func.__doc__
    return run


def _running_result(django_task, request, args, kwargs):
    """The TaskResult a running task's context holds. When it was enqueued
    is not known to the worker here (``enqueued_at`` is None): get_result()
    reads it."""
    now = timezone.now()
    return TaskResult(
        task=_as_sent(django_task, request.queue, request.priority, None),
        id=request.id, status=TaskResultStatus.RUNNING, enqueued_at=None,
        started_at=now, finished_at=None, last_attempted_at=now, args=list(args),
        kwargs=dict(kwargs), backend=django_task.backend, errors=[],
        worker_ids=_worker_ids(request.hostname or "", request.delivery_count))


def _succeeded(result, value):
    # As Django's own backends: a value that is not plain JSON fails the task.
    value = normalize_json(value)
    object.__setattr__(result, "_return_value", value)
    _finish(result, TaskResultStatus.SUCCESSFUL)
    return value


def _failed(result, exc):
    cls = type(exc)
    result.errors.append(TaskError(exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
                                   traceback="".join(format_exception(exc))))
    _finish(result, TaskResultStatus.FAILED)


def _finish(result, status):
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    task_finished.send(DatabaseBackend, task_result=result)


# -- reading rows ---------------------------------------------------------

def _as_sent(django_task, queue_name, priority, run_after):
    """``django_task`` with the options its message was sent with, where they
    are known and still valid here (else as defined)."""
    changes = {key: value for key, value in (("queue_name", queue_name),
                                             ("priority", priority),
                                             ("run_after", run_after))
               if value is not None and value != getattr(django_task, key)}
    if not changes:
        return django_task
    try:
        return django_task.using(**changes)
    except InvalidTask:  # e.g. a queue since taken out of QUEUES
        return django_task


def _worker_ids(worker, deliveries):
    """Django counts attempts as ``len(worker_ids)``: the worker of the last
    delivery once per delivery (earlier workers' names are not kept)."""
    return [worker] * max(deliveries or 0, 1) if worker else []


def _worker_name(worker_id):
    from .models import Worker

    row = Worker.objects.using(settings.DATABASE).filter(id=worker_id).only("hostname").first()
    return row.hostname if row is not None else str(worker_id)


def _exception_path(text):
    """``module.Class`` of a stored exception (see serialization.exception_to_dict)."""
    try:
        data = parse_json(text or "")
    except DecodeError:
        data = None
    if not isinstance(data, dict):
        return "builtins.Exception"
    module = data.get("exc_module") if isinstance(data.get("exc_module"), str) else "builtins"
    name = data.get("exc_type") if isinstance(data.get("exc_type"), str) else "Exception"
    return f"{module}.{name}"


def _json_or(text, default):
    """Stored arguments as plain JSON (the form Django's TaskResult holds)."""
    if not text:
        return default
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return default
