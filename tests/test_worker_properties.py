"""Generated batches of good and poisoned messages through a real worker (Hypothesis).

Each example sends a batch mixing valid tasks with poison: generated
arguments, return values, exception arguments, header and body documents
and column values. The expected end of each message is known from how it
was generated. After each batch: the worker is alive, every poisoned
message is ready with a clear error, every valid task is SUCCESS with the
right value, each message ran once and the queue is empty (but for the
rows that are not due). One worker (prefork, threads or solo) serves all
the examples of a test.

The default profile keeps to CI's time budget; ``HYPOTHESIS_PROFILE=thorough``
runs many more batches by hand (profiles: tests/generated.py).
"""

import json
import re
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from django_tasks import serialization, states, unique
from django_tasks.exceptions import DecodeError, EncodeError
from django_tasks.messages import (
    HEADER_CHECKS,
    MAX_RETRIES_HEADER,
    MAX_TASK_ID_LENGTH,
    MAX_TIME_LIMIT,
)
from django_tasks.models import QueuedMessage, TaskResult
from django_tasks.serialization import MAX_DEPTH, TYPE_KEY
from tests import poison_tasks
from tests.forged import insert_queue_row, sql_literal
from tests.generated import PROFILE, TAG_NAMES, VALUES, typed
from tests.tasks import echo

pytestmark = pytest.mark.django_db(transaction=True)

BATCHES = {"default": 20, "thorough": 300}[PROFILE]
# Each example is a batch through a real worker: shrinking a failure would run
# thousands of them, so the default profile reports the failing batch as found.
PHASES = {"default": [Phase.explicit, Phase.generate], "thorough": list(Phase)}[PROFILE]
batches = settings(max_examples=BATCHES, phases=PHASES, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
BATCH = {"min_size": 10, "max_size": 30}


@dataclass
class Expected:
    result: object
    state: str                 # SUCCESS, FAILURE, REVOKED; PENDING: stays queued
    value: object = None       # SUCCESS: the value; else the error's type name
    pattern: str = ""          # a ready failure: what its message says
    alternative: tuple = None  # (state, error type name, pattern) it may end as instead
    deliveries: tuple = (1,)   # how many times it may have been delivered


class Batch:
    """The messages of one example and how each must end."""

    def __init__(self):
        self.expected = []

    def succeeds(self, result, value):
        self.expected.append(Expected(result, states.SUCCESS, value))

    def fails(self, result, error, pattern, state=states.FAILURE, alternative=None,
              deliveries=(1,)):
        self.expected.append(Expected(result, state, error, pattern, alternative, deliveries))

    def stays_queued(self, result):
        self.expected.append(Expected(result, states.PENDING))

    def check(self, worker):
        waiting = {str(e.result.id) for e in self.expected if e.state == states.PENDING}
        try:
            self._check(worker, waiting)
        finally:  # so that a failure is not followed by others on its leftovers
            QueuedMessage.objects.filter(task_id__in=waiting).delete()

    def _check(self, worker, waiting):
        ready = [e for e in self.expected if e.state != states.PENDING]
        deadline = time.monotonic() + 60  # for the batch: one lost message fails it once
        for expected in ready:
            expected.result.get(timeout=max(deadline - time.monotonic(), 0.1), propagate=False)
        for expected in ready:
            _check_ready(expected)
        # Not whole rows: some hold timestamps Python cannot read.
        queued = {str(task_id): (deliveries, claimed_by) for task_id, deliveries, claimed_by
                  in QueuedMessage.objects.values_list("task_id", "deliveries", "claimed_by")}
        assert set(queued) == waiting, ("the queue holds other messages than those not due",
                                        _queued_rows(set(queued) - waiting))
        assert set(queued.values()) <= {(0, None)}, "a message not due was claimed"
        assert not TaskResult.objects.filter(task_id__in=waiting).exists()
        assert worker.proc.poll() is None, f"worker exited:\n{worker.output}"
        assert "died" not in worker.output


def _queued_rows(task_ids):
    """The queue's rows as text, whatever their timestamps hold: what a failure shows."""
    from django.db import connection

    table = QueuedMessage._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SELECT row_to_json(q)::text FROM {table} q")
            rows = [json.loads(text) for text, in cursor.fetchall()]
        else:
            cursor.execute(f"SELECT * FROM {table}")
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, map(str, row), strict=True)) for row in cursor.fetchall()]
    wanted = {task_id.replace("-", "") for task_id in task_ids}
    return [row for row in rows if str(row["task_id"]).replace("-", "") in wanted]


