"""Tasks that return or raise what a worker cannot store: poison for the hardening tests."""

from django_tasks import task
from django_tasks.worker.shutdown import ColdShutdown


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def cyclic():
    value = []
    value.append(value)
    return value


@task
def return_cyclic():
    return cyclic()


@task
def return_nested(depth):
    return nested(depth)


@task
def raise_with_cyclic_args():
    raise ValueError(cyclic())


@task
def raise_with_nested_args(depth):
    raise ValueError(nested(depth))


@task
def exit_the_process():
    raise SystemExit(3)


class OwnBaseException(BaseException):
    """Not an Exception: an `except Exception` does not catch it."""


@task
def raise_own_base_exception():
    raise OwnBaseException("a BaseException of the task's own")


@task
def raise_cold_shutdown():
    """The worker's own exception, raised by a task: that task's failure."""
    raise ColdShutdown("raised by a task")


@task
def end_the_pool_thread():
    """Ends a pool thread the way nothing else can: only a cold shutdown the
    worker asked for passes through a slot uncaught."""
    raise ColdShutdown.on_signal("raised by a task")


@task
def sabotage_the_loop():
    """Breaks the consumer loop of the process it runs in, after it returns:
    a stand-in for a bug in the worker's own code."""
    from django_tasks.worker.consumer import Consumer

    def broken(self, outcome):
        raise RuntimeError("the loop was sabotaged by a task")

    Consumer._count_and_log = broken
    return "sabotaged"


@task(bind=True)
def retry_in(self, seconds):
    raise self.retry(countdown=seconds)


# Values described in plain data (a spec), built in the worker: what a
# task may return or raise that could not be sent to it as an argument.
WRAPPERS = {"list": lambda v: [v], "tuple": lambda v: (v,), "dict": lambda v: {"k": v}}


def build(spec):
    """The value ``spec`` describes: ["value", v] is v; ["nested", kinds] is 0
    wrapped in each kind in turn (see WRAPPERS); ["cyclic"] a list holding
    itself; ["huge", digits] an int of that many digits; ["opaque"] an object."""
    kind = spec[0]
    if kind == "value":
        return spec[1]
    if kind == "nested":
        value = 0
        for wrapper in spec[1]:
            value = WRAPPERS[wrapper](value)
        return value
    if kind == "cyclic":
        return cyclic()
    if kind == "huge":
        return 10 ** (spec[1] - 1)
    if kind == "opaque":
        return object()
    raise ValueError(f"unknown spec {spec!r}")


@task
def return_built(spec):
    return build(spec)


RAISABLE = {cls.__name__: cls for cls in (ValueError, KeyError, RuntimeError, LookupError,
                                          ZeroDivisionError, OwnBaseException)}


@task
def raise_built(name, specs):
    raise RAISABLE[name](*[build(spec) for spec in specs])


@task
def make_rows(count):
    """A large result of many small parts: {"rows": [{"id": 0, "name": "row 0"}, ...]}."""
    return {"rows": [{"id": i, "name": f"row {i}"} for i in range(count)]}
