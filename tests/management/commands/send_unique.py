import json

from django.core.management.base import BaseCommand

from tests.unique_tasks import unique_report


class Command(BaseCommand):
    help = "Send unique_report for customers start..start+count (mod keys); print the ids."

    def add_arguments(self, parser):
        parser.add_argument("start", type=int)
        parser.add_argument("count", type=int)
        parser.add_argument("--keys", type=int, default=50)
        parser.add_argument("--seconds", type=float, default=0.02)

    def handle(self, start, count, keys, seconds, **options):
        sent = [(i % keys, unique_report.delay(i % keys, seconds).id)
                for i in range(start, start + count)]
        self.stdout.write(json.dumps(sent))
