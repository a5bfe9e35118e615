"""What sandbox-init reports on its status pipe: each stage's real wait status and wall time.

One line per stage, as each ends: `compile exit CODE NS` or `compile signal N NS` for a
compile stage, then `exit CODE NS` or `signal N NS` for the program (runtimes/sandbox-init.c).
"""

from __future__ import annotations

import asyncio
import os
import re

from .spec import ExitStatus

LINE = re.compile(rb"(?:(compile) )?(exit|signal) (\d+) (\d+)\n")


class StatusPipe:
    """The read end of a sandbox's status pipe, and the stages' statuses read from it so far."""

    def __init__(self, fd: int):
        os.set_blocking(fd, False)
        self.fd: int | None = fd
        self._buffer = b""
        self._ended = False  # the pipe reached EOF: sandbox-init is gone
        self.statuses: dict[str, ExitStatus] = {}

    def get(self, stage: str) -> ExitStatus | None:
        """The stage's status, if it has been reported ("run" or "compile")."""
        if stage not in self.statuses:
            self._read()
        return self.statuses.get(stage)

    def _read(self) -> None:
        if self.fd is None or self._ended:
            return
        data = self._buffer
        try:
            while chunk := os.read(self.fd, 4096):
                data += chunk
            self._ended = True  # EOF: sandbox-init is gone
        except BlockingIOError:
            pass
        while True:
            m = LINE.match(data)
            if not m:
                break
            data = data[m.end() :]
            stage = "compile" if m.group(1) else "run"
            number, ns = int(m.group(3)), int(m.group(4))
            if m.group(2) == b"exit":
                self.statuses[stage] = ExitStatus(number, None, ns)
            else:
                self.statuses[stage] = ExitStatus(None, number, ns)
        self._buffer = data

    async def wait(self, stage: str, exited: asyncio.Future) -> None:
        """Until the stage's status is in, or `exited` (bwrap's exit, Watched.exited(): not
        cancelled here) is done first. One future a wake, woken by callbacks: no task of its own."""
        if self.fd is None:
            return
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake(*_) -> None:
            if not woken.done():
                woken.set_result(None)

        exited.add_done_callback(wake)
        loop.add_reader(self.fd, wake)
        try:
            while self.get(stage) is None and not self._ended and not exited.done():
                await woken
                woken = loop.create_future()
        finally:
            loop.remove_reader(self.fd)
            exited.remove_done_callback(wake)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
