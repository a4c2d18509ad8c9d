"""System checks for the ``DJANGO_TASKS`` setting (ids ``django_tasks.E0xx``),
and notes on a Celery project's settings and task options (``W03x``/``I03x``)."""

from datetime import timedelta

from django.conf import settings as django_settings
from django.core import checks

from . import limits
from .beat.validation import beat_schedule_errors, unregistered_task_warnings
from .celery_settings import (
    MAPPED,
    RESULT_SERIALIZER,
    TIMEZONE,
    celery_source,
    ignored_settings,
    shadowed_settings,
)
from .conf import DEFAULTS, settings
from .registry import tasks as registry
from .serialization import SERIALIZERS, accepts, by_name_or_content_type

_ID = "django_tasks.E{:03d}"


def _error(number, msg, hint=None):
    return checks.Error(msg, hint=hint, obj="settings.DJANGO_TASKS", id=_ID.format(number))


def _is_number(value, allow_none=False):
    if value is None:
        return allow_none
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@checks.register(checks.Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    raw = getattr(django_settings, "DJANGO_TASKS", None)
    if raw is None:
        raw = {}  # the defaults, and maybe CELERY_* settings, still need checking
    if not isinstance(raw, dict):
        return [_error(1, "DJANGO_TASKS must be a dict.",
                       hint=f"Got {type(raw).__name__}.")]
    return [_named_by_source(error, raw) for error in _settings_errors(raw)]


def _named_by_source(error, raw):
    """An error about a value read from a CELERY_* setting names that setting."""
    for key in MAPPED:
        if key in raw or key not in error.msg:
            continue
        source = celery_source(key)
        if source is not None:
            error.msg = error.msg.replace(f"DJANGO_TASKS[{key!r}]",
                                          f"{source} (read as DJANGO_TASKS[{key!r}])")
            error.obj = f"settings.{source}"
    return error


def _settings_errors(raw):
    errors = []
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(_error(2, f"Unknown DJANGO_TASKS keys: {', '.join(unknown)}.",
                             hint=f"Known keys: {', '.join(sorted(DEFAULTS))}."))
    if settings.DATABASE not in django_settings.DATABASES:
        errors.append(_error(3, f"DJANGO_TASKS['DATABASE'] is {settings.DATABASE!r}, "
                                "which is not in DATABASES."))
    if not isinstance(settings.DEFAULT_QUEUE, str) or not settings.DEFAULT_QUEUE:
        errors.append(_error(4, "DJANGO_TASKS['DEFAULT_QUEUE'] must be a non-empty string."))
    expires = settings.RESULT_EXPIRES
    if expires is not None and not (isinstance(expires, timedelta) and expires.total_seconds() > 0):
        errors.append(_error(5, "DJANGO_TASKS['RESULT_EXPIRES'] must be a positive "
                                "timedelta or None.", hint=f"Got {expires!r}."))
    errors += _check_routes(settings.TASK_ROUTES)
    errors += _check_serializers(settings.SERIALIZER, settings.ACCEPT_CONTENT)
    if not isinstance(settings.EAGER, bool):
        errors.append(_error(9, "DJANGO_TASKS['EAGER'] must be True or False."))
    for number, key in ((10, "TIME_LIMIT"), (11, "SOFT_TIME_LIMIT")):
        if not _is_number(getattr(settings, key), allow_none=True):
            errors.append(_error(number, f"DJANGO_TASKS[{key!r}] must be a positive "
                                         "number of seconds or None."))
    for number, key in ((12, "HEARTBEAT_INTERVAL"), (13, "WORKER_LOST_TIMEOUT"),
                        (14, "POLL_INTERVAL")):
        if not _is_number(getattr(settings, key)):
            errors.append(_error(number, f"DJANGO_TASKS[{key!r}] must be a positive "
                                         "number of seconds."))
    if (_is_number(settings.HEARTBEAT_INTERVAL) and _is_number(settings.WORKER_LOST_TIMEOUT)
            and settings.WORKER_LOST_TIMEOUT <= 2 * settings.HEARTBEAT_INTERVAL):
        errors.append(_error(15, "DJANGO_TASKS['WORKER_LOST_TIMEOUT'] must be more than "
                                 "twice HEARTBEAT_INTERVAL, or live workers count as lost."))
    for number, key in ((16, "MAX_DELIVERIES"), (17, "PURGE_BATCH_SIZE")):
        value = getattr(settings, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            errors.append(_error(number, f"DJANGO_TASKS[{key!r}] must be a whole number >= 1."))
    for key in ("LISTEN_NOTIFY", "SYNCHRONOUS_ACKS", "SYNCHRONOUS_ENQUEUE", "PREPARED_STATEMENTS",
                "ACKS_LATE"):
        if not isinstance(getattr(settings, key), bool):
            errors.append(_error(18, f"DJANGO_TASKS[{key!r}] must be True or False."))
    for key in ("MAX_MESSAGE_SIZE", "MAX_RESULT_SIZE"):
        value = getattr(settings, key)
        if not (isinstance(value, int) and not isinstance(value, bool)
                and 1 <= value <= limits.CEILING):
            errors.append(_error(20, f"DJANGO_TASKS[{key!r}] must be a whole number of bytes "
                                     f"from 1 to {limits.CEILING} (256 MiB).",
                                 hint=f"Got {value!r}. PostgreSQL refuses larger values."))
    if not isinstance(settings.BEAT_SCHEDULE, dict):
        errors.append(_error(19, "DJANGO_TASKS['BEAT_SCHEDULE'] must be a dict."))
    else:
        errors += [_error(19, message) for message in beat_schedule_errors(settings.BEAT_SCHEDULE)]
        errors += [checks.Warning(message, obj="settings.DJANGO_TASKS", id="django_tasks.W019")
                   for message in unregistered_task_warnings(settings.BEAT_SCHEDULE)]
    return errors


def _check_routes(routes):
    if not isinstance(routes, dict):
        return [_error(6, "DJANGO_TASKS['TASK_ROUTES'] must be a dict of "
                          "{'task.name.glob': {'queue': ..., 'priority': ...}}.")]
    errors = []
    allowed = {"queue", "priority"}
    for pattern, options in routes.items():
        if not isinstance(pattern, str) or not isinstance(options, dict):
            errors.append(_error(6, f"TASK_ROUTES entry {pattern!r} must map a string "
                                    "glob to a dict of options."))
            continue
        extra = set(options) - allowed
        if extra:
            errors.append(_error(6, f"TASK_ROUTES[{pattern!r}] has unknown options "
                                    f"{sorted(extra)}; allowed: {sorted(allowed)}."))
        if "queue" in options and not (isinstance(options["queue"], str) and options["queue"]):
            errors.append(_error(6, f"TASK_ROUTES[{pattern!r}]['queue'] must be a "
                                    "non-empty string."))
        if "priority" in options and not isinstance(options["priority"], int):
            errors.append(_error(6, f"TASK_ROUTES[{pattern!r}]['priority'] must be an integer."))
    return errors


def _check_serializers(serializer, accept):
    errors = []
    known = isinstance(serializer, str) and serializer in SERIALIZERS
    if not known:
        errors.append(_error(7, f"DJANGO_TASKS['SERIALIZER'] is {serializer!r}.",
                             hint=f"Use one of {sorted(SERIALIZERS)}, or register yours "
                                  "(django_tasks.serialization.register) in an "
                                  "AppConfig.ready()."))
    elif (install := SERIALIZERS[serializer].missing()) is not None:
        errors.append(_error(7, f"DJANGO_TASKS['SERIALIZER'] is {serializer!r}, but its "
                                "package is not installed.", hint=install))
    if not isinstance(accept, (list, tuple, set)) or not accept:
        errors.append(_error(8, "DJANGO_TASKS['ACCEPT_CONTENT'] must be a non-empty list."))
        return errors
    listed = [(entry, by_name_or_content_type(entry)) for entry in accept]
    unknown = [entry for entry, found in listed if found is None]
    if unknown:
        errors.append(_error(8, f"DJANGO_TASKS['ACCEPT_CONTENT'] lists unknown "
                                f"serializers {unknown}.", hint=f"Known: {sorted(SERIALIZERS)}."))
    for entry, found in listed:
        if found is not None and (install := found.missing()) is not None \
                and found.name != serializer:  # E007 said so
            errors.append(_error(8, f"DJANGO_TASKS['ACCEPT_CONTENT'] lists {entry!r}, but its "
                                    "package is not installed, so workers could not decode it.",
                                 hint=install))
    if known and not accepts(accept, serializer):
        errors.append(_error(8, f"DJANGO_TASKS['SERIALIZER'] is {serializer!r} but "
                                "ACCEPT_CONTENT does not list it, so workers would "
                                "refuse every message.",
                             hint=f"Add {serializer!r} to ACCEPT_CONTENT."))
    return errors


# -- a Celery project's settings and task options ------------------------------

def _celery_note(kind, number, msg, obj, hint=None):
    return kind(msg, hint=hint, obj=obj, id=f"django_tasks.{kind.__name__[0]}{number:03d}")


@checks.register(checks.Tags.compatibility)
def check_celery_settings(app_configs=None, **kwargs):
    """CELERY_* settings that mean nothing here, or that DJANGO_TASKS overrides."""
    notes = [_celery_note(checks.Warning, 30, f"{name} is ignored: {why}.",
                          f"settings.{name}", hint="Remove it once the project runs on "
                          "django_tasks (see 'Migrating from Celery').")
             for name, why in ignored_settings()]
    raw = getattr(django_settings, "DJANGO_TASKS", None)
    user_keys = set(raw) if isinstance(raw, dict) else set()
    notes += [_celery_note(checks.Info, 31, f"{name} is set, and so is "
                           f"DJANGO_TASKS[{key!r}], which is used.", f"settings.{name}")
              for name, key in shadowed_settings(user_keys)]
    from .app import ignored_arguments  # app.py imports the task machinery

    notes += [_celery_note(checks.Warning, 36, f"Celery({main!r}, {name}=...): {name} is "
                           "ignored: the database is the broker and the result backend.",
                           f"Celery({main!r})")
              for main, name in ignored_arguments]
    timezone = getattr(django_settings, TIMEZONE, None)
    if timezone is not None and timezone != django_settings.TIME_ZONE:
        notes.append(_celery_note(
            checks.Warning, 32, f"{TIMEZONE} is {timezone!r} but TIME_ZONE is "
            f"{django_settings.TIME_ZONE!r}: Django's TIME_ZONE governs (crontab "
            "schedules, times shown).", f"settings.{TIMEZONE}",
            hint=f"Set TIME_ZONE = {timezone!r}, or remove {TIMEZONE}."))
    result_serializer = getattr(django_settings, RESULT_SERIALIZER, None)
    if result_serializer is not None and result_serializer != settings.SERIALIZER:
        notes.append(_celery_note(
            checks.Info, 33, f"{RESULT_SERIALIZER} is {result_serializer!r}: results "
            "are stored with the serializer of the task's own message "
            f"({settings.SERIALIZER!r} unless the task or call names another).",
            f"settings.{RESULT_SERIALIZER}"))
    return notes


@checks.register(checks.Tags.compatibility)
def check_task_options(app_configs=None, **kwargs):
    """Celery task options that were accepted but change nothing here."""
    notes = []
    for name, task in sorted(registry.items()):
        ignored = getattr(task, "ignored_options", ())
        if ignored:
            notes.append(_celery_note(
                checks.Info, 34, f"Task {name}: the Celery option(s) {', '.join(ignored)} "
                "are accepted and ignored (no meaning with the database as the broker).",
                name))
        if settings.EAGER and getattr(task, "rate_limit", None) is not None:
            notes.append(_celery_note(
                checks.Info, 35, f"Task {name}: rate_limit={task.rate_limit!r} does not "
                "apply while EAGER runs tasks inline (as Celery's task_always_eager); "
                "workers apply it across all of them.", name))
    return notes
