import os
import socket
import sys

from django.core.management.base import BaseCommand, CommandError

from django_tasks import schema, signals, task_signals
from django_tasks.beat.service import Beat
from django_tasks.conf import settings
from django_tasks.registry import tasks as registry
from django_tasks.worker import banner, logs
from django_tasks.worker.consumer import Consumer
from django_tasks.worker.supervisor import Supervisor

POOLS = ["prefork", "threads", "solo"]


class Command(BaseCommand):
    help = "Run a worker that executes queued tasks (like `celery worker`)."
    requires_system_checks = "__all__"

    def add_arguments(self, parser):
        parser.add_argument("-Q", "--queues", default=None,
                            help="Comma-separated queues to consume (default: DEFAULT_QUEUE).")
        parser.add_argument("-l", "--loglevel", default="INFO",
                            help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO).")
        parser.add_argument("-c", "--concurrency", type=int, default=None,
                            help="Number of pool slots (default: number of CPUs; solo: 1).")
        parser.add_argument("-P", "--pool", default="prefork", choices=POOLS,
                            help="Execution pool (default prefork).")
        parser.add_argument("--max-tasks-per-child", type=int, default=None,
                            help="Replace a prefork child after it ran this many tasks.")
        parser.add_argument("-n", "--hostname", default=None,
                            help="Node name (default worker@<host>).")
        parser.add_argument("--prefetch-multiplier", type=int, default=4,
                            help="Messages claimed per slot (default 4); the extras wait "
                                 "for a free slot, or go back to the queue for an idle "
                                 "one elsewhere.")
        parser.add_argument("-f", "--logfile", default=None, help="Log to this file.")
        parser.add_argument("--pidfile", default=None, help="Write the process id here.")
        parser.add_argument("--no-banner", action="store_true", help="Skip the start-up banner.")
        parser.add_argument("-B", "--beat", action="store_true",
                            help="Also send periodic tasks (any number of workers may).")

    def handle(self, *args, **options):
        level = options["loglevel"].upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise CommandError(f"unknown log level {options['loglevel']!r}")
        queues = [q.strip() for q in (options["queues"] or settings.DEFAULT_QUEUE).split(",")
                  if q.strip()]
        if not queues:
            raise CommandError("--queues names no queue")
        if options["prefetch_multiplier"] < 1:
            raise CommandError("--prefetch-multiplier must be at least 1")
        concurrency = options["concurrency"] or os.cpu_count() or 1
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        if options["pool"] == "solo":
            concurrency = 1
        max_tasks = options["max_tasks_per_child"]
        if max_tasks is not None and max_tasks < 1:
            raise CommandError("--max-tasks-per-child must be at least 1")
        refused = schema.refusal(settings.DATABASE)
        if refused:
            raise CommandError(f"runworker: {refused}")
        hostname = options["hostname"] or f"worker@{socket.gethostname()}"
        _configure_logging(level, options["logfile"])
        if options["pidfile"]:
            with open(options["pidfile"], "w") as pidfile:
                pidfile.write(f"{os.getpid()}\n")
        if options["pool"] == "prefork":
            consumer = Supervisor(queues, hostname, concurrency,
                                  prefetch_multiplier=options["prefetch_multiplier"],
                                  max_tasks_per_child=max_tasks)
        else:
            consumer = Consumer(queues, hostname, concurrency=concurrency, pool=options["pool"],
                                prefetch_multiplier=options["prefetch_multiplier"])
        task_signals.send(signals.celeryd_init, sender=hostname, instance=consumer,
                          conf=settings, options=options)
        task_signals.send(signals.worker_init, sender=consumer)
        task_signals.send(signals.celeryd_after_setup, sender=hostname, instance=consumer,
                          conf=settings)
        if not options["no_banner"]:
            sys.stdout.write(banner.render(hostname, consumer.backend.alias, queues,
                                           concurrency, options["pool"], registry.keys(),
                                           consumer.backend.wakes_up))
            sys.stdout.flush()
        beat = Beat.started() if options["beat"] else None
        if beat is not None:
            task_signals.send(signals.beat_embedded_init, sender=beat)
        try:
            code = consumer.run()
        finally:
            if beat is not None:
                beat.stop()
            if options["pidfile"] and os.path.exists(options["pidfile"]):
                os.unlink(options["pidfile"])
        sys.exit(code)


def _configure_logging(level, logfile):
    logs.configure(level, logfile)
