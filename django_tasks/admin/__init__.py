from . import dashboard, periodic, queued, results, workers  # noqa: F401
