"""The wheel holds what setup.cfg promises: the type hints' marker
(``py.typed``), the LICENSE, the admin's templates, the migrations; and its
metadata leaves psycopg's implementation to the application."""

import shutil
import subprocess
import sys
import zipfile

from tests.workers import ROOT

# Not copied to the build: a checkout's history and whatever runs left.
LEFT_OUT = shutil.ignore_patterns(".git", "__pycache__", "*.sqlite3*", "_build", ".venv*",
                                  "build", "dist", "*.egg-info")


def build_wheel(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("django_pgtasks-*.whl")
    return zipfile.ZipFile(wheel)


def test_the_wheel_holds_py_typed_license_templates_and_migrations(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(wheel.namelist())
    assert "django_tasks/py.typed" in names
    assert any(name.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in name
               for name in names), sorted(names)
    assert "django_tasks/templates/django_tasks/admin/dashboard.html" in names
    assert "django_tasks/migrations/0001_initial.py" in names
    assert not any(name.startswith("tests/") for name in names)

    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    requires = [line.removeprefix("Requires-Dist: ")
                for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist: ")]
    assert "psycopg>=3.2" in requires
    assert 'psycopg[binary]>=3.2; extra == "binary"' in requires
    assert not any(r.startswith("psycopg[") and "extra" not in r for r in requires)
