import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

# glibc tuning for a long-lived server whose responses can each hold a megabyte
# of program output: allocations over 128 KiB are mmapped and returned to the
# system when freed (the default sliding threshold would keep them in the heap),
# and threads share two heaps rather than one each. Measured by the load test.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "2"}


class Command(BaseCommand):
    help = "Serve the ASGI app with daphne, as `make run` does."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args, host, port, **options):
        env = {**os.environ, **MALLOC_ENV}
        # From any working directory, as daphne's own command line finds the project in ".".
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(settings.BASE_DIR), env.get("PYTHONPATH")) if p)
        # exec: the server replaces this process, so signals and exit codes are daphne's own.
        # playground.server is daphne's command line with one websocket setting changed.
        argv = [
            sys.executable,
            "-m",
            "playground.server",
            "-b",
            host,
            "-p",
            str(port),
            "playground.asgi:application",
        ]
        os.execve(sys.executable, argv, env)
