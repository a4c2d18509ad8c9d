"""``django_tasks.backends`` is the one module that needs Django 6.0's
``django.tasks``: on Django 5.2 it says so, and the rest of the package
works without it."""

import ast
import importlib
from pathlib import Path

import django
import pytest

import django_tasks


@pytest.mark.skipif(django.VERSION >= (6, 0), reason="Django 6 has django.tasks")
def test_importing_the_backend_on_django_52_says_it_needs_django_6():
    with pytest.raises(ImportError, match=r"needs Django 6\.0 or later"):
        importlib.import_module("django_tasks.backends")


def _imports_django_tasks_api(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(name == "django.tasks" or name.startswith("django.tasks.") for name in names):
            return True
    return False


def test_no_other_module_of_the_package_imports_django_tasks_api():
    package = Path(django_tasks.__file__).parent
    importing = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                       if _imports_django_tasks_api(path))
    assert importing == ["backends.py"]
