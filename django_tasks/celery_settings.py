"""Celery's ``CELERY_*`` Django settings, read as ``DJANGO_TASKS`` keys.

A Celery project configured with ``app.config_from_object('django.conf:settings',
namespace='CELERY')`` keeps its settings: each one that means something here
is read, converted to our shape, when ``DJANGO_TASKS`` does not set the key
(``DJANGO_TASKS`` wins; the system checks say so). The ones that mean nothing
with the database as the broker are listed by the checks (``checks.py``).

Values are converted only where Celery's shape differs (seconds for a
timedelta, route options of AMQP); anything else is passed on as it is, so
a wrong value fails the same system check as in ``DJANGO_TASKS``.
"""

from datetime import timedelta

from django.conf import settings as django_settings

from .celery_options import IGNORED_APPLY_OPTIONS

# Celery's (lowercase, ``app.conf``) setting names -> our DJANGO_TASKS keys.
CONF_NAMES = {
    "task_serializer": "SERIALIZER",
    "accept_content": "ACCEPT_CONTENT",
    "result_expires": "RESULT_EXPIRES",
    "task_routes": "TASK_ROUTES",
    "task_always_eager": "EAGER",
    "task_time_limit": "TIME_LIMIT",
    "task_soft_time_limit": "SOFT_TIME_LIMIT",
    "beat_schedule": "BEAT_SCHEDULE",
    "task_default_queue": "DEFAULT_QUEUE",
    # Celery's default is False; ours is True (see docs/worker.rst, "Failures the worker survives").
    "task_acks_late": "ACKS_LATE",
}
# Celery 3's names of the same settings.
_OLD_NAMES = {
    "RESULT_EXPIRES": ("CELERY_TASK_RESULT_EXPIRES",),
    "TASK_ROUTES": ("CELERY_ROUTES",),
    "EAGER": ("CELERY_ALWAYS_EAGER",),
    "TIME_LIMIT": ("CELERYD_TASK_TIME_LIMIT",),
    "SOFT_TIME_LIMIT": ("CELERYD_TASK_SOFT_TIME_LIMIT",),
    "BEAT_SCHEDULE": ("CELERYBEAT_SCHEDULE",),
    "DEFAULT_QUEUE": ("CELERY_DEFAULT_QUEUE",),
    "ACKS_LATE": ("CELERY_ACKS_LATE",),
}
# Our key -> the Django settings that give it (namespace CELERY), newest first.
MAPPED = {key: (f"CELERY_{name.upper()}", *_OLD_NAMES.get(key, ()))
          for name, key in CONF_NAMES.items()}

# Celery settings read elsewhere than DJANGO_TASKS (named by the checks).
RESULT_SERIALIZER = "CELERY_RESULT_SERIALIZER"
TIMEZONE = "CELERY_TIMEZONE"

# Celery settings that have no meaning here, and why (the checks list those set).
IGNORED = {
    "the database is the broker": (
        "CELERY_BROKER_URL", "BROKER_URL", "CELERY_BROKER_TRANSPORT",
        "CELERY_BROKER_TRANSPORT_OPTIONS", "CELERY_BROKER_CONNECTION_RETRY",
        "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP", "CELERY_BROKER_CONNECTION_MAX_RETRIES",
        "CELERY_BROKER_CONNECTION_TIMEOUT", "CELERY_BROKER_HEARTBEAT", "CELERY_BROKER_POOL_LIMIT",
        "CELERY_BROKER_USE_SSL", "CELERY_BROKER_LOGIN_METHOD", "CELERY_TASK_DEFAULT_EXCHANGE",
        "CELERY_TASK_DEFAULT_EXCHANGE_TYPE", "CELERY_TASK_DEFAULT_ROUTING_KEY",
        "CELERY_TASK_QUEUES", "CELERY_QUEUES", "CELERY_TASK_CREATE_MISSING_QUEUES",
        "CELERY_TASK_PUBLISH_RETRY", "CELERY_TASK_PUBLISH_RETRY_POLICY",
        "CELERY_TASK_COMPRESSION", "CELERY_TASK_DEFAULT_DELIVERY_MODE",
        "CELERY_WORKER_DIRECT", "CELERY_TASK_QUEUE_MAX_PRIORITY",
        "CELERY_WORKER_ENABLE_REMOTE_CONTROL",
        "CELERY_WORKER_SEND_TASK_EVENTS", "CELERY_TASK_SEND_SENT_EVENT", "CELERY_EVENT_QUEUE_TTL",
        "CELERY_EVENT_QUEUE_EXPIRES", "CELERY_CONTROL_QUEUE_TTL",
    ),
    "the database is the result backend": (
        "CELERY_RESULT_BACKEND", "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",
        "CELERY_RESULT_PERSISTENT", "CELERY_RESULT_COMPRESSION", "CELERY_RESULT_EXTENDED",
        "CELERY_RESULT_CHORD_JOIN_TIMEOUT", "CELERY_RESULT_CHORD_RETRY_INTERVAL",
        "CELERY_CACHE_BACKEND", "CELERY_REDIS_MAX_CONNECTIONS",
        "CELERY_RESULT_BACKEND_ALWAYS_RETRY", "CELERY_RESULT_BACKEND_MAX_RETRIES",
    ),
    "Django's TIME_ZONE and USE_TZ govern": ("CELERY_ENABLE_UTC",),
    "set the worker's options on runworker's command line": (
        "CELERY_WORKER_CONCURRENCY", "CELERYD_CONCURRENCY", "CELERY_WORKER_PREFETCH_MULTIPLIER",
        "CELERY_WORKER_MAX_TASKS_PER_CHILD", "CELERY_WORKER_POOL",
        "CELERY_WORKER_HIJACK_ROOT_LOGGER", "CELERY_WORKER_REDIRECT_STDOUTS",
        "CELERY_WORKER_LOG_FORMAT", "CELERY_WORKER_TASK_LOG_FORMAT",
        "CELERY_WORKER_MAX_MEMORY_PER_CHILD",
    ),
    "a stored schedule is a PeriodicTask row (admin), not a beat scheduler class": (
        "CELERY_BEAT_SCHEDULER", "CELERYBEAT_SCHEDULER", "CELERY_BEAT_SCHEDULE_FILENAME",
        "CELERY_BEAT_MAX_LOOP_INTERVAL",
    ),
    "tasks are found in the tasks.py of every installed app": (
        "CELERY_IMPORTS", "CELERY_INCLUDE",
    ),
    "a lost worker is found by its heartbeat (DJANGO_TASKS['WORKER_LOST_TIMEOUT'])": (
        "CELERY_WORKER_LOST_WAIT",),
    "set ignore_result=True on the task or the call": ("CELERY_TASK_IGNORE_RESULT",),
    "results are read with ACCEPT_CONTENT": ("CELERY_RESULT_ACCEPT_CONTENT",),
    "priorities run the other way here (higher first): set priority= on the task "
    "or in TASK_ROUTES": ("CELERY_TASK_DEFAULT_PRIORITY",),
    "no rate limits yet": ("CELERY_TASK_ANNOTATIONS", "CELERY_WORKER_DISABLE_RATE_LIMITS",
                           "CELERY_TASK_DEFAULT_RATE_LIMIT"),
    "an eager call stores its exception in its result; get() raises it": (
        "CELERY_TASK_EAGER_PROPAGATES", "CELERY_TASK_STORE_EAGER_RESULT",
    ),
}

