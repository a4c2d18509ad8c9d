"""System checks for the ``DJANGO_TASKS`` setting (ids ``django_tasks.E0xx``)."""

from datetime import timedelta

from django.conf import settings as django_settings
from django.core import checks

from . import limits
from .beat.validation import beat_schedule_errors, unregistered_task_warnings
from .conf import DEFAULTS, settings
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
        return []
    if not isinstance(raw, dict):
        return [_error(1, "DJANGO_TASKS must be a dict.",
                       hint=f"Got {type(raw).__name__}.")]
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
