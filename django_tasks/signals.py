"""Worker and task lifecycle signals, as Django signals with Celery's names.

Receivers get ``sender`` (the ``Task``, or the worker) and keyword
arguments: ``task_id``, ``task``, ``args``, ``kwargs`` and, where it
applies, ``retval``/``state`` (postrun), ``result`` (success),
``exception``/``traceback`` (failure), ``reason`` (retry), ``request``
(revoked).
"""

from django.dispatch import Signal

task_prerun = Signal()
task_postrun = Signal()
task_success = Signal()
task_failure = Signal()
task_retry = Signal()
task_revoked = Signal()
worker_ready = Signal()
worker_shutdown = Signal()
