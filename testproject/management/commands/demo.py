"""Run the quick start end to end: migrate, start a worker, enqueue, print results."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from django_tasks import AsyncResult
from django_tasks.exceptions import TimeoutError as TaskTimeout
from testproject.tasks import add, mul, sendmail, xsum

MANAGE = Path(__file__).resolve().parents[3] / "manage.py"


class Command(BaseCommand):
    help = "Migrate, start a worker, run the demo tasks and print their results."

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0)
        self.stdout.write("Database migrated. Starting a worker...")
        worker = subprocess.Popen(
            [sys.executable, str(MANAGE), "runworker", "--loglevel=info"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            self._run_demo()
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(60)
        self.stdout.write(f"Worker stopped (exit code {code}).")

    def _run_demo(self):
        started = time.monotonic()
        self.stdout.write(f">>> add(2, 8)                # inline\n{add(2, 8)}")
        calls = [
            ("add.delay(2, 9)", add.delay(2, 9)),
            ("mul.delay(4, 8)", mul.delay(4, 8)),
            ("xsum.delay([1, 2, 3, 4])", xsum.delay([1, 2, 3, 4])),
            ("sendmail.delay({'to': 'a@b.c'})", sendmail.delay({"to": "a@b.c"})),
        ]
        for label, result in calls:
            self.stdout.write(f">>> r = {label}\n{result!r}")
        for label, result in calls:
            try:
                value = result.get(timeout=60)
            except TaskTimeout:
                raise CommandError(f"{label} did not finish within 60s: is the worker running?")
            again = AsyncResult(result.id)
            self.stdout.write(f">>> {label}.get() -> {value!r}   state={again.state} "
                              f"ready={again.ready()} successful={again.successful()}")
        self.stdout.write(f"All demo tasks done in {time.monotonic() - started:.2f}s.")
