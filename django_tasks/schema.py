"""Whether the database holds the tables this version of django_tasks uses.

A worker started before ``manage.py migrate`` (a deploy that ships the code
first) would find a table or column missing in the middle of its loop: a
child dying at every claim, its messages claimed and handed back forever.
``runworker`` and ``runbeat`` refuse to start instead, naming the
migrations to apply.
"""

import pkgutil

from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from . import migrations

APP_LABEL = "django_tasks"


def unapplied_migrations(alias):
    """Names of this version's migrations not applied to ``alias``'s database,
    in order; None when the database cannot be reached now (the worker's own
    reconnection waits for it)."""
    shipped = sorted(module.name for module in pkgutil.iter_modules(migrations.__path__))
    try:
        applied = {name for app, name in MigrationRecorder(connections[alias])
                   .applied_migrations() if app == APP_LABEL}
    except DatabaseError:
        return None
    finally:
        # Not kept open into a fork, nor idle until the loop first needs it.
        connections[alias].close()
    return [name for name in shipped if name not in applied]


def refusal(alias):
    """Why a worker must not start on ``alias`` (a sentence), or None."""
    missing = unapplied_migrations(alias)
    if not missing:
        return None
    return (f"the database '{alias}' lacks {len(missing)} of django_tasks' migrations "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): "
            "run 'python manage.py migrate' first")
