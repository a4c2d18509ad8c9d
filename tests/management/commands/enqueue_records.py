from django.core.management.base import BaseCommand

from django_tasks.queue import enqueue
from tests.tasks import slow_record


class Command(BaseCommand):
    help = "Enqueue N slow_record tasks (used by tests against their own servers)."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)
        parser.add_argument("--seconds", type=float, default=0.01)

    def handle(self, count, seconds, **options):
        enqueue([slow_record.build_message((f"k{i}", seconds)) for i in range(count)])
        self.stdout.write(f"enqueued {count}")
