"""A PostgreSQL server for the test run when none is configured.

With no DATABASE_URL, the suite starts a private server from the ``pgserver``
package (PostgreSQL binaries in a wheel, no root needed) in a directory
under the system temp folder, one per run, and stops (and deletes) it when
the test run ends.
"""

import os
import tempfile
from pathlib import Path


def start(run_id):
    """Start the embedded server of the test run ``run_id``; returns Django
    DATABASES settings.

    In ``TESTS_PGDATA`` if set (kept, and reused by the next run), else in a
    directory of this run's own, deleted when it ends."""
    import pgserver

    given = os.environ.get("TESTS_PGDATA")
    data_dir = Path(given or
                    Path(tempfile.gettempdir()) / f"django_tasks_pg_{os.getuid()}_{run_id}")
    server = pgserver.get_server(data_dir, cleanup_mode="stop" if given else "delete")
    start.server = server  # keep a reference: the server stops when collected
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(data_dir),
        "PORT": "",
    }
