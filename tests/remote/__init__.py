"""An app whose tasks only the workers import (``TESTS_EXTRA_APPS=tests.remote``):
the test process sends them by name, as a web app sends to workers of another codebase."""
