from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from django_tasks.conf import settings
from django_tasks.maintenance import purge_expired_results


class Command(BaseCommand):
    help = ("Delete task results older than DJANGO_TASKS['RESULT_EXPIRES'] (default one "
            "day), and the saved groups and finished chords created before then.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, metavar="SECONDS",
                            help="Override RESULT_EXPIRES for this run.")
        parser.add_argument("--batch-size", type=int, metavar="N",
                            help="Rows per DELETE (default PURGE_BATCH_SIZE).")

    def handle(self, *args, older_than=None, batch_size=None, **options):
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must not be negative")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        expires = timedelta(seconds=older_than) if older_than is not None else None
        if expires is None and settings.RESULT_EXPIRES is None:
            self.stdout.write("RESULT_EXPIRES is None: results are kept; nothing purged.")
            return
        purged = purge_expired_results(expires=expires, batch_size=batch_size)
        self.stdout.write(f"Purged {purged.results} expired result(s) and {purged.groups} "
                          f"group/chord row(s).")
