"""``self.replace(sig)``: a running task hands its place to a new signature.

As in Celery 5, the replacement (the last task of a chain) takes the
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

from .canvas import Plan, Signature, _chain, from_header, maybe_signature
from .exceptions import Ignore


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
    request = task.request
    sig = sig.clone()
    last = _last_task(sig)
    if request.called_directly or request.is_eager:
        return sig.apply().get()
    raise Replaced(_plan(request, sig, last))


def _last_task(sig):
    """The task whose result is the replacement's; the same shape in every mode."""
    last = sig
    if isinstance(sig, _chain):
        steps = sig["kwargs"]["tasks"] = sig._steps()
        if not steps:
            raise ValueError("cannot replace a task with an empty chain")
        last = steps[-1]
    if type(last) is not Signature:
        raise TypeError("replace() takes a task's signature or a chain that ends with "
                        f"one, not {type(last).__name__.lstrip('_')}: the replacement "
                        "takes over the task's id")
    return last


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