def _check_ready(expected):
    result = expected.result
    row = TaskResult.objects.get(task_id=result.id)
    outcome = (row.state, expected.value, expected.pattern)
    if row.state == states.SUCCESS:
        assert (states.SUCCESS, typed(result.result)) == (expected.state,
                                                          typed(expected.value)), row.task_name
    else:
        error = result.result
        assert isinstance(error, Exception), (row.state, error)
        outcome = (row.state, type(error).__name__, str(error))
        allowed = [(expected.state, expected.value, expected.pattern)]
        if expected.alternative:
            allowed.append(expected.alternative)
        assert any(outcome[:2] == (state, name) and re.search(pattern, outcome[2])
                   for state, name, pattern in allowed), (outcome, allowed)
    assert row.deliveries in expected.deliveries, (row.task_name, row.deliveries, outcome)


@pytest.fixture
def worker(start_worker):
    return start_worker("-P", "prefork", "-c", "2")


# Other pools for some of the tests: each pool stores outcomes its own way.
@pytest.fixture
def threads_worker(start_worker):
    return start_worker("-P", "threads", "-c", "2")


@pytest.fixture
def solo_worker(start_worker):
    return start_worker("-P", "solo")


# -- arguments and return values -------------------------------------------


def nestings(min_depth, max_depth):
    """What to wrap a value in, ``min_depth`` to ``max_depth`` times (see poison_tasks.build)."""
    return st.integers(min_depth, max_depth).flatmap(lambda depth: st.lists(
        st.sampled_from(sorted(poison_tasks.WRAPPERS)), min_size=depth, max_size=depth))


def nested_values(min_depth, max_depth):
    return nestings(min_depth, max_depth).map(lambda kinds: poison_tasks.build(["nested", kinds]))


WRAPPER_KINDS = nestings(0, 3 * MAX_DEPTH)
# The message body holds the arguments two levels down ({"args": [...]}).
ARGUMENT_DEPTH = MAX_DEPTH - 2
TOO_DEEP = f"nested too deeply or cyclic \\(more than {MAX_DEPTH} levels"


class Opaque:
    """Nothing the JSON serializer knows."""


def _refused_argument():
    return st.one_of(
        nested_values(ARGUMENT_DEPTH + 1, 3 * MAX_DEPTH),
        st.just(None).map(lambda _: poison_tasks.cyclic()),
        st.builds(Opaque),
        st.integers(4301, 6000).map(lambda digits: 10 ** (digits - 1)),
    ).flatmap(lambda bad: st.sampled_from([bad, [1, bad], {"a": (bad,)}]))


ARGUMENT_MESSAGES = st.one_of(
    st.tuples(st.just("argument"), VALUES, st.booleans()),
    st.tuples(st.just("argument"), nested_values(0, ARGUMENT_DEPTH), st.booleans()),
    st.tuples(st.just("refused"), _refused_argument(), st.booleans()),
    st.tuples(st.just("returned"), WRAPPER_KINDS.map(lambda kinds: ["nested", kinds])
              | st.just(["cyclic"]) | st.just(["opaque"])),
)


