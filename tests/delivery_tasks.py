"""Tasks of the delivery tests: at-most-once tasks, task loggers, signal receivers."""

import json
import os
import time

from django_tasks import get_task_logger, signals, task

from .models import Execution


@task(bind=True, acks_late=False)
def once_then_block(self, key, seconds):
    """At most once: records that it ran, then blocks (to be killed)."""
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    time.sleep(seconds)
    return key


@task(bind=True, acks_late=False)
def once_record(self, key):
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    return key


@task(bind=True)
def record_then_block_first_time(self, key, seconds):
    """At least once (the default): records, and blocks on its first delivery only."""
    Execution.objects.create(key=key, task_id=self.request.id, pid=os.getpid())
    if self.request.delivery_count <= 1:
        time.sleep(seconds)
    return key


# -- task loggers -------------------------------------------------------------

logger = get_task_logger(__name__)


@task
def log_something(text):
    logger.info("said %s", text)
    return text


@task(bind=True)
def retry_once(self):
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("once more"), countdown=0)
    return "retried"


@task(bind=True)
def header_value(self, key):
    return self.request.headers.get(key)


# -- signal receivers (worker processes a test starts with TESTS_SIGNAL_LOG) ---
# Each takes exactly Celery's keyword arguments (and **extra for Django's
# ``signal``): one missing would be a TypeError, logged, and no line written.

SIGNAL_LOG = os.environ.get("TESTS_SIGNAL_LOG")


def note(signal_name, /, **fields):
    line = json.dumps({"signal": signal_name, "pid": os.getpid(), **fields}, default=repr) + "\n"
    descriptor = os.open(SIGNAL_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def _name(task):
    return getattr(task, "name", None)


if SIGNAL_LOG:
    @signals.task_received.connect
    def _received(sender, request, **extra):
        note("task_received", task_id=request.id, name=request.name, args=request.args,
             consumer=type(sender).__name__)

    @signals.task_prerun.connect
    def _prerun(sender, task_id, task, args, kwargs, **extra):
        note("task_prerun", task=_name(sender), task_id=task_id, args=args, kwargs=kwargs)

    @signals.task_postrun.connect
    def _postrun(sender, task_id, task, args, kwargs, retval, state, **extra):
        note("task_postrun", task=_name(sender), task_id=task_id, state=state,
             retval=repr(retval))

    @signals.task_success.connect
    def _success(sender, result, **extra):
        note("task_success", task=_name(sender), result=result)

    @signals.task_failure.connect
    def _failure(sender, task_id, exception, args, kwargs, traceback, einfo, **extra):
        note("task_failure", task=_name(sender), task_id=task_id,
             exception=type(exception).__name__, args=args,
             traceback=type(traceback).__name__, einfo=einfo.type.__name__,
             einfo_text=einfo.traceback.splitlines()[-1])

    @signals.task_retry.connect
    def _retry(sender, request, reason, einfo, **extra):
        note("task_retry", task=_name(sender), task_id=request.id, reason=str(reason),
             einfo=type(einfo.exception).__name__)

    @signals.task_revoked.connect
    def _revoked(sender, request, terminated, signum, expired, **extra):
        note("task_revoked", task=_name(sender), task_id=request.id, terminated=terminated,
             expired=expired)

    @signals.task_unknown.connect
    def _unknown(sender, name, id, message, exc, **extra):  # noqa: A002 (Celery's name)
        note("task_unknown", name=name, task_id=id, exc=type(exc).__name__)

    @signals.task_rejected.connect
    def _rejected(sender, message, exc, **extra):
        note("task_rejected", task_id=message.task_id, exc=type(exc).__name__)

    @signals.celeryd_init.connect
    def _celeryd_init(sender, instance, conf, options, **extra):
        note("celeryd_init", hostname=sender, pool=options["pool"])

    @signals.celeryd_after_setup.connect
    def _celeryd_after_setup(sender, instance, conf, **extra):
        note("celeryd_after_setup", hostname=sender)

    @signals.worker_init.connect
    def _worker_init(sender, **extra):
        note("worker_init")

    @signals.worker_before_create_process.connect
    def _before_create_process(sender, **extra):
        note("worker_before_create_process")

    @signals.worker_process_init.connect
    def _process_init(sender, **extra):
        note("worker_process_init")

    @signals.worker_ready.connect
    def _ready(sender, **extra):
        note("worker_ready")

    @signals.heartbeat_sent.connect
    def _heartbeat(sender, **extra):
        note("heartbeat_sent")

    @signals.worker_shutting_down.connect
    def _shutting_down(sender, sig, how, exitcode, **extra):
        note("worker_shutting_down", hostname=sender, sig=sig, how=how, exitcode=exitcode)

    @signals.worker_process_shutdown.connect
    def _process_shutdown(sender, pid, exitcode, **extra):
        note("worker_process_shutdown", child=pid, exitcode=exitcode)

    @signals.worker_shutdown.connect
    def _shutdown(sender, **extra):
        note("worker_shutdown")
