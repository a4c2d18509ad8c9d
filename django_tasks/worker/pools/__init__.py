"""Execution pools: where a claimed message runs.

- ``solo``: in the worker's own main thread, one at a time.
- ``threads``: N threads of the worker process (I/O-bound tasks).
- ``prefork``: N child processes (CPU-bound tasks, crash isolation).

All three offer the same small interface (``base.Pool``); the consumer
never knows which one it has.
"""

from .prefork import PreforkPool
from .solo import SoloPool
from .threads import ThreadPool

POOLS = {"prefork": PreforkPool, "threads": ThreadPool, "solo": SoloPool}


def create_pool(name, concurrency, **options):
    return POOLS[name](concurrency, **options)