@batches
@given(st.lists(ARGUMENT_MESSAGES, **BATCH))
def test_generated_arguments_and_return_values(worker, messages):
    # Refused calls first, while nothing else is sent: none of them writes anything.
    written = TaskResult.objects.count()
    for kind, value, *rest in messages:
        if kind == "refused":
            with pytest.raises(EncodeError, match="cannot call tests.tasks.echo: "):
                echo.delay(value=value) if rest[0] else echo.delay(value)
    assert not QueuedMessage.objects.exists(), "a refused call wrote a message"
    assert TaskResult.objects.count() == written
    batch = Batch()
    for kind, value, *rest in messages:
        if kind == "argument":
            batch.succeeds(echo.delay(value=value) if rest[0] else echo.delay(value), value)
        elif kind == "returned":
            result = poison_tasks.return_built.delay(value)
            if value[0] == "nested" and len(value[1]) <= MAX_DEPTH:
                batch.succeeds(result, poison_tasks.build(value))
            elif value[0] == "opaque":
                batch.fails(result, "EncodeError", "is not JSON serializable")
            else:
                batch.fails(result, "EncodeError", TOO_DEEP)
    batch.check(worker)


# -- exception arguments -------------------------------------------------------

EXCEPTION_ARG_SPECS = st.one_of(
    VALUES.map(lambda value: ["value", value]),
    WRAPPER_KINDS.map(lambda kinds: ["nested", kinds]),
    st.just(["cyclic"]), st.just(["opaque"]),
    st.integers(4301, 6000).map(lambda digits: ["huge", digits]),
)
EXCEPTION_MESSAGES = st.tuples(st.sampled_from(sorted(poison_tasks.RAISABLE)),
                               st.lists(EXCEPTION_ARG_SPECS, max_size=3))


def _storable(value):
    try:
        serialization.dumps(list(value.args))
    except EncodeError:
        return False
    return True


def _same_text(text, expected):
    """The same text but for what differs from process to process: the
    addresses of objects and the order of sets of strings (hash
    randomization)."""
    def canonical(text):
        return sorted(re.sub(r"0x[0-9a-f]+", "0x?", text))

    return isinstance(text, str) and canonical(text) == canonical(expected)


@batches
@given(st.lists(EXCEPTION_MESSAGES | VALUES.map(lambda value: ("echo", value)), **BATCH))
def test_generated_exception_arguments(threads_worker, messages):
    batch, raised = Batch(), []
    for name, specs in messages:
        if name == "echo":
            batch.succeeds(echo.delay(specs), specs)
            continue
        # What the task raises, built here the same way.
        original = poison_tasks.RAISABLE[name](*[poison_tasks.build(s) for s in specs])
        result = poison_tasks.raise_built.delay(name, specs)
        batch.fails(result, name, "")
        raised.append((result, original))
    batch.check(threads_worker)
    for result, original in raised:
        error = result.result
        try:
            text = str(original)
        except ValueError:  # an int too long for text
            text = None
        assert isinstance(error, Exception) and type(error).__name__ == type(original).__name__
        if isinstance(original, Exception) and _storable(original):
            assert typed(error.args) == typed(original.args)
            assert _same_text(str(error), text)
        else:
            # Stored as its text: an Exception of that name (the class, when
            # it is one) built from it.
            if text is None:
                text = f"<unprintable {type(original).__name__}: str() raised ValueError>"
            assert len(error.args) == 1 and _same_text(error.args[0], text)


# -- header documents ----------------------------------------------------------

SAFE_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                    max_size=12)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30),
                         st.floats(allow_nan=False, allow_infinity=False), SAFE_TEXT)
DOCUMENTS = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
    max_leaves=12)
WORKFLOW_LISTS = ("link", "link_error", "chain")
TEXT_HEADERS = ("parent_id", "root_id", "group_id", "chord")  # ids: any text
LIMITS = ("time_limit", "soft_time_limit")
KNOWN = ("retries", "ignore_result", *LIMITS, *TEXT_HEADERS, *WORKFLOW_LISTS)
NOT_INT = st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | SAFE_TEXT \
    | st.lists(JSON_SCALARS, max_size=2)
