"""Celery's signals, with Celery's names, senders and keyword arguments.

They are Django signals (``@receiver(task_prerun)`` works), and ``connect``
is also a decorator, as in Celery: ``@task_prerun.connect`` or
``@task_prerun.connect(sender=...)``. Receivers should accept ``**kwargs``,
as Celery advises, since more arguments may come. See docs/signals-and-logging.rst for
where each is sent; in short:

Sending (the process that calls ``.delay()``), sender the task's name:
``before_task_publish`` (body, exchange, routing_key, headers, properties,
declare, retry_policy; ``headers`` may be changed and the message carries
the change) and ``after_task_publish`` (body, exchange, routing_key, headers).

Running (the process that runs the task; a prefork child):
``task_received`` (sender the consumer; request), ``task_prerun`` (task_id,
task, args, kwargs), ``task_postrun`` (+ retval, state), ``task_success``
(result), ``task_failure`` (task_id, exception, args, kwargs, traceback,
einfo), ``task_retry`` (request, reason, einfo), ``task_revoked`` (request,
terminated, signum, expired), ``task_unknown`` (name, id, message, exc) and
``task_rejected`` (message, exc).

The worker: ``celeryd_init`` (sender the node name; instance, conf,
options), ``celeryd_after_setup`` (instance, conf), ``worker_init``,
``worker_before_create_process`` (prefork, before each fork),
``worker_process_init`` and ``worker_process_shutdown`` (pid, exitcode) in
each prefork child (and the solo pool's process), ``worker_ready``,
``heartbeat_sent``, ``worker_shutting_down`` (sender the node name; sig,
how, exitcode), ``worker_shutdown``; ``setup_logging``,
``after_setup_logger``, ``after_setup_task_logger``; ``beat_init`` and
``beat_embedded_init``.
"""

from django.dispatch import Signal as DjangoSignal


class Signal(DjangoSignal):
    """A Django signal whose ``connect`` is also a decorator, as Celery's is:
    ``@task_prerun.connect`` and ``@celeryd_init.connect(sender="w1@host")``
    (Django's returns None, which would leave the receiver to be collected)."""

    def connect(self, receiver=None, sender=None, weak=True, dispatch_uid=None):
        if receiver is None:
            def decorate(function):
                super(Signal, self).connect(function, sender=sender, weak=weak,
                                            dispatch_uid=dispatch_uid)
                return function

            return decorate
        super().connect(receiver, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
        return receiver

# -- sending ---------------------------------------------------------------
before_task_publish = Signal()
after_task_publish = Signal()

# -- running a task ----------------------------------------------------------
task_received = Signal()
task_prerun = Signal()
task_postrun = Signal()
task_success = Signal()
task_failure = Signal()
task_retry = Signal()
task_revoked = Signal()
task_unknown = Signal()
task_rejected = Signal()

# -- the worker --------------------------------------------------------------
celeryd_init = Signal()
celeryd_after_setup = Signal()
worker_init = Signal()
worker_before_create_process = Signal()
worker_process_init = Signal()
worker_process_shutdown = Signal()
worker_ready = Signal()
heartbeat_sent = Signal()
worker_shutting_down = Signal()
worker_shutdown = Signal()

# -- logging (runworker) -------------------------------------------------------
setup_logging = Signal()
after_setup_logger = Signal()
after_setup_task_logger = Signal()

# -- beat ----------------------------------------------------------------------
beat_init = Signal()
beat_embedded_init = Signal()
