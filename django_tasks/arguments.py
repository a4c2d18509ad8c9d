"""Checking a call's arguments against the task function, as Celery's ``typing=True``.

A call with the wrong arguments raises ``TypeError`` where it is made
(``.delay()``, ``.apply_async()``, applying a signature or a canvas), not
later in a worker. Only the shape of a call matters to ``Signature.bind``
(how many positional arguments, which keyword names), so the shapes that
fit are kept per task: a ``.delay()`` after the first is one set lookup.
"""

import inspect

from .registry import tasks as registry
from .signature_data import maybe_signature

# Shapes kept per task; a task called with ever new keyword names (a
# ``**kwargs`` function) starts over rather than grow without bound.
MAX_SHAPES = 256


class ArgumentCheck:
    __slots__ = ("task", "parameters", "fits")

    def __init__(self, task):
        self.task = task
        self.parameters = _parameters(task)
        self.fits = set()

    def __call__(self, npositional, names):
        shape = (npositional, names)
        if shape in self.fits or self.parameters is None:
            return
        try:
            self.parameters.bind(*(None,) * npositional, **dict.fromkeys(names))
        except TypeError as exc:
            raise TypeError(f"{self.task.name}() got wrong arguments: {exc} "
                            f"(the function's parameters are {self.parameters})") from None
        if len(self.fits) >= MAX_SHAPES:
            self.fits.clear()
        self.fits.add(shape)


def _parameters(task):
    """The parameters a caller passes (without ``self`` for ``bind=True``), or None
    where Python cannot tell them (some builtins): such a task is not checked."""
    try:
        signature = inspect.signature(task.run)
    except (TypeError, ValueError):
        return None
    if task.bind:
        parameters = list(signature.parameters.values())
        if parameters and parameters[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                 inspect.Parameter.POSITIONAL_OR_KEYWORD):
            signature = signature.replace(parameters=parameters[1:])
    return signature


def check_arguments(task, args, kwargs):
    """``TypeError`` if ``task`` (one whose ``typing`` is on) cannot be called
    with ``args`` and ``kwargs``. Every ``.delay()`` comes here: one call and
    a set lookup once the shape was seen."""
    check = task.__dict__.get("_argument_check") or _checker(task)
    shape = (len(args) if args else 0, tuple(kwargs) if kwargs else ())
    if shape not in check.fits:
        check(*shape)


def _checker(task):
    check = task.__dict__.get("_argument_check")
    if check is None:
        check = task.__dict__["_argument_check"] = ArgumentCheck(task)
    return check


def check_canvas(sig, args=None, kwargs=None):
    """Check every call of a canvas whose arguments are known when it is applied.

    The first call gets ``args``/``kwargs``; a later chain step, a chord body
    and a ``link`` callback get one more positional argument (the value
    before), which is all that is known of it here. Errbacks, and the calls
    inside ``map``/``starmap``/``chunks``, are not checked: the worker calls
    them (and reports a wrong call as that task's failure).
    """
    _check(sig, len(args) if args else 0, kwargs)


def _check(sig, npositional, kwargs):
    kind = sig.subtask_type
    if kind is None:
        _check_call(sig, npositional, kwargs)
    elif kind == "chain":
        steps = sig.tasks
        for index, step in enumerate(steps):
            _check(step, npositional if index == 0 else 1, kwargs if index == 0 else None)
        _check_links(sig)
    elif kind == "group":
        _check_members(sig.tasks, npositional, kwargs)
        _check_links(sig)
    elif kind == "chord":
        _check(sig.header, npositional, kwargs)
        if sig.body is not None:
            _check(sig.body, 1, None)


def _check_call(sig, npositional, kwargs):
    # Read as a dict (not through the properties): a group may have thousands.
    task = registry.get(sig["task"])
    if task is not None and task.typing:
        names = sig["kwargs"]
        if sig["immutable"]:
            npositional = 0
        elif kwargs:
            names = {**names, **kwargs}
        _checker(task)(npositional + len(sig["args"]), tuple(names) if names else ())
    options = sig["options"]
    if options:
        _check_links(sig)
        for step in options.get("chain") or ():
            _check(maybe_signature(step), 1, None)


def _check_members(members, npositional, kwargs):
    """A group's members: plain calls (the bulk of a large group) the short way."""
    checks = {}  # task name -> its check, or None for a task not checked
    for member in members:
        if member["subtask_type"] is not None or member["options"]:
            _check(member, npositional, kwargs)
            continue
        name = member["task"]
        check = checks.get(name, checks)
        if check is checks:
            task = registry.get(name)
            check = checks[name] = _checker(task) if task is not None and task.typing else None
        if check is not None:
            names = member["kwargs"]
            if member["immutable"]:
                check(len(member["args"]), tuple(names) if names else ())
            else:
                if kwargs:
                    names = {**names, **kwargs}
                check(npositional + len(member["args"]), tuple(names) if names else ())


def _check_links(sig):
    links = sig.options.get("link")
    if not links:
        return
    for link in links if isinstance(links, (list, tuple)) else (links,):
        _check(maybe_signature(link), 1, None)

