"""The start-up banner, laid out like Celery's so its readers find their way."""

import platform

from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone

from ..models import TaskResult

ART = [
    " -------------- ",
    "--- ***** ----- ",
    "-- ******* ---- ",
    "- *** --- * --- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- ** ---------- ",
    "- *** --- * --- ",
    "-- ******* ---- ",
    "--- ***** ----- ",
    " -------------- ",
]


def database_label(alias):
    """``vendor://user@host:port/name`` without the password."""
    settings_dict = connections[alias].settings_dict
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or ""
    where = f"{host}:{port}" if port else host
    return f"{vendor}://{user + '@' if user else ''}{where}/{settings_dict.get('NAME')}"


def render(hostname, alias, queues, concurrency, pool, task_names, wakes_up):
    from .. import __name__ as app_name

    transport = database_label(alias)
    waking = "LISTEN/NOTIFY" if wakes_up else "polling"
    lines = [
        f"{hostname} v{_version()} ({app_name})",
        "",
        f"{platform.platform()} {timezone.now():%Y-%m-%d %H:%M:%S}",
        "",
        "[config]",
        f".> app:         {django_settings.SETTINGS_MODULE}",
        f".> transport:   {transport} ({waking})",
        f".> results:     {transport} (table {TaskResult._meta.db_table})",
        f".> concurrency: {concurrency} ({pool})",
        ".> task events: stored in the database (see the admin)",
        "",
        "[queues]",
    ]
    text = "\n".join(ART[i] + line for i, line in enumerate(lines))
    text += "".join(f"\n                .> {q}" for q in queues)
    text += "\n\n[tasks]\n" + "\n".join(f"  . {name}" for name in sorted(task_names))
    return text + "\n"


def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("django-pgtasks")
    except PackageNotFoundError:
        return "dev"
