"""Task states, with the same names and groupings as Celery's.

Besides these, a task may report states of its own with
``self.update_state(state="PROGRESS", meta=...)``: any other name is a
custom state, neither ready nor propagating (``is_custom``).
"""

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
RETRY = "RETRY"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
# ``raise Reject(...)`` without requeue (or past MAX_DELIVERIES): stored, and
# ready, so that ``get()`` raises the Reject instead of waiting forever
# (Celery leaves such a task's state as it was).
REJECTED = "REJECTED"
# ``raise Ignore()`` (and ``replace()``): nothing is stored. Never in a row.
IGNORED = "IGNORED"

ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, RETRY, SUCCESS, FAILURE, REVOKED,
                        REJECTED})
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED, REJECTED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED, REJECTED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED, REJECTED})

# The longest state name a result row holds (custom states included).
MAX_STATE_LENGTH = 50

CHOICES = [(state, state.title()) for state in
           (PENDING, RECEIVED, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, REJECTED)]


def is_custom(state):
    """A state a task reported itself (``update_state``), such as ``PROGRESS``."""
    return state not in ALL_STATES
