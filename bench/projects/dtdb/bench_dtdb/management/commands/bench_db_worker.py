"""django-tasks-db's db_worker, unchanged, plus a ready time-stamp for the bench.

The timestamp is written when the worker loop starts (after Django's set-up
and the command's checks), like the worker_ready signal of the others.
"""

import os
import time

from django_tasks_db.management.commands import db_worker


class Command(db_worker.Command):
    def handle(self, *args, **options):
        original = db_worker.Worker.run

        def run(worker):
            path = os.environ.get("BENCH_READY_FILE")
            if path:
                with open(path, "w") as f:
                    f.write(repr(time.time()))
            return original(worker)

        db_worker.Worker.run = run
        return super().handle(*args, **options)
