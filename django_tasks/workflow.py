"""Advancing workflows when tasks finish: callbacks, chains, chords.

``advance_workflows`` is a FINISH_HOOK: it runs inside the transaction that
stores the results of finished tasks, so the next step of a workflow is
enqueued if and only if the result of the step before is stored. Nothing
polls, and a worker that dies before committing leaves both undone (the
message is delivered again and the step is advanced then).

Per finished task (from its message headers):

- success: ``link`` callbacks and the next ``chain`` step get the value;
- failure: ``link_error`` callbacks get the task id, or the request,
  exception and traceback (see errbacks.py); revoked or expired: none run,
  as in Celery. Either way the rest of the chain is stored as FAILURE with
  the same exception, so waiting on the chain's last result raises it
  instead of hanging (Celery leaves those PENDING and walks the parents
  instead);
- member of a chord: the chord's counter goes down in the same
  transaction; the transaction that takes it to zero enqueues the body
  (or fails it with ``ChordError`` naming the first failed member).
"""

import logging
from collections import Counter

from django.db.models import F
from django.utils import timezone

from . import errbacks, serialization, states
from .canvas import Plan, chord_error, from_header
from .exceptions import DecodeError
from .models import TaskGroup, TaskResult
from .outcomes import RESULT_UPDATE_FIELDS, Outcome, exception_text

logger = logging.getLogger("django_tasks.workflow")


def has_workflow_steps(outcomes):
    """True if finishing these outcomes advances a workflow (cheap: headers only)."""
    return any(o.state in states.READY_STATES and _in_workflow(o.message.headers)
               for o in outcomes)


def advance_workflows(outcomes, queue):
    finished = [o for o in outcomes if o.state in states.READY_STATES]
    if not any(_in_workflow(o.message.headers) for o in finished):
        return
    plan = Plan()
    silent = set()  # made-up failures whose errbacks do not run (the real failure's do)
    while finished:
        made_up = []  # results for steps that can no longer run
        chords = Counter()
        last_member = {}  # chord id -> a member finished here (the body's parent)
        for outcome in finished:
            made_up.extend(_advance_one(outcome, plan, silent))
            chord_id = outcome.message.headers.get("chord")
            if chord_id:
                chords[chord_id] += 1
                last_member[chord_id] = outcome.message.task_id
        # Stored before counting, so a chord sees its made-up member results.
        _store(made_up, queue)
        for chord_id, count in chords.items():
            failed_bodies = _count_down(queue, chord_id, count, last_member[chord_id], plan,
                                        silent)
            _store(failed_bodies, queue)
            made_up.extend(failed_bodies)
        # Made-up failures may be chain steps or chord members themselves.
        finished = made_up
    plan.write(queue)


def _in_workflow(headers):
    return any(headers.get(key) for key in ("link", "link_error", "chain", "chord"))


def _context(message):
    return {"parent_id": message.task_id,
            "root_id": message.headers.get("root_id") or message.task_id}


def _advance_one(outcome, plan, silent):
    """Plan what follows ``outcome``; returns made-up failures of unreachable steps."""
    message = outcome.message
    headers = message.headers
    context = _context(message)
    if outcome.state == states.SUCCESS:
        value = _stored_value(outcome)
        for callback in headers.get("link", []):
            from_header(callback).plan(plan, (value,), {}, context)
        if headers.get("chain"):
            _next_step(headers["chain"]).plan(plan, (value,), {}, context)
        return []
    # A revoked or expired task runs no errbacks, as in Celery (its backend
    # marks it REVOKED without calling them); what follows it still fails.
    if (outcome.state != states.REVOKED and message.task_id not in silent
            and headers.get("link_error")):
        failure = errbacks.failure_header(message, outcome.result_text, outcome.traceback,
                                          outcome.hostname)
        for errback in headers["link_error"]:
            errbacks.with_failure(errback, failure).plan(plan, (message.task_id,), {}, context)
    if not headers.get("chain"):
        return []
    failures = list(_unreachable(_next_step(headers["chain"]), _stored_value(outcome), context))
    silent.update(f.message.task_id for f in failures)
    return failures


