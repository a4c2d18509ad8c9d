from django.core.management.base import BaseCommand

from django_tasks.queue import enqueue
from tests.tasks import limited_span, slow_record


class Command(BaseCommand):
    help = "Enqueue N slow_record tasks (used by tests against their own servers)."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)
        parser.add_argument("--seconds", type=float, default=0.01)
        parser.add_argument("--limited-keys", type=int, default=0,
                            help="limited_span tasks over this many keys instead")

    def handle(self, count, seconds, limited_keys, **options):
        if limited_keys:
            for i in range(count):
                limited_span.delay(f"k{i % limited_keys}", seconds)
            self.stdout.write(f"enqueued {count}")
            return
        enqueue([slow_record.build_message((f"k{i}", seconds)) for i in range(count)])
        self.stdout.write(f"enqueued {count}")
