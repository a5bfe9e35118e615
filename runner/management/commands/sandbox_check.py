import asyncio

from django.core.management.base import BaseCommand, CommandError

from engine.backends.local import STARTS
from engine.executor import Run
from engine.spec import RunSpec
from runner import conf
from sandbox import probe
from sandbox.pool import POOL


class Command(BaseCommand):
    help = (
        "Start a probe sandbox and print each isolation layer as on or off, with the reason; "
        "then run a program forked from each zygote (RUNNER_ZYGOTE)."
    )

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
        self._zygotes()

    def _zygotes(self) -> None:
        """A zygote that can't fork only costs speed (its runs start cold), so this never fails."""
        backend = conf.backend()
        if not backend.zygotes:
            reason = "RUNNER_ZYGOTE is off" if not conf.get().engine.zygote else "no cgroups, or no pool"
            self.stdout.write(f"{'zygote':<24} {self.style.WARNING('off')}  {reason}")
            return
        for name in backend.zygotes:
            POOL.ensure(backend.pool)
            POOL.settle()
            before = STARTS["zygote"]
            result = asyncio.run(Run(RunSpec(language=name, code="print(6 * 7)"), backend).result())
            if STARTS["zygote"] == before + 1 and result.stdout == "42\n":
                state, detail = self.style.SUCCESS("on "), f"{name} runs are forked from a zygote"
            else:
                state = self.style.ERROR("off")
                detail = f"{name}'s zygote did not fork a run ({result.status}: {result.stderr.strip()}); its runs start cold"
            self.stdout.write(f"{'zygote (' + name + ')':<24} {state}  {detail}")
