"""Built-in tasks behind ``task.map()``, ``task.starmap()`` and ``task.chunks()``,
and the one that ends a group that replaces a task (``replace()``).

Found by the same autodiscovery as users' ``tasks.py`` modules, so every
worker knows them. Each runs the mapped task's body inline, once per item,
and returns the list of values (as Celery's ``celery.map``/``celery.starmap``).
"""

from .canvas import Signature
from .task import task


@task(name="django_tasks.map")
def xmap(task, it):
    body = Signature.from_dict(task).type
    return [body(item) for item in it]


@task(name="django_tasks.starmap")
def xstarmap(task, it):
    body = Signature.from_dict(task).type
    return [body(*item) for item in it]


@task(name="django_tasks.accumulate")
def accumulate(values):
    """The body of the chord a group is made into when it replaces a task (as
    Celery's ``celery.accumulate``): the task's value is the group's values."""
    return values
