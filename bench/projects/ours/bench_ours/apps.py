import os
import time

from django.apps import AppConfig


def _write_ready(**kwargs):
    path = os.environ.get("BENCH_READY_FILE")
    if path:
        with open(path, "w") as f:
            f.write(repr(time.time()))


class BenchOursConfig(AppConfig):
    name = "bench_ours"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_tasks import signals
        signals.worker_ready.connect(_write_ready, weak=False)
