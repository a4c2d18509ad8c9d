"""The concurrency gate: at most N running messages per task and key, across workers.

A claimed message whose ``concurrency`` header (concurrency.py) names a key
takes one of its key's slots, or, when all N are taken, is parked: handed
back unclaimed, its delivery not counted, due at ``PARKED`` (beyond the
claim's reach), so it waits without holding a worker slot. The slots are
the messages flagged ``holds_slot``, counted from the rows: a message
deleted or handed back by any path frees its slot, and the database's
triggers (migration 0012) then make the next parked message of its key due
and wake a worker. Each key's admission runs in a short transaction that
holds the key's lock (``BaseQueue.slot_transaction``), the wakers take it
too: a message parked and a slot freed cannot miss each other.

A claim with no limited message costs one look at each message's headers.
"""

import time

from ..concurrency import HEADER


def admit(backend, messages, worker_id):
    """``messages`` but the parked ones, and when to claim again: now if
    some were parked (the messages behind them on the queue may run; the
    parked ones are out of the claim's reach), else None. A parked message
    is woken by the slot freed, never by a clock.

    Cut short by a database error, it is run again (flow_gate.py); what
    had not committed is decided then. A message whose slot had committed
    keeps it."""
    if not any(HEADER in m.headers for m in messages):
        return messages, None
    by_key = {}
    for message in messages:
        limited = message.headers.get(HEADER)
        if limited is not None:
            by_key.setdefault((message.task_name, limited[0]), []).append(message)
    groups = [(task_name, key, [m.id for m in group], [m.headers[HEADER][1] for m in group])
              for (task_name, key), group in sorted(by_key.items())]
    admitted = backend.take_slots(worker_id, groups)
    refused = {m.id for m in messages if HEADER in m.headers and m.id not in admitted}
    passed = [m for m in messages if m.id not in refused]
    return passed, (time.monotonic() if refused else None)

