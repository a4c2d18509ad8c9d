"""Running a canvas here and now (``apply()``, ``EAGER`` mode).

The canvas classes (signatures.py) call these; they read a signature's
``subtask_type`` rather than its class, so that this module does not
import them.
"""

from .outcomes import Outcome, exception_text
from .planning import Plan
from .result import GroupResult
from .signature_data import from_header


def chord_error(member_id, exc):
    from .exceptions import ChordError

    return ChordError(f"Dependency {member_id} raised {exc!r}")


def apply_eagerly(task, message):
    """Run one message here and now, then its ``link``/``link_error`` callbacks."""
    from .execution import run_eagerly

    result = run_eagerly(task, message)
    if result.successful():
        for callback in message.headers.get("link", []):
            from_header(callback).apply((result.get(),))
    elif result.failed():
        _apply_errbacks(message, exception_text(result.result), result.traceback)
    return result


def _apply_errbacks(message, exc_text, traceback):
    """Run the ``link_error`` errbacks of ``message``, which failed (see errbacks.py)."""
    from . import errbacks

    if message.headers.get("link_error"):
        failure = errbacks.failure_header(message, exc_text, traceback, "eager")
        for errback in message.headers["link_error"]:
            errbacks.with_failure(errback, failure).apply((message.task_id,))


def fail_eagerly(sig, exc, errbacks=False):
    """The results of a canvas that cannot run because ``exc`` came first."""
    from . import states
    from .result import EagerResult

    kind = sig.subtask_type
    if kind == "group":
        sig.freeze()
        return GroupResult(sig.id, [fail_eagerly(m, exc) for m in sig.tasks])
    if kind == "chord":
        sig.freeze()
        header = fail_eagerly(sig.header, exc)
        body = fail_eagerly(sig.body, exc, errbacks)
        oldest(body)._parent = header
        return body
    if kind == "chain":
        sig.freeze()
        previous = None
        for step in sig.tasks:
            result = fail_eagerly(step, exc)
            if previous is not None:
                oldest(result)._parent = previous
            previous = result
        return previous
    plan = Plan()
    sig.plan(plan)
    (message,) = plan.messages
    text = exception_text(exc)
    result = EagerResult(Outcome(message=message, state=states.FAILURE, value=exc,
                                 result_text=text))
    if errbacks:
        _apply_errbacks(message, text, None)
    return result


def oldest(result):
    """The first result of a step (a chord's header), where its parent belongs."""
    while getattr(result, "_parent", None) is not None:
        result = result._parent
    return result