WRONG_VALUES = {
    # Past what a result row holds.
    "retries": st.integers(max_value=-1) | st.integers(min_value=MAX_RETRIES_HEADER + 1)
    | st.none() | NOT_INT,
    "ignore_result": st.integers() | SAFE_TEXT | st.lists(JSON_SCALARS, max_size=2),
    **dict.fromkeys(LIMITS, st.integers(max_value=-1)
                    | st.floats(max_value=-1e-9, allow_infinity=False)
                    | st.floats(min_value=MAX_TIME_LIMIT, exclude_min=True,
                                allow_infinity=False)
                    | st.booleans() | SAFE_TEXT | st.lists(JSON_SCALARS, max_size=2)),
    # Not an id a result row holds: not text, empty, or too long.
    **dict.fromkeys(TEXT_HEADERS, st.integers() | st.booleans() | st.just("")
                    | st.text("abc-é", min_size=MAX_TASK_ID_LENGTH + 1,
                              max_size=MAX_TASK_ID_LENGTH + 20)
                    | st.lists(JSON_SCALARS, max_size=2)
                    | st.dictionaries(SAFE_TEXT, JSON_SCALARS, max_size=2)),
    **dict.fromkeys(WORKFLOW_LISTS, JSON_SCALARS
                    | st.dictionaries(SAFE_TEXT, JSON_SCALARS, max_size=2)
                    | st.lists(JSON_SCALARS, min_size=1, max_size=3)),
}
# Task ids are any text (as in Celery), up to the columns' length.
ANY_ID = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                 min_size=1, max_size=MAX_TASK_ID_LENGTH)
# Values of the known headers that do not change how this task runs.
RIGHT_VALUES = {
    "retries": st.integers(0, 1000),
    "ignore_result": st.sampled_from([None, False]),
    **dict.fromkeys(LIMITS, st.none() | st.floats(300, MAX_TIME_LIMIT) | st.integers(300, 10 ** 6)),
    **dict.fromkeys(("parent_id", "root_id"), st.none() | st.uuids().map(str) | ANY_ID),
    "group_id": st.none(), "chord": st.none(),
    **dict.fromkeys(WORKFLOW_LISTS, st.just([])),
}
# Headers this test does not generate values for but the worker reads (flow
# control: its own tests): never drawn as "unknown".
READ_ELSEWHERE = {*HEADER_CHECKS, unique.KEY_HEADER, unique.FOR_HEADER}
UNKNOWN_KEYS = SAFE_TEXT.filter(lambda key: key not in KNOWN and key not in READ_ELSEWHERE)


def _deep(depth):
    return "[" * depth + "]" * depth


# Of the right type, but no workflow can follow them: the task runs, then
# fails as an outcome that cannot be stored.
NOT_SIGNATURES = st.lists(st.dictionaries(SAFE_TEXT.filter(lambda key: key != "task"),
                                          JSON_SCALARS, max_size=2), min_size=1, max_size=2)
UNFOLLOWABLE = dict.fromkeys(("link", "chain"), NOT_SIGNATURES)


@st.composite
def header_documents(draw, vendor):
    """(JSON text, what is wrong with it: None, "object", "unreadable",
    "unstorable" or the names of the headers of the wrong type)."""
    kind = draw(st.sampled_from(["valid", "falsy", "not an object", "wrong", "unreadable",
                                 "unstorable"]))
    if kind == "falsy":  # read as no headers at all
        return json.dumps(draw(st.sampled_from([None, False, 0, 0.0, "", []]))), None
    if kind == "not an object":
        document = draw(st.one_of(st.lists(DOCUMENTS, min_size=1, max_size=3), st.just(True),
                                  st.integers().filter(bool), SAFE_TEXT.filter(bool),
                                  st.floats(allow_nan=False, allow_infinity=False).filter(bool)))
        return json.dumps(document), "object"
    headers = draw(st.dictionaries(UNKNOWN_KEYS, DOCUMENTS, max_size=3))
    for key in draw(st.lists(st.sampled_from(KNOWN), max_size=4, unique=True)):
        headers[key] = draw(RIGHT_VALUES[key])
    text = json.dumps(headers)
    if kind == "valid":
        return text, None
    if kind == "unstorable":
        for key in draw(st.lists(st.sampled_from(sorted(UNFOLLOWABLE)), min_size=1, max_size=3,
                                 unique=True)):
            headers[key] = draw(UNFOLLOWABLE[key])
        if draw(st.booleans()):  # not followed unless the task fails
            headers["link_error"] = draw(NOT_SIGNATURES)
        return json.dumps(headers), "unstorable"
    if kind == "wrong":
        wrong = draw(st.lists(st.sampled_from(KNOWN), min_size=1, max_size=3, unique=True))
        headers.update({key: draw(WRONG_VALUES[key]) for key in wrong})
        return json.dumps(headers), wrong
    # A value Python's JSON reader refuses, where PostgreSQL's jsonb holds it.
    culprits = ["9" * draw(st.integers(4301, 6000))]
    if vendor == "postgresql":  # SQLite refuses to store JSON nested thousands deep
        culprits.append(_deep(draw(st.integers(3000, 6000))))
    culprit = draw(st.sampled_from(culprits))
    key = json.dumps(draw(UNKNOWN_KEYS | st.sampled_from(KNOWN)))
    return text[:-1] + (", " if headers else "") + f"{key}: {culprit}}}", "unreadable"


