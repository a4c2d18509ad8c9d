from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_tasks import concurrency_status, monitoring, rate_status


class Command(BaseCommand):
    help = "Show queues (depth, oldest waiting), live workers and recent throughput."

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=int, default=5,
                            help="Throughput window in minutes (default 5).")

    def handle(self, *args, minutes=5, **options):
        if not 1 <= minutes <= 24 * 60:
            raise CommandError("--minutes must be between 1 and 1440")
        now = timezone.now()
        write = self.stdout.write
        write("Queues")
        queues = monitoring.queue_figures(now)
        if not queues:
            write("  (no queued or running tasks)")
        for q in queues:
            age = "-" if q.oldest_waiting_seconds is None else f"{q.oldest_waiting_seconds:.1f}s"
            write(f"  {q.name:<20} waiting {q.waiting_text:>7}  running {q.running:>5}  "
                  f"oldest waiting {age}")
        self._waiting_for_slots(write)
        self._held_back_by_rate(write)
        self._rate_overrides(write)
        self.write_unique_keys()
        write("Workers")
        workers = monitoring.live_workers(now)
        if not workers:
            write("  (no live worker)")
        for w in workers:
            beat = (now - w.last_heartbeat).total_seconds()
            write(f"  {w.hostname} pid {w.pid} {w.pool}x{w.concurrency} "
                  f"queues {','.join(w.queues)} processed {w.processed} failed {w.failed} "
                  f"heartbeat {beat:.1f}s ago")
            for message in w.current:
                write(f"    running {message.task_name}[{message.task_id}]")
        rows = monitoring.throughput(minutes, now)
        total = sum(done for _, done, _ in rows)
        failed = sum(f for _, _, f in rows)
        write(f"Throughput, last {minutes} min: {total} done ({total / (minutes * 60):.1f}/s), "
              f"{failed} failed")
        for minute, done, fail in rows:
            write(f"  {timezone.localtime(minute):%H:%M}  {done:>8} done  {fail:>6} failed")

    def _waiting_for_slots(self, write):
        keys = concurrency_status.waiting_for_slots()
        if not keys:
            return
        write("Waiting for a concurrency slot")
        for k in keys:
            write(f"  {k.task_name}  key {k.key_shown}  waiting {k.waiting}  "
                  f"running {k.running_text}")

    def _held_back_by_rate(self, write):
        tasks = rate_status.held_back_by_rate()
        if not tasks:
            return
        write("Waiting for a rate limit's turn")
        for t in tasks:
            write(f"  {t.task_name}  the last one handed back starts in {t.line_text}")

    def _rate_overrides(self, write):
        overrides = rate_status.overrides()
        if not overrides:
            return
        write("Rate limits set by app.control.rate_limit() (every worker obeys them)")
        for name, rate in overrides:
            write(f"  {name}  {rate}")

    def write_unique_keys(self):
        held = monitoring.unique_keys_held()
        if held:
            shown = f"over {monitoring.DEPTH_CAP:,}" if held > monitoring.DEPTH_CAP else held
            self.stdout.write(f"Unique keys held: {shown}")
