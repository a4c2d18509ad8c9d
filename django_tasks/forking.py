"""One lock between forking prefork children and the worker's threads' database work.

SQLite keeps a process's locks on a database file in that process's memory.
A child forked while another thread of the worker is inside a transaction
inherits that bookkeeping without the lock itself, believes a connection of
its own holds the lock, and every write it tries then ends "database is
locked". The worker's own threads (heartbeat, beat, results flusher) hold
this lock while they use the database, and the prefork worker holds it
while it forks, so no fork lands in the middle of their work.

A child starts with a fresh lock: the one it inherits is held by the
forking thread, which does not exist in the child.
"""

import os
import threading


class _ForkLock:
    def __init__(self):
        self._lock = threading.RLock()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self):
        self._lock = threading.RLock()

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc_info):
        self._lock.release()


database_work = _ForkLock()
