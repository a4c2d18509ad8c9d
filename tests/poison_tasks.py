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
    """Ends a pool thread the way nothing else can: only the worker's own
    shutdown passes through a slot uncaught."""
    raise ColdShutdown("raised by a task")


@task(bind=True)
def retry_in(self, seconds):
    raise self.retry(countdown=seconds)
