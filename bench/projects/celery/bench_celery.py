"""The bench's Celery app: Redis as broker and result backend, the same three tasks."""

import os
import time

from celery import Celery
from celery.signals import worker_ready

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
BROKER_DB = os.environ.get("BENCH_BROKER_DB", "12")
RESULT_DB = os.environ.get("BENCH_RESULT_DB", "13")

app = Celery("bench_celery", broker=f"{REDIS}/{BROKER_DB}", backend=f"{REDIS}/{RESULT_DB}")
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


@worker_ready.connect
def _write_ready(**kwargs):
    path = os.environ.get("BENCH_READY_FILE")
    if path:
        with open(path, "w") as f:
            f.write(repr(time.time()))


@app.task
def noop():
    return None


@app.task
def sleep10():
    time.sleep(0.01)


@app.task
def stamp():
    return time.time()
