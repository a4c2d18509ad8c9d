"""The package's layering, read from its source with ``ast``.

The admin, the API (task, results, canvas, publishing, testing), beat and
the worker build on the queue and domain modules, not on each other: a
module imports the worker, the admin or the beat loop only from inside it,
or from the management commands that start it. (Beat's models, schedules,
validation and sending are domain pieces the admin and checks use; its
loop, ``service`` and ``scheduler``, is not.)
"""

import ast
from pathlib import Path

import django_tasks

PACKAGE = Path(django_tasks.__file__).parent

# A layer, and the packages whose modules may import it.
IMPORTED_ONLY_FROM = {
    "django_tasks.worker": ("django_tasks.worker", "django_tasks.management"),
    "django_tasks.admin": ("django_tasks.admin",),
    "django_tasks.beat.service": ("django_tasks.beat", "django_tasks.management"),
    "django_tasks.beat.scheduler": ("django_tasks.beat", "django_tasks.management"),
}

def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path, name):
    """The dotted names module ``name`` (at ``path``) imports: a ``from m import
    n`` gives m and m.n (n may be a submodule); relative imports resolved, the
    ones inside functions included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def within(name, package):
    return name == package or name.startswith(package + ".")


def layer_violations(modules):
    """``modules``: (path, dotted name) pairs."""
    found = []
    for path, importer in modules:
        for line, imported in imported_modules(path, importer):
            for layer, importers in IMPORTED_ONLY_FROM.items():
                if not within(imported, layer) or any(within(importer, p) for p in importers):
                    continue
                found.append(f"{importer}:{line} imports {imported}")
    return found


def package_modules():
    return [(path, module_name(path)) for path in sorted(PACKAGE.rglob("*.py"))
            if "migrations" not in path.parts]


def test_no_module_imports_a_layer_it_does_not_own():
    assert layer_violations(package_modules()) == []


def test_the_check_sees_relative_absolute_and_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from .worker import consumer\n"
                     "import django_tasks.admin.queued\n"
                     "from .beat import models, schedules\n"
                     "def later():\n"
                     "    from . import worker\n"
                     "    from .beat.service import Beat\n")
    assert layer_violations([(probe, "django_tasks.probe")]) == [
        "django_tasks.probe:1 imports django_tasks.worker",
        "django_tasks.probe:1 imports django_tasks.worker.consumer",
        "django_tasks.probe:2 imports django_tasks.admin.queued",
        "django_tasks.probe:5 imports django_tasks.worker",
        "django_tasks.probe:6 imports django_tasks.beat.service",
        "django_tasks.probe:6 imports django_tasks.beat.service.Beat",
    ]


def test_a_layer_may_import_itself_and_be_started_by_management(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ..worker.consumer import Consumer\nfrom ..beat.service import Beat\n")
    assert layer_violations([(probe, "django_tasks.management.probe")]) == []
    assert layer_violations([(probe, "django_tasks.beat.probe")]) == [
        "django_tasks.beat.probe:1 imports django_tasks.worker.consumer",
        "django_tasks.beat.probe:1 imports django_tasks.worker.consumer.Consumer",
    ]
