"""A long-lived sandbox that answers requests, one at a time: a shared build step.

TypeScript's build (engine/transpile.py) runs in one: esbuild started once, not in every run's
sandbox. It is an ordinary sandbox in every layer (namespaces, seccomp, its own cgroup with its
own limits, an unprivileged uid of its own above the pool's, no network), whose program reads
requests on stdin and writes answers on stdout, each an 8-byte big-endian length and a body.
A request is handed the files through the hand-over codec; what the program does with them
is its own (runtimes/ts-service.cjs keeps nothing between two).

Calls are blocking and serialised by a lock, so any thread (and any event loop, through
asyncio.to_thread) may call. A service that does not answer within the call's time, or
answers wrongly, is destroyed; the next call starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from dataclasses import replace

from . import handover
from .box import Sandbox
from .spec import BoxSpec, Host, SandboxError

log = logging.getLogger(__name__)

# Its uid: above the run slots' (uid_base + 0..63) and the pool's (sandbox.pool).
SERVICE_SLOT = 1100
CGROUP_PREFIX = "service"
MAX_ANSWER_BYTES = 64 << 20


# The services running in this process (the tests tell their sandboxes from leftovers).
RUNNING: set[Service] = set()
_running_lock = threading.Lock()


def running_cgroups() -> set[str]:
    with _running_lock:
        return {d for service in RUNNING for d in service.cgroup_dirs()}


class ServiceError(Exception):
    """The service did not answer in time (timed_out), or answered wrongly (it is then replaced)."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class Service:
    def __init__(self, spec: BoxSpec, host: Host, name: str):
        self.spec = replace(spec, slot=SERVICE_SLOT, cgroup_prefix=CGROUP_PREFIX)
        self.host = host
        self.name = name
        self._lock = threading.Lock()
        self._box: Sandbox | None = None
        self._fds: tuple[int, int] | None = None  # (its stdin's write end, its stdout's read end)

    def call(self, files: dict[str, bytes], timeout: float) -> bytes:
        """Send the files; its answer's body. ServiceError when it fails (a fresh one serves the
        next call); SandboxError when none can start."""
        with self._lock:
            if self._box is None:
                self._start()
            try:
                return self._exchange(handover.encode(files, []), time.monotonic() + timeout)
            except (OSError, ServiceError) as e:
                log.warning("the %s service failed (%s); it is replaced", self.name, e)
                self._stop()
                raise ServiceError(str(e), getattr(e, "timed_out", False)) from None

    def running(self) -> bool:
        return self._box is not None

    def cgroup_dirs(self) -> set[str]:
        box = self._box
        return set(box.cgroup.dirs.values()) if box and box.cgroup else set()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> None:
        box = Sandbox.launch(self.spec, self.host)
        self._box = box
        self._fds = box.take_pipes()
        os.set_blocking(self._fds[0], False)  # a write takes what fits, so the deadline holds
        with _running_lock:
            RUNNING.add(self)

    def _stop(self) -> None:
        with _running_lock:
            RUNNING.discard(self)
        box, self._box = self._box, None
        fds, self._fds = self._fds, None
        for fd in fds or ():
            os.close(fd)
        if box is not None:
            try:
                box.discard()
            except SandboxError as e:
                log.error("the %s service would not go away: %s", self.name, e)

    def _exchange(self, request: bytes, deadline: float) -> bytes:
        into, out = self._fds
        view = memoryview(request)
        while view:
            self._wait(into, select.POLLOUT, deadline)
            try:
                view = view[os.write(into, view) :]
            except BlockingIOError:
                pass
        size = int.from_bytes(self._read(out, 8, deadline), "big")
        if size > MAX_ANSWER_BYTES:
            raise ServiceError(f"an answer of {size} bytes")
        return self._read(out, size, deadline)

    def _read(self, fd: int, n: int, deadline: float) -> bytes:
        chunks, left = [], n
        while left:
            self._wait(fd, select.POLLIN, deadline)
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise ServiceError("it exited")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _wait(fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise ServiceError("no answer in time", timed_out=True)
