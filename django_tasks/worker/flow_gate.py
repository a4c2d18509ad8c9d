"""Admission of claimed messages to run: the flow-control gates.

A claim takes due messages in run order whatever their task; messages of
tasks under a flow limit (``concurrency_limit``, ``rate_limit``) then pass
through these gates before the worker starts them. A message a gate refuses
goes back to the queue without counting a delivery, so the tasks behind it
on the same queue keep flowing. Messages under no limit cost one look at
their headers.

Gates run in order, each on what the one before admitted. The concurrency
gate runs first: a slot is taken before a rate token, and a message the
rate gate refuses afterwards gives its slot back when it is handed back.

A database error inside a gate (the server restarted, the connection
dropped) is retried here, by the consumer's ``retry``, and nowhere else:
the gate is run again, on those of its messages this worker still holds,
until it gets through. Retrying gate by gate, not the whole admission,
keeps what a gate before it committed from being decided again. What a
gate does when run again is in its docstring: it may hand back a message it
need not have, or waste rate starts, but it never admits a message twice
nor loses one.
"""

from . import concurrency_gate, rate_gate

# The concurrency gate first, the rate gate last: a message the concurrency
# gate parks takes no rate token, and one the rate gate refuses gives its slot
# back as it is handed back (the slot triggers).
GATES = (concurrency_gate.admit, rate_gate.gate)


def admit(backend, messages, worker_id, retry):
    """The ``messages`` ``worker_id`` claimed that may start now, and the
    earliest ``time.monotonic()`` moment a refused one could be admitted
    (None: no refused message needs the worker to wake for it).

    ``retry(operation)`` runs ``operation()`` until it gets through a
    database error."""
    wake_at = None
    for gate in GATES:
        if messages:
            messages, gate_wake_at = _run_gate(gate, backend, messages, worker_id, retry)
        else:
            # Messages refused before come due even when this claim took
            # nothing: keep waking for them.
            gate_wake_at = getattr(gate, "next_wake", _never)()
        if gate_wake_at is not None:
            wake_at = gate_wake_at if wake_at is None else min(wake_at, gate_wake_at)
    return messages, wake_at


def _run_gate(gate, backend, messages, worker_id, retry):
    """``gate`` on ``messages`` through ``retry``. Run again after a database
    error, it decides only those still claimed by ``worker_id``: a write of
    the attempt cut short may have committed without its answer reaching us
    (a hand-back), and a message handed back is no longer this worker's to
    admit, however the gate would decide it now."""
    attempts = 0

    def attempt():
        nonlocal attempts
        attempts += 1
        batch = messages if attempts == 1 else _still_claimed(backend, messages, worker_id)
        return gate(backend, batch, worker_id)

    return retry(attempt)


def _still_claimed(backend, messages, worker_id):
    held = set(backend.claimed_by_worker(worker_id).filter(id__in=[m.id for m in messages])
               .values_list("id", flat=True))
    return [m for m in messages if m.id in held]


def _never():
    return None
