"""One prepared statement run straight through libpq (``psycopg.pq``).

For the statement a producer runs on every ``.delay()`` outside a
transaction. psycopg's cursor (query conversion, adapters, its prepared
statement cache, result objects) cost about 40 us of client CPU per call, a
quarter of ``.delay()``'s; here the caller hands parameters over as text and
only the result's status is read. The statement is its own
transaction (autocommit), so psycopg's view of the session stays true.
"""

import re
import weakref

import psycopg
from psycopg import errors, pq

# psycopg connection -> names of the statements prepared on its session, or
# False for a session whose client encoding is not UTF-8 (Django sets UTF-8).
_prepared = weakref.WeakKeyDictionary()

UNDEFINED_PREPARED_STATEMENT = "26000"
_PLACEHOLDER = re.compile(r"%s")
_IDLE = pq.TransactionStatus.IDLE
_NO_PIPELINE = pq.PipelineStatus.OFF
_SUCCEEDED = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def numbered(sql):
    """``sql`` with psycopg's ``%s`` placeholders as libpq's ``$1, $2…``."""
    counter = iter(range(1, 1 + sql.count("%s")))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def can_run(connection):
    """Whether ``run_prepared`` may use ``connection`` now: no transaction
    open (a statement here would end up in it without psycopg knowing), no
    pipeline, UTF-8 text."""
    pgconn = connection.pgconn
    if not (connection.autocommit and pgconn.transaction_status == _IDLE
            and pgconn.pipeline_status == _NO_PIPELINE):
        return False
    names = _prepared.get(connection)
    if names is None:
        names = _prepared[connection] = set() if connection.info.encoding == "utf-8" else False
    return names is not False


def run_prepared(connection, name, sql, params):
    """Run ``sql`` (``$n`` placeholders), prepared as ``name`` on the first
    call on this session, with ``params`` as text (``bytes`` or ``None``),
    on a connection ``can_run`` accepted.

    Raises psycopg's exception for an error result. The call blocks in libpq
    with the GIL released; a Ctrl-C is seen when the statement has ended.
    """
    for value in params:
        if value and b"\0" in value:
            # libpq reads a text parameter up to its first NUL: refuse, as psycopg does.
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    names = _prepared[connection]
    pgconn = connection.pgconn
    # psycopg's own lock: a connection Django shares between threads (live
    # server tests) must not see two statements at once.
    with connection.lock:
        if name not in names:
            _check(pgconn, pgconn.prepare(name, sql))
            names.add(name)
        result = pgconn.exec_prepared(name, params)
        if result.status not in _SUCCEEDED:
            if _sqlstate(result) == UNDEFINED_PREPARED_STATEMENT:
                # Deallocated behind our back (DISCARD ALL, or psycopg's own
                # DEALLOCATE ALL after a ROLLBACK): nothing ran, prepare again.
                _check(pgconn, pgconn.prepare(name, sql))
                result = pgconn.exec_prepared(name, params)
            _check(pgconn, result)


def _sqlstate(result):
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    return sqlstate.decode() if sqlstate else None


def _check(pgconn, result):
    if result.status in _SUCCEEDED:
        return
    message = (result.error_message or pgconn.error_message).decode("utf-8", "replace").strip()
    sqlstate = _sqlstate(result)
    if sqlstate is None:  # no answer from the server: the connection is gone
        raise psycopg.OperationalError(message or "the connection to the server was lost")
    try:
        error_class = errors.lookup(sqlstate)
    except KeyError:
        error_class = psycopg.DatabaseError
    raise error_class(message)
