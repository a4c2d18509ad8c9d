"""A PostgreSQL server for the test run when none is configured.

With no DATABASE_URL, the suite starts a private server from the ``pgserver``
package (PostgreSQL binaries in a wheel, no root needed) in a directory
under the system temp folder, and stops it when the test run ends.
"""

import os
import tempfile
from pathlib import Path


def start():
    """Start (or reuse) the embedded server; returns Django DATABASES settings."""
    import pgserver

    data_dir = Path(os.environ.get("TESTS_PGDATA") or
                    Path(tempfile.gettempdir()) / f"django_tasks_pg_{os.getuid()}")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    start.server = server  # keep a reference: the server stops when collected
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(data_dir),
        "PORT": "",
    }
