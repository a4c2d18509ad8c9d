"""The registry of tasks by name, filled by the ``@task`` decorator."""

from .exceptions import NotRegistered


class TaskRegistry(dict):
    def register(self, task):
        # Re-importing a module (autoreload, tests) registers the same name
        # again; the newest definition wins, as in Celery.
        self[task.name] = task
        return task

    def lookup(self, name):
        try:
            return self[name]
        except KeyError:
            raise NotRegistered(
                f"Received unregistered task of type {name!r}. The message has been "
                "ignored and discarded. Did you remember to import the module "
                "containing this task (a tasks.py in an installed app)?") from None


tasks = TaskRegistry()
