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
