"""Which queue and priority a call goes to: a pure function of its inputs."""

from fnmatch import fnmatchcase


def route(task_name, routes):
    """Return the options of the first ``TASK_ROUTES`` glob matching the name."""
    for pattern, options in routes.items():
        if fnmatchcase(task_name, pattern):
            return dict(options)
    return {}


def resolve_options(explicit, task_defaults, routes, task_name, default_queue):
    """Merge call options: explicit > route > task's own > settings default."""
    routed = route(task_name, routes)
    queue = (explicit.get("queue") or routed.get("queue") or task_defaults.get("queue")
             or default_queue)
    priority = explicit.get("priority")
    if priority is None:
        priority = routed.get("priority", task_defaults.get("priority"))
    return queue, (0 if priority is None else int(priority))
