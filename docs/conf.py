"""Sphinx configuration: ``python3 -m sphinx -W -b html docs docs/_build/html``."""

import configparser
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _version():
    # The one declared version, wherever the packaging metadata keeps it.
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    if setup.has_option("metadata", "version"):
        return setup["metadata"]["version"]
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


project = "django_tasks"
author = "django_tasks contributors"
copyright = "2026, django_tasks contributors"
release = version = _version()

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"django_tasks {release}"
