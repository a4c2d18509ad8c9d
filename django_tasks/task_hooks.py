"""Celery's task handlers (``on_success``, ``on_failure``…), and the ends a
task chooses itself (``Ignore``, ``Reject``, ``replace()``).

The handlers run where the task ran (worker or eager mode), after its
outcome is known and before it is stored, with Celery's arguments. A
handler that raises is logged; as in Celery, where the task had succeeded
(``on_success``, ``after_return``) or was to be retried (``on_retry``) it
then ends FAILURE with the handler's error; ``on_failure`` raising leaves
the task's own failure. Either way the worker goes on.
"""

import logging

from . import states
from .conf import settings
from .einfo import ExceptionInfo
from .exceptions import Ignore, Reject, Retry

logger = logging.getLogger("django_tasks.worker")

HOOKS = ("before_start", "on_success", "on_failure", "on_retry", "after_return")


def overridden(cls, base):
    """The handlers ``cls`` defines over ``base``'s no-ops (none: nothing to call)."""
    return frozenset(name for name in HOOKS if getattr(cls, name) is not getattr(base, name))


def before_start(task, request, args, kwargs):
    """Inside the task's ``try``: raising fails the task, as in Celery."""
    if "before_start" in task.hooks:
        task.before_start(request.id, args, kwargs)


def run_handlers(task, outcome, args, kwargs, fail):
    """Call the handlers ``outcome`` asks for; returns the outcome to store.

    ``fail(exc)`` makes the FAILURE outcome of ``exc``.
    """
    if not task.hooks:
        return outcome
    return _Handlers(task, args, kwargs, fail).run(outcome)


class _Handlers:
    def __init__(self, task, args, kwargs, fail):
        self.task, self.args, self.kwargs, self.fail = task, args, kwargs, fail

    def run(self, outcome):
        hooks = self.task.hooks
        state = outcome.state
        if state == states.SUCCESS and "on_success" in hooks:
            outcome = self.guarded("on_success", outcome, outcome.value)
        elif state == states.RETRY and "on_retry" in hooks:
            # Celery passes the exception retry() was given (None without one).
            exc = None if isinstance(outcome.value, Retry) else outcome.value
            outcome = self.guarded("on_retry", outcome, exc, einfo=_einfo(outcome))
        elif state == states.FAILURE:
            self.on_failure(outcome)
        if outcome.state in (states.SUCCESS, states.FAILURE) and "after_return" in hooks:
            einfo = _einfo(outcome) if outcome.state == states.FAILURE else None
            outcome = self.guarded("after_return", outcome, outcome.value, einfo=einfo,
                                   status=outcome.state)
        return outcome

    def guarded(self, name, outcome, value, einfo=False, status=None):
        """Call handler ``name``; if it raises, the outcome its error makes."""
        message = outcome.message
        arguments = (value, message.task_id, self.args, self.kwargs)
        if status is not None:
            arguments = (status, *arguments)
        if einfo is not False:
            arguments = (*arguments, einfo)
        try:
            getattr(self.task, name)(*arguments)
        except Exception as exc:
            _log(name, message, exc)
            if outcome.state == states.FAILURE:
                return outcome  # the task's own failure stays what it is
            outcome = self.fail(exc)
            self.on_failure(outcome)
        return outcome

    def on_failure(self, outcome):
        if "on_failure" not in self.task.hooks:
            return
        message = outcome.message
        try:
            self.task.on_failure(outcome.value, message.task_id, self.args, self.kwargs,
                                 _einfo(outcome))
        except Exception as exc:
            _log("on_failure", message, exc)


def _log(name, message, exc):
    logger.error("%s of %s[%s] raised: %r", name, message.task_name, message.task_id, exc,
                 exc_info=exc)


def _einfo(outcome):
    return ExceptionInfo(outcome.value, outcome.traceback)


# -- ends the task chooses ---------------------------------------------------

def chosen_end(message, exc, is_eager, exception_outcome):
    """The outcome of a task that raised ``Ignore`` or ``Reject``.

    ``exception_outcome(state, exc)`` makes a stored exception outcome.
    """
    from .outcomes import Outcome

    if isinstance(exc, Reject):
        if exc.requeue and not is_eager and message.deliveries < settings.MAX_DELIVERIES:
            return Outcome(message=message, state=states.REJECTED, value=exc, requeue=True)
        if exc.requeue:
            exc = Reject(f"{exc} (rejected with requeue on delivery {message.deliveries}; "
                         f"MAX_DELIVERIES is {settings.MAX_DELIVERIES})", requeue=True)
        return exception_outcome(states.REJECTED, exc)
    assert isinstance(exc, Ignore)
    return Outcome(message=message, state=states.IGNORED, value=exc,
                   replacement=getattr(exc, "replacement", None))
