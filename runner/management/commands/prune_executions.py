from django.core.management.base import BaseCommand

from runner import conf
from runner.models import Execution


class Command(BaseCommand):
    help = "Delete stored runs older than the retention period (RUNNER_RETENTION_HOURS)."

    def handle(self, *args, **options):
        count = Execution.objects.prune()
        self.stdout.write(f"deleted {count} runs older than {conf.get().retention_hours:g} h")
