"""Signatures and the canvas: chain, group, chord, map, starmap, chunks.

A ``Signature`` is a dict (task name, args, kwargs, options, subtask_type,
immutable), as in Celery, so it is stored as plain data in a message's
headers and rebuilt with ``Signature.from_dict`` (see signature_data.py).

Two ways to run a canvas, with the same results:

- ``apply_async()``: freeze (give every task its id up front, so the caller
  gets its results at once), plan (the messages to write, and for a chord
  its ``TaskGroup`` row: planning.py), then write the plan in one
  transaction. What comes next travels in the messages' headers (``chain``,
  ``chord``, ``link``, ``link_error``) and is planned and written by
  ``workflow.advance_workflows`` in the transaction that stores the result
  of the step before.
- ``apply()``: run it all here and now (``EAGER`` mode: eager.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from .arguments import check_canvas
from .conf import settings
from .eager import apply_eagerly, chord_error, fail_eagerly, oldest
from .messages import checked_task_id, is_task_id, new_task_id, new_task_ids
from .planning import PAUSE_COLLECTOR_FROM, Plan, collector_paused, write_planned
from .registry import tasks as registry
from .result import AsyncResult, GroupResult
from .signature_data import (
    MESSAGE_OPTION_SET,
    MESSAGE_OPTIONS,
    NOT_IN_CANVAS,
    UNIQUE_OPTIONS,
    WORKFLOW_OPTION_SET,
    copy_tree,
    maybe_signature,
    register_type,
    signature_from_dict,
    to_header,
)

if TYPE_CHECKING:
    from .task import Task

# -- Signature --------------------------------------------------------------

@register_type
class Signature(dict):
    """A task call that can be passed around, stored, completed and applied."""

    subtask_type_name: str | None = None

    def __init__(self, task: Task | Signature | str | None = None,
                 args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None, immutable: bool = False,
                 subtask_type: str | None = None, **extra_options: Any) -> None:
        name = task if task is None or isinstance(task, str) else task.name
        # ``extra_options`` is this call's own dict: kept as the options
        # when there are no others (``task.s()`` in a group of thousands).
        super().__init__(task=name, args=list(args) if args else [],
                         kwargs=dict(kwargs) if kwargs else {},
                         options={**options, **extra_options} if options else extra_options,
                         subtask_type=subtask_type, immutable=bool(immutable))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        kind = data.get("subtask_type")
        if kind:
            return signature_from_dict(data)
        return Signature(data["task"], data.get("args"), data.get("kwargs"),
                         copy_tree(data.get("options") or {}),
                         immutable=data.get("immutable", False))

    # -- parts --------------------------------------------------------

    name = property(lambda self: self["task"])
    task = name
    args = property(lambda self: tuple(self["args"]))
    kwargs = property(lambda self: self["kwargs"])
    options = property(lambda self: self["options"])
    immutable = property(lambda self: self["immutable"])
    subtask_type = property(lambda self: self["subtask_type"])

    @property
    def id(self):
        return self.options.get("task_id")

    @property
    def type(self):
        return registry.lookup(self.name)

    def __repr__(self):
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    # -- building -----------------------------------------------------

    def clone(self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Signature:
        """A copy with partial arguments (prepended, as in Celery) and options merged."""
        clone = Signature.from_dict(copy_tree(dict(self)))
        if not self.immutable:
            clone["args"] = [*(args or ()), *clone["args"]]
            clone["kwargs"] = {**clone["kwargs"], **(kwargs or {})}
        clone.options.update(options)
        return clone

    partial = clone

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        if immutable is not None:
            self["immutable"] = bool(immutable)
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = bool(immutable)

    def link(self, callback):
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback):
        self.options.setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback):
        self.link_error(errback)
        return self

    def __or__(self, other):
        if isinstance(other, _chain):
            return _chain(self, *other.tasks, **other.options)
        if isinstance(other, Signature):
            return _chain(self, other)
        return NotImplemented

    # -- freezing and planning -------------------------------------------

    def freeze(self) -> AsyncResult | GroupResult:
        """Give the call its task id (once) and return its result."""
        return AsyncResult(self._frozen_id(), task_name=self.name)

    def _frozen_id(self):
        options = self.options
        task_id = options.get("task_id")
        if task_id is None:
            task_id = options["task_id"] = new_task_id()
        elif type(task_id) is not str or not is_task_id(task_id):
            # Refused before anything is planned (a group's or chord's id too).
            task_id = options["task_id"] = checked_task_id(task_id)
        return task_id

    def finals(self):
        """The calls whose results are this canvas's result (here: itself)."""
        return [self]

    def result_shape(self):
        """This canvas's value as its finals' ids: an id, or for a group
        ``{"group_id", "results"}`` (the shape ``GroupResult.save`` stores),
        which a group at the end of a chain keeps: it stays one value."""
        return self.id

    def _width(self):
        """How many calls start at once when this canvas is applied."""
        return 1

    def with_continuation(self, rest):
        """This call followed by the chain ``rest`` (signatures, frozen)."""
        if rest:
            self.options["chain"] = [*self.options.get("chain", []), *rest]
        return self

    def plan(self, plan, args=(), kwargs=None, context=None, frozen=None):
        """Add the message(s) that start this canvas to ``plan``.

        ``frozen``: options read over this call's own (its task and group ids
        when a group plans it without copying it).
        """
        if self.immutable:
            args, kwargs = self.args, self.kwargs
        else:
            args, kwargs = (*args, *self.args), {**self.kwargs, **(kwargs or {})}
        options = self["options"] if frozen is None else {**self["options"], **frozen}
        headers = dict(options.get("headers") or {})
        message_options = {}
        # One pass over the (usually two or three) options a signature has.
        for key, value in options.items():
            if key in MESSAGE_OPTION_SET:
                message_options[key] = value
            elif key in WORKFLOW_OPTION_SET and value:
                headers[key] = value
            elif key in UNIQUE_OPTIONS and value is not None:
                raise TypeError(NOT_IN_CANVAS.format(name=self.name, key=key))
        if options.get("chain"):
            headers["chain"] = [to_header(step) for step in options["chain"]]
        if context:
            headers.update({key: value for key, value in context.items() if value})
        plan.add(plan.builder(self.name).build(args, kwargs, headers=headers,
                                               **message_options))

    # -- applying -----------------------------------------------------

    def apply_async(self, args: Iterable[Any] | None = None,
                    kwargs: Mapping[str, Any] | None = None,
                    **options: Any) -> AsyncResult | GroupResult:
        check_canvas(self, args, kwargs)  # Celery's typing=True: TypeError here
        with collector_paused(self._width() >= PAUSE_COLLECTOR_FROM):
            # In a call of its own so that the copies and the plan are gone
            # (refcounting) before the collector is back.
            return self._apply_async(args, kwargs, options)

    def _apply_async(self, args, kwargs, options):
        sig = self.clone(**options)
        if type(sig) is Signature and _unique(sig):
            return _apply_unique(sig, args, kwargs)
        # A task this process does not know is sent as Celery's send_task
        # does, even in EAGER mode: it cannot run here.
        if settings.EAGER and (sig.subtask_type or sig.name in registry):
            return sig.apply(args, kwargs)
        result = sig.freeze()
        write_planned(lambda plan: sig.plan(plan, tuple(args or ()), kwargs))
        if type(sig) is Signature and _ignores_result(sig):
            result.ignored = True
        return result

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult | GroupResult:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> AsyncResult | GroupResult:
        return await self.aapply_async(args, kwargs)

    async def aapply_async(self, args: Iterable[Any] | None = None,
                           kwargs: Mapping[str, Any] | None = None,
                           **options: Any) -> AsyncResult | GroupResult:
        """``apply_async`` for async code (see ``Task.aapply_async``)."""
        return await sync_to_async(self.apply_async)(args, kwargs, **options)

    def apply(self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> AsyncResult | GroupResult:
        """Run here and now (EAGER); returns an EagerResult."""
        sig = self.clone(**options)
        if _unique(sig):  # checked, not applied: no queue here (as Celery's eager)
            _apply_unique(sig, args, kwargs, eager=True)
        plan = Plan()
        sig.plan(plan, tuple(args or ()), kwargs)
        (message,) = plan.messages
        return apply_eagerly(sig.type, message)

    def __call__(self, *args, **kwargs):
        """Call the task body inline, as Celery does for a signature."""
        merged = (*args, *self.args) if not self.immutable else self.args
        merged_kwargs = {**self.kwargs, **kwargs} if not self.immutable else self.kwargs
        return self.type(*merged, **merged_kwargs)


def _unique(sig):
    """Whether ``sig``, sent alone, is a unique send (its options or its task's)."""
    options = sig.options
    if options.get("unique_key") is not None or options.get("unique_for") is not None:
        return True
    task = registry.get(sig.name)
    return task is not None and task.unique_key is not None


def _apply_unique(sig, args, kwargs, eager=False):
    """Send ``sig`` as its task's ``apply_async`` does, with its unique key;
    ``eager``: only check the unique options, and take them out of ``sig``."""
    from .task import send_task, task_for_sending

    if not sig.immutable:
        args, kwargs = (*(args or ()), *sig.args), {**sig.kwargs, **(kwargs or {})}
    else:
        args, kwargs = sig.args, sig.kwargs
    options = {k: v for k, v in sig.options.items() if k in MESSAGE_OPTION_SET}
    if sig.options.get("headers"):
        options["headers"] = sig.options["headers"]
    unique_key, unique_for = sig.options.get("unique_key"), sig.options.get("unique_for")
    if eager:
        from .unique import key_of_call

        key_of_call(task_for_sending(sig.name), args, kwargs, unique_key, unique_for,
                    f"apply() of {sig.name}")
        sig.options.pop("unique_key", None)
        sig.options.pop("unique_for", None)
        return None
    task = registry.get(sig.name)
    if task is None:
        return send_task(sig.name, args, kwargs, unique_key=unique_key,
                         unique_for=unique_for, **options)
    return task.apply_async(args, kwargs, unique_key=unique_key, unique_for=unique_for,
                            **options)


# -- chain ------------------------------------------------------------------

@register_type
class _chain(Signature):
    subtask_type_name: str | None = "chain"

    def __init__(self, *tasks: Any, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        steps: list[Signature] = []
        for step in map(maybe_signature, tasks):
            # A chain inside a chain is the same chain.
            steps.extend(step.tasks if isinstance(step, _chain) and not step.options
                         else [step])
        super().__init__("django_tasks.chain", (), {"tasks": steps}, options,
                         subtask_type="chain")

    @classmethod
    def from_dict(cls, data):
        return cls(*data["kwargs"]["tasks"], **copy_tree(data.get("options") or {}))

    @property
    def tasks(self):
        return self["kwargs"]["tasks"]

    def _width(self):
        # Applying a chain starts its first step (a group: as a chord).
        return self.tasks[0]._width() if self.tasks else 1

    def __repr__(self):
        return " | ".join(repr(step) for step in self.tasks) or "chain()"

    def __or__(self, other):
        if isinstance(other, _chain):
            return _chain(*self.tasks, *other.tasks, **self.options)
        if isinstance(other, Signature):
            return _chain(*self.tasks, other, **self.options)
        return NotImplemented

    def __call__(self, *args, **kwargs):
        return self.apply_async(args, kwargs)

    def clone(self, args=None, kwargs=None, **options):
        clone = Signature.from_dict(copy_tree(dict(self)))
        clone.options.update(options)
        if (args or kwargs) and clone.tasks:
            clone.tasks[0] = clone.tasks[0].clone(args, kwargs)
        return clone

    def _steps(self):
        """The steps, with ``group, next`` made into ``chord(group, next)`` (Celery)."""
        steps = list(self.tasks)
        normalized = []
        while steps:
            step = steps.pop(0)
            if isinstance(step, group) and steps:
                step = chord(step, steps.pop(0))
            normalized.append(step)
        return normalized

    def freeze(self):
        steps = self["kwargs"]["tasks"] = self._steps()
        if not steps:
            raise ValueError("an empty chain has nothing to run")
        task_id = self.options.pop("task_id", None)
        if task_id is not None:
            # As in Celery: a chain's id is its last task's, the result it returns
            # (a group's id for a group, a chord's body for a chord).
            steps[-1].options["task_id"] = checked_task_id(task_id)
        for callback in _listed(self.options.pop("link", [])):
            steps[-1].link(callback)
        for errback in _listed(self.options.pop("link_error", [])):
            for step in steps:
                step.link_error(errback)
        previous = None
        for step in steps:
            result = step.freeze()
            if previous is not None:
                oldest(result)._parent = previous
            previous = result
        return previous

    def finals(self):
        return self.tasks[-1].finals()

    def result_shape(self):
        return self.tasks[-1].result_shape()

    def with_continuation(self, rest):
        return _chain(*self.tasks, *rest, **self.options)

    def _first_and_rest(self):
        steps = self.tasks
        inherited = {k: v for k, v in self.options.items() if k in MESSAGE_OPTIONS
                     and k != "task_id"}
        first = steps[0].clone(**inherited)
        return first.with_continuation(steps[1:]), steps[1:]

    def plan(self, plan, args=(), kwargs=None, context=None):
        self.freeze()
        first, _ = self._first_and_rest()
        first.plan(plan, args, kwargs, context)

    def apply(self, args=None, kwargs=None, **options):
        sig = self.clone(**options)
        sig.freeze()
        previous = None
        for step in sig.tasks:
            if previous is None:
                result = step.apply(args, kwargs)
            elif previous.successful():
                result = step.apply((previous.get(),))
            else:
                result = fail_eagerly(step, previous.result)
            if previous is not None:
                oldest(result)._parent = previous
            previous = result
        return previous


def _listed(value):
    """``link=``/``link_error=``: one signature or a list of them."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


# -- group ------------------------------------------------------------------

@register_type
class group(Signature):  # noqa: N801 (Celery's name)
    subtask_type_name: str | None = "group"

    def __init__(self, *tasks: Any, **options: Any) -> None:
        if len(tasks) == 1 and isinstance(tasks[0], group):
            # group(group(x, y)) is group(x, y), as in Celery (one level).
            tasks = _unrolled(tasks, deep=False)
        elif len(tasks) == 1 and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        # A nested group stays one member until the group is frozen (Celery:
        # len(group(a, group(b, c))) is 2); it is unrolled then.
        super().__init__("django_tasks.group", (), {"tasks": list(map(maybe_signature, tasks))},
                         options, subtask_type="group")

    @classmethod
    def from_dict(cls, data):
        return cls(*data["kwargs"]["tasks"], **copy_tree(data.get("options") or {}))

    @property
    def tasks(self):
        return self["kwargs"]["tasks"]

    def __repr__(self):
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"

    def __or__(self, other):
        if isinstance(other, Signature) and not isinstance(other, _chain):
            return chord(self, other)
        return super().__or__(other)

    def __call__(self, *args, **kwargs):
        return self.apply_async(args, kwargs)

    def __len__(self):
        return len(self.tasks)

    def _width(self):
        # A nested group counts its members; a plain call (most members) is one.
        tasks = self.tasks
        return len(tasks) + sum(member._width() - 1 for member in tasks
                                if type(member) is not Signature)

    def freeze(self):
        return GroupResult(*self._freeze_members(with_results=True))

    def _apply_async(self, args, kwargs, options):
        if options or self.options or settings.EAGER \
                or any(type(member) is not Signature for member in self.tasks):
            return super()._apply_async(args, kwargs, options)
        return self._apply_plain(tuple(args or ()), kwargs)

    def _apply_plain(self, args, kwargs):
        """A group of plain calls, nothing given to apply_async: what the
        general path does (copy, freeze, plan), in one pass over the members
        and without copying them. Planning only reads a member; its ids are
        handed over beside it, so the caller's group stays as it was."""
        group_id = new_task_id()
        results = []

        def plan_members(plan):
            # A member with no options of its own (most groups' members) is
            # planned with the others of its task (Plan.add_calls).
            add_call = plan.add_calls({"group_id": group_id})
            members = self.tasks
            for member, task_id in zip(members, new_task_ids(len(members)), strict=True):
                options = member["options"]
                if not options:
                    add_call(member, args, kwargs, task_id)
                else:
                    given = options.get("task_id")
                    if given is not None:
                        task_id = given
                    member.plan(plan, args, kwargs, frozen={
                        "task_id": task_id, "group_id": options.get("group_id", group_id)})
                results.append(AsyncResult(task_id, task_name=member["task"]))

        write_planned(plan_members)
        return GroupResult(group_id, results)

    def _freeze_members(self, with_results):
        """Give the group and every member their ids: (group id, members' results).
        Nested groups are unrolled into this one first (see ``_unrolled``)."""
        if any(isinstance(member, group) for member in self.tasks):
            self["kwargs"]["tasks"] = _unrolled(self.tasks)
        group_id = self._frozen_id()
        results = []
        for member in self.tasks:
            if with_results or type(member) is not Signature:
                results.append(member.freeze())
            else:  # planning needs the ids, not AsyncResults of them
                member._frozen_id()
            for final in member.finals():
                final.options.setdefault("group_id", group_id)
        return group_id, results

    def finals(self):
        return [final for member in self.tasks for final in member.finals()]

    def result_shape(self):
        return {"group_id": self.id, "results": [m.result_shape() for m in self.tasks]}

    def with_continuation(self, rest):
        if not rest:
            return self
        body = rest[0].with_continuation(rest[1:])
        return chord(self, body)

    def link(self, callback):
        for member in self.tasks:
            member.link(callback)
        return callback

    def link_error(self, errback):
        for member in self.tasks:
            member.link_error(errback)
        return errback

    def _inherited(self):
        return {k: v for k, v in self.options.items() if k in MESSAGE_OPTIONS and k != "task_id"}

    def plan(self, plan, args=(), kwargs=None, context=None):
        self._freeze_members(with_results=False)
        inherited = self._inherited()
        for member in self.tasks:
            # A plain signature's plan() only reads it: with nothing to
            # inherit, the copy would be thrown away unchanged.
            if inherited or type(member) is not Signature:
                member = member.clone(**inherited)
            member.plan(plan, args, kwargs, context)

    def apply(self, args=None, kwargs=None, **options):
        sig = self.clone(**options)
        sig.freeze()
        inherited = sig._inherited()
        return GroupResult(sig.id, [m.clone(**inherited).apply(args, kwargs) for m in sig.tasks])


def _unrolled(tasks, deep=True):
    """The members, with a nested group's members in its place, at any depth
    (Celery unrolls them when the group is applied: ``group(a, group(b, c))``
    runs as ``group(a, b, c)``, and a chord whose header is one group waits
    for that group's members). The nested group's options (a queue, a
    link...) go to each of its members; its id is lost, as in Celery. A group
    at the end of a chain stays one value. ``deep=False``: one level only."""
    members = []
    for task in map(maybe_signature, tasks):
        if isinstance(task, group):
            inherited = task._inherited()
            members.extend(member.clone(**inherited) if inherited else member
                           for member in (_unrolled(task.tasks) if deep else task.tasks))
        else:
            members.append(task)
    return members


# -- chord ------------------------------------------------------------------

# What a chord hands down to its header and body (task_id, link and
# link_error are its body's: see _chord._freeze_body).
CHORD_HANDED_DOWN = MESSAGE_OPTION_SET - {"task_id", "link", "link_error"} | UNIQUE_OPTIONS


@register_type
class _chord(Signature):
    subtask_type_name: str | None = "chord"

    def __init__(self, header: Any, body: Signature | Mapping[str, Any] | None = None,
                 **options: Any) -> None:
        header = header if isinstance(header, group) else group(header)
        super().__init__("django_tasks.chord", (),
                         {"header": header, "body": maybe_signature(body)}, options,
                         subtask_type="chord")

    @classmethod
    def from_dict(cls, data):
        kwargs = data["kwargs"]
        return cls(maybe_signature(kwargs["header"]), maybe_signature(kwargs["body"]),
                   **copy_tree(data.get("options") or {}))

    header = property(lambda self: self["kwargs"]["header"])
    body = property(lambda self: self["kwargs"]["body"])

    def __repr__(self):
        return f"chord({self.header!r}, {self.body!r})"

    def __call__(self, body=None, **options):
        if body is not None:
            self["kwargs"]["body"] = maybe_signature(body)
        return self.apply_async((), {}, **options)

    def __len__(self):
        return len(self.header.finals())

    def _width(self):
        return self.header._width()

    def freeze(self):
        header_result = self.header.freeze()
        body_result = self._freeze_body(header_result.id)
        oldest(body_result)._parent = header_result
        return body_result

    def _freeze_body(self, group_id):
        """Tie the header's members to the chord ``group_id``; freeze the body."""
        if self.body is None:
            raise ValueError("a chord needs a body: chord(header, body) or chord(header)(body)")
        task_id = self.options.pop("task_id", None)
        if task_id is not None:
            # As in Celery: a chord's id is its body's, the result it returns.
            self.body.options["task_id"] = checked_task_id(task_id)
        # Its link=/link_error= (apply_async's) are the body's too, as in Celery.
        for callback in _listed(self.options.pop("link", [])):
            self.body.link(callback)
        for errback in _listed(self.options.pop("link_error", [])):
            self.body.link_error(errback)
        self._hand_down_options()
        for final in self.header.finals():
            final.options["chord"] = group_id
        return self.body.freeze()

    def _hand_down_options(self):
        """The chord's own calling options (``apply_async``'s, or set on it)
        go to its header's tasks and to its body, over their own, as in
        Celery: a chord is no message of its own, so kept here they would
        be lost. Except ``countdown``, the body's only: Celery's chord takes
        it for itself, and its header starts at once. Unique options are
        handed down too, to be refused there (a TypeError, before anything
        is written)."""
        options = self.options
        handed = {key: options.pop(key) for key in list(options)
                  if key in CHORD_HANDED_DOWN}
        if not handed:
            return
        self.body.set(**handed)
        handed.pop("countdown", None)
        self.header.set(**handed)

    def finals(self):
        return self.body.finals()

    def result_shape(self):
        return self.body.result_shape()

    def with_continuation(self, rest):
        self["kwargs"]["body"] = self.body.with_continuation(rest)
        return self

    def link(self, callback):
        return self.body.link(callback)

    def link_error(self, errback):
        return self.body.link_error(errback)

    def plan(self, plan, args=(), kwargs=None, context=None):
        from .models import TaskGroup

        # Planning needs the ids, not the header's results (freeze() builds
        # one per member).
        group_id, _ = self.header._freeze_members(with_results=False)
        self._freeze_body(group_id)
        # The body's argument, as ids: one per header member, a list for a
        # member ending in a group (Celery: "the chain prevents unrolling").
        shape = self.header.result_shape()["results"]
        count = len(self.header.finals())
        if not count:
            # Nothing to wait for: the body runs at once with no results (Celery).
            self.body.plan(plan, ([],), {}, context)
            return
        plan.chords.append(TaskGroup(group_id=group_id, results=shape,
                                     chord_body=to_header(self.body), remaining=count))
        self.header.plan(plan, args, kwargs, context)

    def apply(self, args=None, kwargs=None, **options):
        sig = self.clone(**options)
        sig.freeze()
        header_result = sig.header.apply(args, kwargs)
        leaves = list(header_result.leaves())
        failed = next((r for r in leaves if not r.successful()), None)
        if failed is None:
            # Values shaped as the header's (a group ending a chain is one list).
            body_result = sig.body.apply((header_result.get(),))
        else:
            error = chord_error(failed.id, failed.result)
            body_result = fail_eagerly(sig.body, error, errbacks=True)
        oldest(body_result)._parent = header_result
        return body_result



# -- map, starmap, chunks ------------------------------------------------------

class _BuiltinCall(Signature):
    """A signature of one of our built-in tasks over another task's calls:
    its kwargs are its constructor's arguments, named in ``init_kwargs``."""

    init_kwargs: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data):
        kwargs = data["kwargs"]
        return cls(*(kwargs[name] for name in cls.init_kwargs),
                   **copy_tree(data.get("options") or {}))


@register_type
class xmap(_BuiltinCall):  # noqa: N801 (Celery's name)
    """``task.map(it)``: one task that calls ``task(item)`` for each item."""

    subtask_type_name: str | None = "xmap"
    builtin = "django_tasks.map"
    init_kwargs = ("task", "it")
    item_call = "x"  # how the repr shows the call of each item

    def __init__(self, task, it, **options):
        super().__init__(self.builtin, (), {"task": maybe_signature(task), "it": list(it)},
                         options, subtask_type=self.subtask_type_name, immutable=True)

    def __repr__(self):
        return f"[{self.kwargs['task'].name}({self.item_call}) for x in {self.kwargs['it']!r}]"


@register_type
class xstarmap(xmap):  # noqa: N801 (Celery's name)
    """``task.starmap(it)``: one task that calls ``task(*item)`` for each item."""

    subtask_type_name: str | None = "xstarmap"
    builtin = "django_tasks.starmap"
    item_call = "*x"


@register_type
class chunks(_BuiltinCall):  # noqa: N801 (Celery's name)
    """``task.chunks(it, n)``: a group of starmap tasks of ``n`` items each."""

    subtask_type_name: str | None = "chunks"
    init_kwargs = ("task", "it", "n")

    def __init__(self, task, it, n, **options):
        super().__init__("django_tasks.chunks", (),
                         {"task": maybe_signature(task), "it": list(it), "n": int(n)},
                         options, subtask_type="chunks")

    def __repr__(self):
        return f"chunks({self.kwargs['task']!r}, {self.kwargs['n']})"

    def __call__(self, **options):
        return self.apply_async(**options)

    def group(self):
        task, items, size = self.kwargs["task"], iter(self.kwargs["it"]), self.kwargs["n"]
        parts = iter(lambda: list(itertools.islice(items, size)), [])
        return group((xstarmap(task, part) for part in parts), **self.options)

    def freeze(self):
        raise TypeError("chunks are applied as a group: use chunks.group() inside a canvas")

    def apply_async(self, args=None, kwargs=None, **options):
        return self.group().apply_async(args, kwargs, **options)

    def apply(self, args=None, kwargs=None, **options):
        return self.group().apply(args, kwargs, **options)


def _ignores_result(sig):
    """Whether the one call ``sig`` stores no success (its option, else its
    task's): its AsyncResult's get() then returns None at once, as Celery's."""
    ignore = sig.options.get("ignore_result")
    if ignore is None:
        task = registry.get(sig.name)
        ignore = task is not None and task.ignore_result
    return bool(ignore)


# -- public factories -----------------------------------------------------

def signature(varies: Task | Signature | str | dict[str, Any], *args: Any,
              **kwargs: Any) -> Signature:
    """``signature("proj.tasks.add", args=(2, 2))``, or a dict back into a Signature."""
    if isinstance(varies, dict) and not args and not kwargs:
        return maybe_signature(varies)
    if isinstance(varies, dict) and not isinstance(varies, Signature):
        raise TypeError("signature(dict) takes no other arguments: the dict is the whole "
                        f"signature, got {args!r} {kwargs!r} with it")
    return Signature(varies, *args, **kwargs)


def chain(*tasks: Any, **options: Any) -> Signature:
    return _chain(*tasks, **options)


def chord(header: Any, body: Signature | Mapping[str, Any] | None = None,
          **options: Any) -> Signature:
    return _chord(header, body, **options)
