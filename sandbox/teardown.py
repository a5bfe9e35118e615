"""A sandbox's end: wait for bwrap to exit and the sandbox to be provably empty, killing what is left."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .process import kill_pid, uid_pids
from .spec import SandboxError

if TYPE_CHECKING:
    from .box import Sandbox

log = logging.getLogger("sandbox.box")

EMPTY_WAIT_SECONDS = 5.0
BWRAP_EXIT_SECONDS = 2.0  # after its sandbox is killed, bwrap reaps the init and exits at once


async def gone(box: Sandbox) -> None:
    """Wait for bwrap to exit and the cgroup to empty, killing what is left."""
    if box.process:
        try:
            await asyncio.wait_for(box.process.wait(), BWRAP_EXIT_SECONDS)
        except TimeoutError:
            log.error("bwrap %s did not exit after its sandbox was killed", box.process.pid)
            box.process.kill()
            await box.process.wait()
    box.exit_status()
    deadline = time.monotonic() + EMPTY_WAIT_SECONDS
    # Polled: cgroup v1 offers no event for "empty", and strays die within milliseconds.
    while _kill_stragglers(box, deadline):  # noqa: ASYNC110
        await asyncio.sleep(0.001)


def gone_blocking(box: Sandbox) -> None:
    """gone(), blocking the calling thread instead of awaiting."""
    if box.process:
        deadline = time.monotonic() + BWRAP_EXIT_SECONDS
        while box.process.returncode is None and not box.process.reap():
            if time.monotonic() > deadline:
                box.process.kill()
                deadline = time.monotonic() + BWRAP_EXIT_SECONDS
            time.sleep(0.001)
    box.exit_status()
    deadline = time.monotonic() + EMPTY_WAIT_SECONDS
    while _kill_stragglers(box, deadline):
        time.sleep(0.001)


def _kill_stragglers(box: Sandbox, deadline: float) -> bool:
    """Kill what is left of the sandbox; False once nothing is (past the deadline, SandboxError)."""
    left = box.cgroup.pids() if box.cgroup else uid_pids(box.host.uid(box.spec.slot))
    if not left:
        return False
    if time.monotonic() > deadline:
        raise SandboxError(f"processes {left} of the sandbox survived {EMPTY_WAIT_SECONDS}s")
    if box.cgroup:
        box.cgroup.kill()
    else:
        for pid in left:
            kill_pid(pid)
    return True