# Settings written through ``app.conf`` (``app.conf.beat_schedule = {...}``),
# by our key; read before the CELERY_* settings, after DJANGO_TASKS.
app_conf = {}


def celery_source(key):
    """The Celery setting (or ``app.conf``) that gives ``key``, or None."""
    if key in app_conf:
        return "app.conf"
    for name in MAPPED.get(key, ()):
        if hasattr(django_settings, name):
            return name
    return None


def celery_value(key, default):
    """``key`` read from ``app.conf`` or the CELERY_* settings, in our shape."""
    if key in app_conf:
        return CONVERT.get(key, _same)(app_conf[key])
    for name in MAPPED.get(key, ()):
        if hasattr(django_settings, name):
            return CONVERT.get(key, _same)(getattr(django_settings, name))
    return default


def _same(value):
    return value


def _expires(value):
    """Celery takes seconds or a timedelta; 0 and None keep results forever."""
    if value is None or value == 0:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


# Route options that steer an AMQP exchange: meaningless here, left out.
_AMQP_ROUTE_OPTIONS = frozenset({"exchange", "exchange_type", "routing_key", "delivery_mode"})


def _routes(value):
    """Celery's ``{name or glob: {"queue": ...} or "queue"}`` (or a list of such
    dicts) as ours.

    Celery tries exact names before globs, so they come first here (our
    routes are tried in order). A router function or class path, or a
    regular expression as a key, is passed on as it is and refused by the
    checks.
    """
    maps = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(one, dict) for one in maps):
        return value
    exact, globs = {}, {}
    for one in maps:
        for pattern, options in one.items():
            if isinstance(options, str):
                options = {"queue": options}  # Celery's short form
            elif isinstance(options, dict):
                options = {k: v for k, v in options.items() if k not in _AMQP_ROUTE_OPTIONS}
            target = globs if isinstance(pattern, str) and any(c in pattern for c in "*?[") \
                else exact
            target.setdefault(pattern, options)
    return {**exact, **globs}


def _beat_schedule(value):
    """Celery's entries as ours: ``relative`` and AMQP options left out."""
    if not isinstance(value, dict):
        return value
    converted = {}
    for name, entry in value.items():
        if isinstance(entry, dict):
            entry = {k: v for k, v in entry.items() if k != "relative"}
            if isinstance(entry.get("options"), dict):
                entry["options"] = {k: v for k, v in entry["options"].items()
                                    if k not in IGNORED_APPLY_OPTIONS}
        converted[name] = entry
    return converted


CONVERT = {"RESULT_EXPIRES": _expires, "TASK_ROUTES": _routes, "BEAT_SCHEDULE": _beat_schedule}


def is_celery_setting(name):
    return name.startswith(("CELERY", "BROKER_"))


def ignored_settings():
    """``[(setting, why)]`` for each Celery setting set that means nothing here."""
    return [(name, why) for why, names in IGNORED.items() for name in names
            if hasattr(django_settings, name)]


def shadowed_settings(user_keys):
    """``[(celery setting, our key)]`` set in both: DJANGO_TASKS wins."""
    found = []
    for key in sorted(user_keys & set(MAPPED)):
        for name in MAPPED[key]:
            if hasattr(django_settings, name):
                found.append((name, key))
    return found
