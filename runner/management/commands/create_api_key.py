from django.core.management.base import BaseCommand, CommandError

from runner.models import ApiKey
from runner.rates import Rate


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, as the last line, and never stored."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--rate", default="", help="like 600/min, 5/s or 1000/h (default: RUNNER_KEY_RATE_LIMIT)"
        )
        parser.add_argument("--credits", type=int, default=None, help="runs it may make (default: unlimited)")
        parser.add_argument("--concurrency", type=int, default=4, help="runs at once (default 4)")
        parser.add_argument("--max-timeout", type=int, default=None, help="a higher timeout ceiling, in ms")
        parser.add_argument("--max-memory", type=int, default=None, help="a higher memory ceiling, in MiB")

    def handle(self, *args, name, rate, credits, concurrency, max_timeout, max_memory, **options):
        if rate:
            try:
                Rate.parse(rate)
            except ValueError as e:
                raise CommandError(str(e)) from None
        for label, value in (("credits", credits), ("concurrency", concurrency), ("max-timeout", max_timeout),
                             ("max-memory", max_memory)):  # fmt: skip
            if value is not None and value < (1 if label == "concurrency" else 0):
                raise CommandError(
                    f"--{label} must not be negative"
                    if label != "concurrency"
                    else "--concurrency must be at least 1"
                )
        key, secret = ApiKey.issue(
            name,
            rate=rate,
            credits=credits,
            concurrency=concurrency,
            max_timeout_ms=max_timeout,
            max_memory_mib=max_memory,
        )
        credit_text = "unlimited" if credits is None else str(credits)
        self.stdout.write(
            f"Created API key {key} with {credit_text} credits. Keep it now; it is not shown again:"
        )
        self.stdout.write(secret)
