"""The seam between the executor and wherever sandboxes run: this host, or (later) a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sandbox import Outcome
from sandbox.built import Artifact

from .spec import RunSpec


@dataclass(frozen=True)
class Chunk:
    """Output of a stage's program; empty data: that stream has ended."""

    stream: str  # "stdout" or "stderr"
    data: bytes
    stage: str = "run"


@dataclass(frozen=True)
class StageExit:
    """A stage's program has exited; its Outcome is ready (Handle.outcome)."""

    stage: str


class Handle(Protocol):
    """One started run on a backend."""

    warm: bool  # it took a pre-warmed sandbox

    async def receive(self) -> Chunk | StageExit:
        """The next thing that happened; cancelling the wait loses nothing. A stage's exit and
        the ends of its two streams come in any order, and all of a stage's events before any
        of the next stage's."""

    async def write_stdin(self, data: bytes) -> bool:
        """False once the program no longer reads its input."""

    def close_stdin(self) -> None: ...

    def kill(self) -> None:
        """End the program's whole process tree now."""

    async def built(self) -> dict[str, Artifact]:
        """A build-only run's files, once its compile has ended well (NotBuilt: the compile left
        none, or none that may be taken)."""

    def outcome(self, stage: str) -> Outcome:
        """How a stage's program ended (SandboxError-free: a setup failure is in the Outcome)."""

    async def close(self) -> None:
        """Tear everything down and give the slot back; safe to call once, even when cancelled."""


class Backend(Protocol):
    async def start(self, spec: RunSpec, *, interactive: bool) -> Handle:
        """Start a run: Busy when no slot frees up in time, Unavailable when the host can't isolate.

        interactive: stdin stays open for Handle.write_stdin(); otherwise it is spec.stdin.
        """
