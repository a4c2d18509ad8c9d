"""Execution pools: where a claimed message runs.

- ``solo``: in the worker's own main thread, one at a time.
- ``threads``: N threads of the worker process (I/O-bound tasks).

Both offer the same small interface (``base.Pool``); the consumer never
knows which one it has. The prefork pool is not a pool of this kind: its
children are consumers of their own (``worker/supervisor.py``), each with
the solo pool.
"""

from .solo import SoloPool
from .threads import ThreadPool

POOLS = {"threads": ThreadPool, "solo": SoloPool}


def create_pool(name, concurrency, **options):
    return POOLS[name](concurrency, **options)