def _stored_value(outcome):
    """The value (or exception) as stored: pools may drop the live object in transit."""
    if outcome.state in states.EXCEPTION_STATES:
        return serialization.exception_from_json(outcome.result_text)
    return serialization.loads(outcome.result_text, outcome.content_type, [outcome.content_type])


def _next_step(chain):
    step, *rest = [from_header(data) for data in chain]
    return step.with_continuation(rest)


def _unreachable(sig, exc, context):
    """FAILURE outcomes for every task of ``sig``, which will never run."""
    scratch = Plan()
    sig.plan(scratch, (), {}, context)
    for row in scratch.chords:
        # A chord that never started: its body cannot run either.
        yield from _unreachable(from_header(row.chord_body), exc, context)
    for message in scratch.messages:
        yield _failed(message, exc)


def _failed(message, exc):
    return Outcome(message=message, state=states.FAILURE, value=exc,
                   result_text=exception_text(exc), done_at=timezone.now())


def _count_down(queue, chord_id, count, last_member, plan, silent):
    """Count ``count`` members of chord ``chord_id`` done; start the body at zero.

    The body's parent is ``last_member``, a member whose end took the count to
    zero (Celery: the body is sent by the last member to finish).

    The UPDATE locks the chord's row until this transaction commits, so of
    two workers finishing the last members at once, the second waits and
    then reads the first one's count: exactly one of them sees zero.
    """
    rows = TaskGroup.objects.using(queue.alias).filter(group_id=chord_id,
                                                       remaining__isnull=False)
    if not rows.update(remaining=F("remaining") - count):
        return []  # a chord that never started (its chain failed before it)
    group = rows.get()
    if group.remaining != 0:
        if group.remaining < 0:
            logger.error("chord %s counted more members than it has", chord_id)
        return []
    body = from_header(group.chord_body)
    member_ids = list(_leaves(group.results))
    members = {str(r.task_id): r for r in
               TaskResult.objects.using(queue.alias).filter(task_id__in=member_ids)}
    context = {"parent_id": last_member, "root_id": _root_of(members.values())}
    values = {}
    for member_id in member_ids:
        row = members.get(member_id)
        value, reason = _member_outcome(row)
        if reason is not None:
            error = chord_error(member_id, reason)
            failures = list(_unreachable(body, error, context))
            # The body's own errbacks run (as in Celery); the rest stay silent.
            silent.update(f.message.task_id for f in failures[1:])
            return failures
        values[member_id] = value
    body.plan(plan, (_shaped(group.results, values),), {}, context)
    return []


def _leaves(shape):
    """The member ids of a chord's ``results`` in call order: ids, and groups
    ending a chain as ``{"group_id", "results"}`` (see ``Signature.result_shape``)."""
    for item in shape:
        if isinstance(item, dict):
            yield from _leaves(item["results"])
        else:
            yield item


def _shaped(shape, values):
    """The members' values, a group ending a chain as one list."""
    return [_shaped(item["results"], values) if isinstance(item, dict) else values[item]
            for item in shape]


def _member_outcome(row):
    """``(value, None)`` for a member that succeeded, else ``(None, why it did not)``.

    A member result that cannot be decoded (corrupt, forged, pickled where
    pickle is not accepted) fails the chord with that DecodeError: it must
    not fail the transaction that stores the last member's result.
    """
    if row is None:
        return None, LookupError("no result stored (ignore_result=True?)")
    try:
        value = _decode(row)
    except DecodeError as exc:
        return None, exc
    if row.state != states.SUCCESS:
        return None, value
    return value, None


def _root_of(rows):
    for row in rows:
        if row.root_id:
            return str(row.root_id)
    return None


def _decode(row):
    from .result import _decode as decode_result

    return decode_result(row)


def _store(outcomes, queue):
    if outcomes:
        TaskResult.objects.using(queue.alias).bulk_create(
            [o.result_row() for o in outcomes], update_conflicts=True,
            unique_fields=["task_id"], update_fields=RESULT_UPDATE_FIELDS)
        queue.notify_results([o.message.task_id for o in outcomes])


# Lets the queue skip the surrounding transaction when there is nothing to advance.
advance_workflows.wants = has_workflow_steps