def _raw_echo(value, **columns):
    body = sql_literal(json.dumps({"args": [value], "kwargs": {}}))
    return insert_queue_row(body=body, task_name="'tests.tasks.echo'", **columns)


@batches
@given(st.data())
def test_generated_header_documents(worker, vendor, data):
    documents = data.draw(st.lists(header_documents(vendor), **BATCH))
    batch = Batch()
    cast = "::jsonb" if vendor == "postgresql" else ""
    for index, (text, wrong) in enumerate(documents):
        result = _raw_echo(index, headers=sql_literal(text) + cast)
        if wrong is None:
            batch.succeeds(result, index)
        elif wrong == "object":
            batch.fails(result, "DecodeError", "^corrupt message: headers are not a JSON object")
        elif wrong == "unstorable":
            batch.fails(result, "EncodeError",
                        "^could not store the outcome of tests.tasks.echo: ")
        elif wrong == "unreadable":
            batch.fails(result, "DecodeError", "^corrupt message: headers cannot be read")
        else:
            names = "|".join(re.escape(repr(key)) for key in wrong)
            batch.fails(result, "DecodeError", f"^corrupt message: header ({names}) is ")
    batch.check(worker)


# -- body documents ------------------------------------------------------------

TAGGED = st.recursive(
    JSON_SCALARS | st.sampled_from(["2026-01-02", "12:30", "2026-01-02T03:04:05+01:00",
                                    "Infinity", "AAAA", "12345678-1234-5678-1234-567812345678"]),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(SAFE_TEXT, inner, max_size=3),
        st.builds(lambda name, value: {TYPE_KEY: name, "value": value},
                  TAG_NAMES | SAFE_TEXT, inner)),
    max_leaves=10)
ARGUMENT_LISTS = st.lists(TAGGED, max_size=2)
KEYWORDS = st.dictionaries(st.sampled_from(["value", "other", TYPE_KEY]) | SAFE_TEXT, TAGGED,
                           max_size=2)
BODIES = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),
    DOCUMENTS.map(json.dumps),
    st.fixed_dictionaries({}, optional={"args": ARGUMENT_LISTS | TAGGED,
                                        "kwargs": KEYWORDS | TAGGED}).map(json.dumps),
    st.builds(lambda value: json.dumps({"args": [value], "kwargs": {}}), TAGGED),
    st.integers(MAX_DEPTH - 4, 3 * MAX_DEPTH).map(
        lambda depth: '{"args": [' + _deep(depth) + '], "kwargs": {}}'),
)


def _expected_run(body):
    """How echo runs ``body``: ("SUCCESS", value) or (error name, pattern)."""
    try:
        data = serialization.loads(body, "json", ["json"])
    except DecodeError:
        return "DecodeError", "^corrupt message: cannot decode"
    if not (isinstance(data, dict) and isinstance(data.get("args", []), list)
            and isinstance(data.get("kwargs", {}), dict)):
        return "DecodeError", r"^corrupt message: message body is not \{'args'"
    try:
        return states.SUCCESS, echo.run(*data.get("args", []), **data.get("kwargs", {}))
    except TypeError:
        return "TypeError", "argument"


