import asyncio

from django.core.management.base import BaseCommand, CommandError

from runner import conf
from sandbox import probe


class Command(BaseCommand):
    help = "Start a probe sandbox and print each isolation layer as on or off, with the reason."

    def handle(self, *args, **options):
        layers = asyncio.run(probe.check(conf.get().host))
        for layer in layers:
            state = self.style.SUCCESS("on ") if layer.on else self.style.ERROR("off")
            need = "" if layer.required else " (optional)"
            self.stdout.write(f"{layer.name:<24} {state}  {layer.detail}{need}")
        failure = probe.failure(layers)
        if failure:
            raise CommandError(f"isolation is broken, so no code will run: {failure}")
        self.stdout.write(self.style.SUCCESS("isolation holds: code can run"))
