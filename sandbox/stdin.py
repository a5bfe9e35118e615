"""A sandbox's stdin, from the server's side: written whole at once, fed in the background, or kept open."""

from __future__ import annotations

import asyncio
import os

from .process import pipe_size, write_all


class StdinPipe:
    """The write end of the program's stdin pipe."""

    def __init__(self, fd: int):
        self.fd: int | None = fd
        self._writer: asyncio.StreamWriter | None = None
        self._feeder: asyncio.Task | None = None

    @property
    def open(self) -> bool:
        return self.fd is not None

    def fill(self, data: bytes) -> None:
        """All of the program's input, then EOF: written now when it fits the pipe, else fed."""
        if len(data) <= pipe_size(self.fd):
            write_all(self.fd, data)
            self.close()
        else:
            self._feeder = asyncio.create_task(self._feed(data))

    async def begin(self, data: bytes) -> None:
        """The first bytes of an input kept open: written now when they fit the pipe, which
        nothing was written to yet, else through the writer."""
        if self._writer is None and self.fd is not None and len(data) <= pipe_size(self.fd):
            write_all(self.fd, data)
        else:
            await self.write(data)

    async def _feed(self, data: bytes) -> None:
        await self.write(data)
        self.close()

    async def _open_writer(self) -> None:
        loop = asyncio.get_running_loop()
        fd, self.fd = self.fd, None
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(fd, "wb", buffering=0)
        )
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write(self, data: bytes) -> bool:
        """Send bytes to the program; False once it no longer reads stdin."""
        if self._writer is None and self.fd is not None:
            await self._open_writer()
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        try:
            writer.write(data)
            await writer.drain()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._writer is not None:
            self._writer.close()

    def cancel(self) -> None:
        """Stop feeding (the sandbox is going away)."""
        if self._feeder:
            self._feeder.cancel()
