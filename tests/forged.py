"""Forged and corrupt stored data, and a check that reading it imports nothing."""

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

#: What tests.never_imported leaves when it is imported.
NEVER_IMPORTED = "tests.never_imported"
MARK = "DJANGO_TASKS_NEVER_IMPORTED"
MARK_FILE = Path(tempfile.gettempdir()) / "django_tasks_never_imported.mark"


@contextmanager
def never_imported_guard():
    """Fails if the block (or a worker meanwhile) imports tests.never_imported."""
    assert NEVER_IMPORTED not in sys.modules, "imported before the test"
    os.environ.pop(MARK, None)
    MARK_FILE.unlink(missing_ok=True)
    yield
    assert NEVER_IMPORTED not in sys.modules, "imported by this process"
    assert MARK not in os.environ, "imported by this process"
    assert not MARK_FILE.exists(), MARK_FILE.read_text()
