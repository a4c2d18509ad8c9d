"""``self.replace(sig)``: a running task hands its place to a new signature.

As in Celery 5, the replacement (the last task of a chain, a chord's
body; a group is made a chord whose body gathers its values) takes the
task's id, so ``AsyncResult(original_id).get()`` gives the replacement's
value; the task's ``link``/``link_error`` callbacks, the rest of its chain
and its chord membership move to the replacement; the task itself ends
without a state (``Ignore``). The replacement is enqueued in the
transaction that acknowledges the task's message (the queue holds one
message per id), so a worker dying in between runs the task again rather
than losing both.

In eager mode (and when called directly) the replacement runs at once and
``replace()`` returns its value, as Celery's ``on_replace`` does.
"""

from .canvas import (
    Plan,
    Signature,
    _chain,
    _chord,
    chord,
    chunks,
    from_header,
    group,
    maybe_signature,
    signature,
)
from .exceptions import Ignore, ImproperlyConfigured


class Replaced(Ignore):
    """Ends the task being replaced; carries the replacement's Plan."""

    def __init__(self, replacement):
        super().__init__("Replaced by new task")
        self.replacement = replacement


def replace(task, sig):
    if not isinstance(sig, Signature):
        sig = maybe_signature(sig) if isinstance(sig, dict) else None
    if sig is None:
        raise TypeError(f"{task.name}.replace() takes a signature, such as other.s(...)")
    if "chord" in sig.options:
        # The task's own chord membership moves to the replacement; one of
        # another chord's would count it there too (Celery refuses it too).
        raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
    request = task.request
    sig, last = _with_last_task(sig.clone())
    if request.called_directly or request.is_eager:
        return sig.apply().get()
    raise Replaced(_plan(request, sig, last))


def _with_last_task(sig):
    """``sig`` ready to take the task's place, and the task whose result is
    the replacement's (it takes the task's id); the same shape in every mode.
    A group at the end is made a chord whose body gathers its values, as
    Celery does, so that one task holds the replaced task's result."""
    if isinstance(sig, group):
        sig = chord(sig, signature("django_tasks.accumulate"))
    if isinstance(sig, _chain):
        steps = sig["kwargs"]["tasks"] = sig._steps()
        if not steps:
            raise ImproperlyConfigured("Cannot replace with an empty chain")
        steps[-1], last = _with_last_task(steps[-1])
        return sig, last
    if isinstance(sig, _chord):
        if sig.body is None:
            raise ValueError("cannot replace a task with a chord without a body: "
                             "chord(header, body)")
        sig["kwargs"]["body"], last = _with_last_task(sig.body)
        return sig, last
    if type(sig) is not Signature:
        # map/starmap/chunks: no task of theirs can take the replaced task's id.
        hint = " (chunks(...).group() is a group)" if isinstance(sig, chunks) else ""
        raise TypeError("replace() takes a task's signature, a chain, a group or a chord, "
                        f"not {type(sig).__name__.lstrip('_')}{hint}")
    return sig, sig


def _plan(request, sig, last):
    headers = request.headers
    last.set(task_id=request.id)
    for callback in headers.get("link", []):
        last.link(from_header(callback))
    for errback in headers.get("link_error", []):
        # On a chain: freezing gives every step the errback, as Celery does.
        sig.link_error(from_header(errback))
    if headers.get("chain"):
        last.with_continuation([from_header(step) for step in headers["chain"]])
    for key in ("chord", "group_id"):
        if headers.get(key):
            last.set(**{key: headers[key]})
    plan = Plan()
    # It takes the task's place in the workflow: the same parent and root.
    sig.plan(plan, (), {}, {"parent_id": request.parent_id, "root_id": request.root_id})
    return plan


def write_replacements(outcomes, queue):
    """FINISH_HOOK: enqueue the replacements of replaced tasks (their own
    messages are already deleted in this transaction)."""
    for outcome in outcomes:
        if outcome.replacement is not None:
            outcome.replacement.write(queue)


write_replacements.wants = lambda outcomes: any(o.replacement is not None for o in outcomes)
