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
"""

from . import concurrency_gate, rate_gate

# The concurrency gate first, the rate gate last: a message the concurrency
# gate parks takes no rate token, and one the rate gate refuses gives its slot
# back as it is handed back (the slot triggers).
GATES = (concurrency_gate.admit, rate_gate.gate)


def admit(backend, messages, worker_id):
    """The ``messages`` ``worker_id`` claimed that may start now, and the
    earliest ``time.monotonic()`` moment a refused one could be admitted
    (None: no refused message needs the worker to wake for it)."""
    wake_at = None
    for gate in GATES:
        if messages:
            messages, gate_wake_at = gate(backend, messages, worker_id)
        else:
            # Messages refused before come due even when this claim took
            # nothing: keep waking for them.
            gate_wake_at = getattr(gate, "next_wake", _never)()
        if gate_wake_at is not None:
            wake_at = gate_wake_at if wake_at is None else min(wake_at, gate_wake_at)
    return messages, wake_at


def _never():
    return None
