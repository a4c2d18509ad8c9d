"""A Celery-shaped app object, for codebases written against ``celery.Celery``.

A Django project's ``proj/celery.py`` runs with its import changed::

    from django_tasks import Celery

    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()

    @app.task(bind=True)
    def debug_task(self): ...

There is one configuration, Django's settings, so every app object is a
view of it: ``app.conf`` reads the ``DJANGO_TASKS`` setting and the
``CELERY_*`` settings mapped onto it (``celery_settings.py``).
"""

from importlib import import_module

from django.conf import settings as django_settings

from . import celery_settings
from .canvas import signature
from .conf import settings
from .registry import tasks as registry
from .result import AsyncResult, GroupResult, revoke_ids
from .task import Task, send_task, task

# (app main name, argument) for each ignored argument an app was made with.
ignored_arguments = []


class Celery:
    """``Celery(main=None, **options)``: settings under Celery's names
    (``task_serializer=...``) go to ``app.conf``; ``include`` modules are
    imported once Django's apps are ready; every other option (``broker``,
    ``backend``...) is accepted and ignored, and the system checks name it
    (django_tasks.W036)."""

    Task = Task

    def __init__(self, main=None, **options):
        self.main = main
        # Task modules outside installed apps: imported once Django's apps are ready.
        self.include = list(options.pop("include", None) or ())
        for name in options:
            if name not in celery_settings.CONF_NAMES and (main, name) not in ignored_arguments:
                ignored_arguments.append((main, name))
        self.conf = Conf()
        self.conf.update({name: value for name, value in options.items()
                          if name in celery_settings.CONF_NAMES})
        self.control = Control()
        self.on_configure = AppSignal(self)
        self.on_after_configure = AppSignal(self)
        self.on_after_finalize = AppSignal(self)
        apps_made.append(self)

    def __repr__(self):
        return f"<Celery {self.main or '__main__'} (django_tasks)>"

    # -- tasks ----------------------------------------------------------

    def task(self, *args, **options):
        """``@app.task`` or ``@app.task(bind=True, ...)``: the same as ``@task``."""
        return task(*args, **options)

    @property
    def tasks(self):
        return registry

    def send_task(self, name, args=None, kwargs=None, **options):
        return send_task(name, args, kwargs, **options)

    def signature(self, *args, **kwargs):
        return signature(*args, **kwargs)

    def AsyncResult(self, task_id, task_name=None, parent=None, **ignored):  # noqa: N802
        return AsyncResult(task_id, task_name=task_name, parent=parent)

    def GroupResult(self, group_id, results=None, parent=None, **ignored):  # noqa: N802
        return GroupResult(group_id, results, parent=parent)

    # -- configuration -----------------------------------------------------

    def config_from_object(self, obj, silent=False, force=False, namespace=None):
        """Django's settings are read already (``CELERY_*`` with ``namespace='CELERY'``);
        another object (a ``celeryconfig`` module) gives its settings to ``app.conf``."""
        if isinstance(obj, str):
            if obj in ("django.conf:settings", "django.conf.settings"):
                return
            try:
                obj = _import_object(obj)
            except ImportError:
                if silent:
                    return
                raise
        if obj is django_settings:
            return
        prefix = f"{namespace}_" if namespace else ""
        self.conf.update({name[len(prefix):].lower(): getattr(obj, name) for name in dir(obj)
                          if name.startswith(prefix) and not name.startswith("_")})

    def autodiscover_tasks(self, packages=None, related_name="tasks", force=False):
        """Done already: the ``tasks.py`` of every installed app is imported at start-up.
        Packages named here that are not installed apps have theirs imported too."""
        if callable(packages):
            packages = None  # Celery's lazy form: the installed apps, as ours
        for package in packages or ():
            try:
                import_module(f"{package}.{related_name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{related_name}":
                    raise

    def add_periodic_task(self, schedule, sig, args=(), kwargs=(), name=None, **options):
        """Celery's way to add a beat entry from code (usually in an
        ``on_after_configure`` receiver): added to ``BEAT_SCHEDULE``."""
        from .beat.validation import OPTION_KEYS

        options = {**sig.options, **options}
        entry = {"task": sig.name, "schedule": schedule,
                 "args": tuple(args or sig.args), "kwargs": dict(kwargs or sig.kwargs),
                 "options": {k: v for k, v in options.items() if k in OPTION_KEYS}}
        schedule_now = dict(celery_settings.celery_value("BEAT_SCHEDULE", None) or {})
        schedule_now[name or repr(sig)] = entry
        celery_settings.app_conf["BEAT_SCHEDULE"] = schedule_now
        settings.reload()
        return entry

    def set_default(self):
        pass

    def set_current(self):
        pass

    def finalize(self, auto=False):
        pass


# Every app made, so that their signals fire once Django's apps are ready.
apps_made = []
_configured = False


class AppSignal:
    """``app.on_after_configure`` and the like: ``@app.on_after_configure.connect``
    receivers are called with ``sender=app`` once Django's apps are ready (every
    ``tasks.py`` imported), or at once when they connect later."""

    def __init__(self, app):
        self.app = app
        self.receivers = []

    def connect(self, receiver=None, **options):
        if receiver is None:  # @signal.connect(weak=False)
            return lambda function: self.connect(function, **options)
        self.receivers.append(receiver)
        if _configured:
            receiver(sender=self.app)
        return receiver

    def send(self):
        for receiver in self.receivers:
            receiver(sender=self.app)


def finish_configuring():
    """Called by the app config's ``ready()``, after every ``tasks.py`` is imported."""
    global _configured
    if _configured:
        return
    _configured = True
    for app in list(apps_made):
        for module in app.include:
            import_module(module)
        app.on_configure.send()
        app.on_after_configure.send()
        app.on_after_finalize.send()


def _import_object(path):
    module, _, attribute = path.partition(":")
    loaded = import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


class Control:
    """``app.control``: ``revoke`` and ``rate_limit``, both through the
    database (there is no broadcast)."""

    def revoke(self, task_id, destination=None, terminate=False, signal=None, **kwargs):
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        return revoke_ids(ids, terminate=terminate)

    def rate_limit(self, task_name, rate_limit, destination=None, reply=False, timeout=1.0,
                   **kwargs):
        """Every worker applies ``rate_limit`` to ``task_name``'s messages
        from now on (within ``rate_control.REFRESH`` seconds), waiting ones
        and ones sent later, whatever rate they were sent with; ``0`` is no
        limit. Unlike Celery's, it is kept in the database (restarted
        workers obey it too) until ``rate_limit(task_name, None)`` removes it.

        ``destination`` must be None: the rate is every worker's.
        ``reply=True`` returns ``[{worker: {"ok": ...}}]`` for each live
        worker (``timeout`` is not waited: nothing is sent to them)."""
        from .rate_control import set_rate_limit

        return set_rate_limit(task_name, rate_limit, destination=destination, reply=reply)


class Conf:
    """``app.conf``: Celery's lowercase setting names read from (and written to) ours.

    ``app.conf.task_serializer`` reads ``DJANGO_TASKS['SERIALIZER']`` (or the
    ``CELERY_TASK_SERIALIZER`` setting); a write (``app.conf.beat_schedule =
    {...}``, ``app.conf.update(...)``) is used where ``DJANGO_TASKS`` does not
    set the key. A name with no meaning here reads ``None`` (or its
    ``CELERY_*`` setting) and a write to it is kept, unused.
    """

    def __init__(self):
        object.__setattr__(self, "_unused", {})

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        key = celery_settings.CONF_NAMES.get(name)
        if key is not None:
            return getattr(settings, key)
        if name in self._unused:
            return self._unused[name]
        return getattr(django_settings, f"CELERY_{name.upper()}", None)

    def __setattr__(self, name, value):
        self.update({name: value})

    __getitem__ = __getattr__

    def __setitem__(self, name, value):
        self.update({name: value})

    def get(self, name, default=None):
        value = getattr(self, name)
        return default if value is None else value

    def update(self, values=None, **more):
        values = {**(values or {}), **more}
        if not values:
            return
        for name, value in values.items():
            key = celery_settings.CONF_NAMES.get(name.lower())
            if key is None:
                self._unused[name.lower()] = value
            else:
                celery_settings.app_conf[key] = value
        settings.reload()

    def find_value_for_key(self, name, namespace="celery"):
        return getattr(self, name.lower())


current_app = Celery("default")
