"""Imported by no test: forged results name it, and reading them must not import it.

Importing it leaves a mark any process can see (an environment variable, a
file), as a hostile module's side effect would.
"""

import os

from tests.forged import MARK, MARK_FILE

os.environ[MARK] = "imported"
MARK_FILE.write_text(f"imported by pid {os.getpid()}\n")


class ImportedError(Exception):
    """The class a forged result names."""
