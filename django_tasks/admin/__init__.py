from . import periodic, queued, results, workers  # noqa: F401
