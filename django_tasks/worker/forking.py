"""One lock between forking prefork children and the worker's threads' database work.

SQLite keeps a process's locks on a database file in that process's memory.
A child forked while another thread of the worker is inside a transaction
inherits that bookkeeping without the lock itself, believes a connection of
its own holds the lock, and every write it tries then ends "database is
locked". The worker's own threads (results flusher, heartbeat, beat) hold
this lock while they use the database, and the prefork pool holds it while
it forks, so no fork lands in the middle of their work.
"""

import threading

database_work = threading.RLock()