@batches
@given(st.lists(BODIES, **BATCH))
def test_generated_body_documents(solo_worker, bodies):
    batch = Batch()
    for body in bodies:
        result = insert_queue_row(body=sql_literal(body), task_name="'tests.tasks.echo'")
        outcome, detail = _expected_run(body)
        if outcome == states.SUCCESS:
            batch.succeeds(result, detail)
        else:
            batch.fails(result, outcome, detail)
    batch.check(solo_worker)


# -- column values (PostgreSQL holds what Python cannot read) ------------------

PAST_UNREADABLE = ["'-infinity'", "'0001-01-01 BC'", "'4713-01-01 BC'", "'0044-03-15 BC'"]
FUTURE_UNREADABLE = ["'infinity'", "'10000-01-01'", "'294276-12-31'", "'99999-06-30 12:00'"]
ODD_QUEUES = ["default", "ünïcødé", "with space", "semi;colon", "quote'd", "q" * 200,
              "line\u2028separator"]


@st.composite
def column_rows(draw):
    """(SQL columns, how the row must end: ("SUCCESS",), ("PENDING",) or a
    failure's (state, error name, pattern, alternative))."""
    columns = {"priority": str(draw(st.sampled_from([-32768, 32767, 0])
                                    | st.integers(-32768, 32767)))}
    queue = draw(st.sampled_from([*ODD_QUEUES, "nobody listens"]))
    columns["queue"] = sql_literal(queue)
    available = draw(st.sampled_from(["due", "future", "past unreadable", "future unreadable"]))
    columns["available_at"] = {
        "due": "now() - interval '1 second'", "future": "now() + interval '1 day'",
        "past unreadable": draw(st.sampled_from(PAST_UNREADABLE)),
        "future unreadable": draw(st.sampled_from(FUTURE_UNREADABLE))}[available]
    not_due = available.startswith("future") or queue not in ODD_QUEUES
    expires = "none" if not_due else draw(
        st.sampled_from(["none", "later", "future unreadable", "past unreadable"]))
    columns["expires"] = {
        "none": None, "later": "now() + interval '1 day'",
        "future unreadable": draw(st.sampled_from(FUTURE_UNREADABLE)),
        "past unreadable": draw(st.sampled_from(PAST_UNREADABLE))}[expires]
    created = draw(st.sampled_from(["now", "unreadable"]))
    if created == "unreadable":
        columns["created_at"] = draw(st.sampled_from(PAST_UNREADABLE + FUTURE_UNREADABLE))
    if not_due:
        return columns, ("PENDING",)
    unreadable = [name for name, how in (("available_at", available), ("expires", expires),
                                         ("created_at", created)) if "unreadable" in how]
    if expires == "past unreadable":
        # Housekeeping may end it as expired (never delivered) before a
        # claim reads it.
        return columns, (states.FAILURE, "DecodeError", "expires cannot be read",
                         (states.REVOKED, "TaskRevokedError", "expire"), (0, 1))
    if unreadable:
        pattern = ".*".join(f"{name} cannot be read" for name in unreadable)
        return columns, (states.FAILURE, "DecodeError", "^corrupt message: " + pattern, None,
                         (1,))
    return columns, ("SUCCESS",)


@pytest.fixture
def column_worker(start_worker, postgres_only):
    return start_worker("-P", "prefork", "-c", "2", "-Q", ",".join(ODD_QUEUES))


@batches
@given(st.lists(column_rows(), **BATCH))
def test_generated_column_values(column_worker, rows):
    batch = Batch()
    for index, (columns, end) in enumerate(rows):
        result = _raw_echo(index, **columns)
        if end[0] == states.SUCCESS:
            batch.succeeds(result, index)
        elif end[0] == "PENDING":
            batch.stays_queued(result)
        else:
            state, error, pattern, alternative, deliveries = end
            batch.fails(result, error, pattern, state=state, alternative=alternative,
                        deliveries=deliveries)
    batch.check(column_worker)
