"""What makes a periodic task valid: shared by the system checks (settings
schedules) and the model's ``clean()`` (the admin), so both say the same thing.

Every function returns messages (or raises ``ValueError``) that name the
schedule and say what to change.
"""

import inspect
import json
from datetime import timedelta

from .. import serialization
from ..exceptions import EncodeError
from ..registry import tasks as registry
from .schedules import crontab, every

ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "catch_up"}
OPTION_KEYS = {"queue", "priority", "expires"}
CATCH_UP_CHOICES = ("once", "all")


def parse_json_arguments(args_text, kwargs_text):
    """Decode the admin's JSON ``args``/``kwargs``; returns ``(args, kwargs, errors)``."""
    errors = {}
    args = _parse_json("args", args_text or "[]", list, "a JSON list, e.g. [2, 3]", errors)
    kwargs = _parse_json("kwargs", kwargs_text or "{}", dict,
                         'a JSON object, e.g. {"x": 2}', errors)
    return args, kwargs, errors


def _parse_json(field, text, kind, shape, errors):
    try:
        value = serialization.loads(text, "json", ["json"])
    except serialization.DecodeError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, json.JSONDecodeError) else exc
        errors[field] = f"Not valid JSON ({cause}); enter {shape}."
        return None
    if not isinstance(value, kind):
        errors[field] = f"Must be {shape}, not {type(value).__name__}."
        return None
    return value


def call_errors(task_name, args, kwargs):
    """Why ``task_name(*args, **kwargs)`` cannot be sent, or ``[]``.

    Checks the task is registered and that the arguments fit its signature,
    so a typo fails when the schedule is saved, not at 3 a.m. in a worker.
    """
    task = registry.get(task_name)
    if task is None:
        return [f"No task named {task_name!r} is registered. Registered tasks: "
                f"{', '.join(sorted(registry)) or '(none)'}."]
    try:
        parameters = inspect.signature(task.run)
    except (TypeError, ValueError):
        return []  # a callable without a signature: nothing to check it against
    bound_args = (None, *args) if task.bind else tuple(args)
    try:
        parameters.bind(*bound_args, **kwargs)
    except TypeError as exc:
        return [f"The arguments do not fit {task_name}{_public_signature(task)}: {exc}."]
    return []


def _public_signature(task):
    signature = inspect.signature(task.run)
    if task.bind:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return str(signature)


def settings_entry_errors(name, entry):
    """Messages for one ``BEAT_SCHEDULE`` entry (empty when it is valid)."""
    where = f"BEAT_SCHEDULE[{name!r}]"
    if not isinstance(name, str) or not name or len(name) > 200:
        return [f"{where}: names must be non-empty strings of at most 200 characters."]
    if not isinstance(entry, dict):
        return [f"{where} must be a dict like {{'task': 'proj.tasks.add', "
                "'schedule': timedelta(seconds=30)}."]
    errors = []
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        errors.append(f"{where} has unknown keys {unknown}; allowed: {sorted(ENTRY_KEYS)}.")
    if not isinstance(entry.get("task"), str) or not entry.get("task"):
        errors.append(f"{where}['task'] must be the name of a task, e.g. 'proj.tasks.add'.")
    if "schedule" not in entry:
        errors.append(f"{where} needs a 'schedule': crontab(...), a timedelta or seconds.")
    else:
        errors += _schedule_errors(where, entry["schedule"])
    errors += _argument_errors(where, entry)
    errors += _option_errors(where, entry.get("options", {}))
    if entry.get("catch_up", "once") not in CATCH_UP_CHOICES:
        errors.append(f"{where}['catch_up'] must be one of {list(CATCH_UP_CHOICES)}: 'once' "
                      "runs missed ticks once, 'all' runs every missed tick.")
    return errors


def _schedule_errors(where, schedule):
    if isinstance(schedule, crontab):
        return []
    try:
        every(schedule)
    except ValueError as exc:
        return [f"{where}['schedule']: {exc}; use crontab(...), a timedelta or seconds."]
    return []


def _argument_errors(where, entry):
    args, kwargs = entry.get("args", ()), entry.get("kwargs", {})
    errors = []
    if not isinstance(args, (list, tuple)):
        errors.append(f"{where}['args'] must be a list or tuple, not {type(args).__name__}.")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        errors.append(f"{where}['kwargs'] must be a dict with string keys.")
    if errors:
        return errors
    try:
        serialization.dumps({"args": list(args), "kwargs": kwargs}, "json", what="arguments")
    except EncodeError as exc:
        errors.append(f"{where}: {exc}.")
    return errors


def _option_errors(where, options):
    if not isinstance(options, dict):
        return [f"{where}['options'] must be a dict."]
    errors = []
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        errors.append(f"{where}['options'] has unknown keys {unknown}; "
                      f"allowed: {sorted(OPTION_KEYS)}.")
    queue = options.get("queue")
    if queue is not None and not (isinstance(queue, str) and queue):
        errors.append(f"{where}['options']['queue'] must be a non-empty string.")
    priority = options.get("priority")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
        errors.append(f"{where}['options']['priority'] must be an integer.")
    expires = options.get("expires")
    if expires is not None and not _positive_seconds(expires):
        errors.append(f"{where}['options']['expires'] must be a positive number of seconds "
                      "or timedelta.")
    return errors


def _positive_seconds(value):
    if isinstance(value, timedelta):
        return value > timedelta(0)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def expires_seconds(value):
    return value.total_seconds() if isinstance(value, timedelta) else value


def beat_schedule_errors(schedule):
    """Messages for every invalid entry of ``BEAT_SCHEDULE`` (a dict)."""
    errors = []
    for name, entry in schedule.items():
        errors += settings_entry_errors(name, entry)
    return errors


def unregistered_task_warnings(schedule):
    """Entries naming a task this process does not know (a typo fails every tick)."""
    return [f"BEAT_SCHEDULE[{name!r}]['task'] is {entry['task']!r}, which no installed "
            "app registers; workers will fail every run with NotRegistered."
            for name, entry in schedule.items()
            if isinstance(entry, dict) and isinstance(entry.get("task"), str)
            and entry["task"] and entry["task"] not in registry]
