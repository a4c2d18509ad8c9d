"""The test run's id (``TESTS_RUN_ID``), which names what is the run's own:
its test database, SQLite file, embedded server directory and mark file."""

import os


def run_id():
    """Set in the run's own process (its pid unless given), then inherited by
    the worker processes it starts.

    Under pytest-xdist (``-n``), each of its processes is a run of its own:
    the controller's id, which they inherit, and the xdist worker's name.
    The worker processes they start inherit the result, so it is added once."""
    run = os.environ.setdefault("TESTS_RUN_ID", str(os.getpid()))
    xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")
    if xdist_worker and not run.endswith(f"_{xdist_worker}"):
        run = os.environ["TESTS_RUN_ID"] = f"{run}_{xdist_worker}"
    return run
