"""Prepared statements run straight through libpq (``psycopg.pq``).

For the statements a producer runs on every ``.delay()`` outside a
transaction. psycopg's cursor (query conversion, adapters, its prepared
statement cache, result objects) is a large share of ``.delay()``'s client
CPU, paid on every call; here the caller hands parameters over as text and
only the result's status is read. Each statement is its own transaction
(autocommit), so psycopg's view of the session stays true.
"""

import re
import sys
import weakref

import psycopg
from psycopg import capabilities, errors, pq
from psycopg.adapt import Transformer

# psycopg connection -> names of the statements prepared on its session, or
# False for a session this module leaves to psycopg (see can_run).
_prepared = weakref.WeakKeyDictionary()

UNDEFINED_PREPARED_STATEMENT = "26000"
DUPLICATE_PREPARED_STATEMENT = "42P05"
_PLACEHOLDER = re.compile(r"%s")
_IDLE = pq.TransactionStatus.IDLE
_NO_PIPELINE = pq.PipelineStatus.OFF
_SUCCEEDED = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_SYNCED = pq.ExecStatus.PIPELINE_SYNC


def numbered(sql):
    """``sql`` with psycopg's ``%s`` placeholders as libpq's ``$1, $2…``."""
    counter = iter(range(1, 1 + sql.count("%s")))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def can_run(connection):
    """Whether ``run_prepared`` may use ``connection`` now: no transaction
    open (a statement here would end up in it without psycopg knowing), no
    pipeline, UTF-8 text, and no gevent (see ``_greened``). ``run_then``
    also needs ``can_pipeline()``."""
    pgconn = connection.pgconn
    if not (connection.autocommit and pgconn.transaction_status == _IDLE
            and pgconn.pipeline_status == _NO_PIPELINE):
        return False
    names = _prepared.get(connection)
    if names is None:
        usable = connection.info.encoding == "utf-8" and not _greened()
        names = _prepared[connection] = set() if usable else False
    return names is not False


def can_pipeline():
    """Whether this libpq has pipeline mode (``run_then``): libpq 14 or
    later, and a psycopg built against one."""
    return capabilities.has_pipeline()


def _greened():
    """Whether gevent has patched ``select``: psycopg then waits for the
    server through gevent, letting other greenlets run, where a call that
    blocks in libpq would stop them all for the round trip. psycopg makes
    the same test."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("select")


def run_prepared(connection, name, sql, params, binary_result=False):
    """Run ``sql`` (``$n`` placeholders), prepared as ``name`` on the first
    call on this session, with ``params`` as text (``bytes`` or ``None``),
    on a connection ``can_run`` accepted. Returns libpq's result (its
    values binary if ``binary_result``: see ``load_rows``).

    Raises psycopg's exception for an error result. The call blocks in libpq
    with the GIL released; a Ctrl-C is seen when the statement has ended.
    """
    _refuse_nul(params)
    names = _prepared[connection]
    pgconn = connection.pgconn
    result_format = pq.Format.BINARY if binary_result else pq.Format.TEXT
    # psycopg's own lock: a connection Django shares between threads (live
    # server tests) must not see two statements at once.
    statement = ((name, sql, params),)
    with connection.lock:
        _prepare(pgconn, names, statement)
        result = pgconn.exec_prepared(name, params, result_format=result_format)
        if result.status not in _SUCCEEDED:
            if _sqlstate(result) == UNDEFINED_PREPARED_STATEMENT:
                # Deallocated behind our back (DISCARD ALL, or psycopg's own
                # DEALLOCATE ALL after a ROLLBACK): nothing ran, prepare again.
                _prepare(pgconn, names, statement, again=True)
                result = pgconn.exec_prepared(name, params, result_format=result_format)
            _check(pgconn, result)
    return result


class _Context:
    """What psycopg's Transformer reads its loaders from (an AdaptContext)."""

    def __init__(self, connection, adapters):
        self.connection = connection
        self.adapters = adapters


def transformer(connection, adapters):
    """psycopg's Transformer reading with the loaders of ``adapters`` (an
    ``AdaptersMap`` of ``connection``), for ``load_rows``: one per session,
    used by one thread at a time."""
    return Transformer(_Context(connection, adapters))


def load_rows(transformer, result):
    """The rows of ``result`` as tuples, read as psycopg's cursor would."""
    transformer.set_pgresult(result)
    try:
        return transformer.load_rows(0, result.ntuples, tuple)
    finally:
        transformer.set_pgresult(None)


