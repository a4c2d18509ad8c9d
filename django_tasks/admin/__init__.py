from . import periodic  # noqa: F401
