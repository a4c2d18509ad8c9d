import signal

from django.core.management.base import BaseCommand, CommandError

from django_tasks import schema
from django_tasks.beat.service import Beat
from django_tasks.conf import settings
from django_tasks.management.commands.runworker import _configure_logging


class Command(BaseCommand):
    help = ("Send periodic tasks (like `celery beat`). Any number may run, also next to "
            "`runworker --beat`: each tick is sent once.")
    requires_system_checks = "__all__"

    def add_arguments(self, parser):
        parser.add_argument("-l", "--loglevel", default="INFO",
                            choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                            type=str.upper, help="Log level (default INFO).")
        parser.add_argument("-f", "--logfile", default=None, help="Log to this file.")

    def handle(self, *args, loglevel, logfile, **options):
        refused = schema.refusal(settings.DATABASE)
        if refused:
            raise CommandError(f"runbeat: {refused}")
        _configure_logging(loglevel, logfile)
        beat = Beat.started()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: beat.stop(timeout=0))
        # join() with a timeout lets the main thread run the signal handlers.
        while beat.is_alive():
            beat.join(0.5)
