"""Celery's task and calling options that have no meaning here.

A Celery codebase passes these (``@task(throws=...)``,
``apply_async(routing_key=...)``); refusing them would stop a migration at
the first import, so they are accepted and ignored (the system checks list
the task options: see ``checks.check_task_options``). A name that is not
Celery's either is still a ``TypeError``: a typo must not pass silently.
"""

# Celery ``Task`` attributes (options of ``@task``) that change nothing here:
# AMQP routing, events, eager-result storage, result repr size, pydantic.
IGNORED_TASK_OPTIONS = frozenset({
    "throws", "store_errors_even_if_ignored", "compression", "exchange",
    "exchange_type", "routing_key", "delivery_mode", "send_events", "trail",
    "store_eager_result", "resultrepr_maxsize", "request_stack", "abstract", "backend",
    "shared", "lazy", "filter", "pydantic",
    "pydantic_strict", "pydantic_context", "pydantic_dump_kwargs", "Strategy", "Request",
    "from_config", "reply_to",
})

# ``apply_async`` options of Celery's that change nothing here: routing and
# publishing through an AMQP broker (the database is the broker) and the
# publish-retry policy (an enqueue is one INSERT, in the caller's transaction).
IGNORED_APPLY_OPTIONS = frozenset({
    "exchange", "exchange_type", "routing_key", "compression", "retry", "retry_policy",
    "shadow", "producer", "connection", "add_to_parent", "publisher", "router", "result_cls",
    "reply_to", "mandatory", "immediate", "declare", "delivery_mode", "route_name",
    "stamped_headers",
})


def refuse_unknown_apply_options(options, task_name):
    """Drop nothing, check everything: ``TypeError`` for a name Celery does not know either."""
    unknown = [name for name in options if name not in IGNORED_APPLY_OPTIONS]
    if unknown:
        raise TypeError(f"apply_async() of {task_name} got unknown options: "
                        f"{', '.join(sorted(unknown))}")