def run_then(connection, first, then):
    """Run the prepared statement ``first``, then ``then``, each its own
    transaction, in one round trip (a libpq pipeline with a Sync after
    each). Each is ``(name, sql, params)`` as ``run_prepared`` takes them.

    Raises ``first``'s failure. Otherwise ``first`` is committed, and what
    comes back is ``then``'s failure (psycopg's exception) or None: the
    caller chooses whether it matters.
    """
    _refuse_nul(first[2], then[2])
    names = _prepared[connection]
    pgconn = connection.pgconn
    with connection.lock:
        _prepare(pgconn, names, (first, then))
        failure, then_failure = _pipeline(pgconn, (first, then))
        if _deallocated(failure):
            # Deallocated behind our back: nothing ran; prepare again.
            _prepare(pgconn, names, (first, then), again=True)
            failure, then_failure = _pipeline(pgconn, (first, then))
        if failure is not None:
            raise failure
        if _deallocated(then_failure):
            _prepare(pgconn, names, (then,), again=True)
            result = pgconn.exec_prepared(then[0], then[2])
            then_failure = None if result.status in _SUCCEEDED else _error(pgconn, result)
    return then_failure


def _prepare(pgconn, names, statements, again=False):
    """Prepare those of ``statements`` this session lacks (``again``: all of
    them, after a deallocation); one found already there is as good."""
    for name, sql, _ in statements:
        if again or name not in names:
            result = pgconn.prepare(name, sql)
            if _sqlstate(result) != DUPLICATE_PREPARED_STATEMENT:
                _check(pgconn, result)
            names.add(name)


def _pipeline(pgconn, statements):
    """Run ``statements`` in one round trip, each its own transaction.
    Returns, per statement, None or psycopg's exception for its failure."""
    pgconn.enter_pipeline_mode()
    try:
        for name, _, params in statements:
            pgconn.send_query_prepared(name, params)
            pgconn.pipeline_sync()  # ends the statement's transaction
        return [_outcome_until_sync(pgconn) for _ in statements]
    except BaseException:
        _settle(pgconn)
        raise
    finally:
        _leave_pipeline(pgconn)


# More results than a pipeline of run_then's two statements can leave unread.
_SETTLE_READS = 20


def _settle(pgconn):
    """Interrupted (a Ctrl-C lands between two calls into libpq): end what
    was sent and read it all, so that the session stays usable, as after a
    statement run alone (which may have committed before the interrupt was
    seen: so may these)."""
    if pgconn.status != pq.ConnStatus.OK:
        return
    # A statement queued without its Sync would never be answered; one Sync
    # too many is answered and read like the others.
    pgconn.pipeline_sync()
    for _ in range(_SETTLE_READS):
        try:
            pgconn.exit_pipeline_mode()
            return
        except psycopg.OperationalError:
            pgconn.get_result()  # results still due: read one


def _outcome_until_sync(pgconn):
    failure = None
    while (result := pgconn.get_result()) is not None:
        if failure is None and result.status not in _SUCCEEDED:
            failure = _error(pgconn, result)
    sync = pgconn.get_result()
    if sync is None or sync.status != _SYNCED:
        # No sync: the session is gone (ended by the server, network lost).
        if isinstance(failure, psycopg.OperationalError):
            raise failure
        raise psycopg.OperationalError(
            _message(pgconn, sync) or "the connection to the server was lost")
    return failure


def _deallocated(failure):
    return failure is not None and failure.sqlstate == UNDEFINED_PREPARED_STATEMENT


def _leave_pipeline(pgconn):
    if pgconn.pipeline_status == _NO_PIPELINE:
        return
    try:
        pgconn.exit_pipeline_mode()
    except psycopg.OperationalError:
        # Results left unread (a lost session, a second Ctrl-C while the
        # rest was read): a session stuck mid-pipeline would confuse
        # psycopg; closed, it is a lost connection, which Django replaces.
        pgconn.finish()


def _refuse_nul(*param_lists):
    # libpq reads a text parameter up to its first NUL: refuse, as psycopg
    # does. One search over the values joined is cheaper than one per value.
    if b"\0" in b"".join([value for params in param_lists for value in params if value]):
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")


def _sqlstate(result):
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    return sqlstate.decode() if sqlstate else None


def _check(pgconn, result):
    if result.status not in _SUCCEEDED:
        raise _error(pgconn, result)


def _message(pgconn, result):
    raw = (result.error_message if result is not None else b"") or pgconn.error_message
    return raw.decode("utf-8", "replace").strip()


def _error(pgconn, result):
    """psycopg's exception for the error ``result``, with its ``diag`` (the
    server's SQLSTATE, detail, constraint...) as psycopg's cursors give it."""
    if _sqlstate(result) is None:  # no answer from the server: the connection is gone
        return psycopg.OperationalError(
            _message(pgconn, result) or "the connection to the server was lost")
    return errors.error_from_result(result)
