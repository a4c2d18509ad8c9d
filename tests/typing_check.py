"""The public API as typed code uses it: checked by mypy (setup.cfg's
[mypy] lists this file), never imported or run.

``assert_type`` fails the check where a hint is missing or wrong; each
``# type: ignore[...]`` is a misuse mypy must catch (with
warn_unused_ignores, one it stops catching fails the check too).
"""

from typing import Any, assert_type

from django_tasks import (
    AsyncResult,
    EagerResult,
    GroupResult,
    Signature,
    Task,
    chain,
    chord,
    group,
    send_task,
    signature,
    task,
)
from django_tasks.conf import settings


@task
def add(x: int, y: int) -> int:
    return x + y


@task(bind=True, max_retries=5, queue="slow")
def flaky(self: Task, n: int) -> int:
    self.retry(countdown=2)


assert_type(add, Task)
assert_type(flaky, Task)
assert_type(add.delay(1, 2), AsyncResult)
assert_type(add.apply_async((1, 2), countdown=5, queue="mail"), AsyncResult)
assert_type(send_task("proj.tasks.add", (1, 2)), AsyncResult)
assert_type(add.delay(1, 2).get(timeout=10), Any)
assert_type(AsyncResult("an id").ready(), bool)
assert_type(AsyncResult("an id").state, str)
assert_type(AsyncResult("an id").revoke(terminate=True), int)

assert_type(add.s(1), Signature)
assert_type(add.si(1, 2), Signature)
assert_type(signature("proj.tasks.add", args=(1, 2)), Signature)
assert_type(chain(add.s(1, 2), add.s(3)), Signature)
assert_type(chord([add.s(1, 1), add.s(2, 2)], add.s(3)), Signature)
assert_type(group(add.s(1, 1), add.s(2, 2)).apply_async(), AsyncResult | GroupResult)
assert_type(add.s(1).delay(2), AsyncResult | GroupResult)

assert_type(GroupResult.restore("a group id"), GroupResult | None)
assert_type(GroupResult("a group id").join(timeout=5), list[Any])
assert_type(list(GroupResult("a group id").leaves()), list[AsyncResult])

assert_type(settings.POLL_INTERVAL, Any)

# Misuses mypy catches.
AsyncResult("an id").get(timeout="soon")  # type: ignore[arg-type]
add.apply_async((1, 2), countdown="soon")  # type: ignore[arg-type]
add.delay(1, 2).ready().lower()  # type: ignore[attr-defined]
missing = add.s(1).freeze().missing  # type: ignore[union-attr]
task(name="x")(42)  # type: ignore[arg-type]
eager: type[AsyncResult] = EagerResult
