"""RunResult: what every run answers, from every door, with a result per stage. Defined once.

The REST answer, the websocket's exit frame, the stored execution and the OpenAPI
document are all made from these models, so a field name is spelled in one place.
"""

from __future__ import annotations

import signal as signals
from typing import Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "killed", "compile_error"]
STATUSES: tuple[str, ...] = get_args(Status)
STAGES = ("compile", "run")


class StageResult(BaseModel):
    """How one stage (the compile) went: its own output, exit code, status and duration."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    stdout: str
    stderr: str
    exit_code: int | None
    signal: str | None
    status: Status
    duration: int = Field(description="The stage's own wall time in milliseconds.")
    truncated: bool
    cpu_time: int | None = Field(None, description="CPU milliseconds of all its processes together.")
    peak_memory: int | None = Field(None, description="The most memory it held at once, in bytes.")

    def to_frame(self) -> dict:
        """The stage's end as a websocket frame: its output was already streamed."""
        return self.model_dump(mode="json", by_alias=True, exclude={"stdout", "stderr"})


class RunResult(BaseModel):
    """What every run answers: the run stage's fields, and the compile stage's when there is one."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: UUID
    language: str = Field(description="The canonical language name.")
    exit_code: int | None = Field(description="The program's exit code; null when a signal ended it.")
    stdout: str = Field(description="The program's exact output, as UTF-8 with invalid bytes replaced.")
    stderr: str
    duration: int = Field(description="The program's own wall time in milliseconds.")
    timed_out: bool
    truncated: bool = Field(description="Output went past the cap; only what came before it is kept.")
    signal: str | None = Field(description="The name of the signal that ended the program, if one did.")
    status: Status = Field(
        description="Why the run ended: ok (exit 0), error (non-zero exit or a signal), timeout, "
        "memory (killed for exceeding memory), output_limit, killed (stopped by its client), or "
        "compile_error (the compile stage failed, and nothing ran)."
    )
    cpu_time: int | None = Field(
        None, description="CPU milliseconds of all the program's processes together; null without cgroups."
    )
    peak_memory: int | None = Field(
        None, description="The most memory the program held at once, in bytes; null without cgroups."
    )
    compile: StageResult | None = Field(
        None, description="The compile stage, for a compiled language; null for an interpreted one."
    )

    def to_wire(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def exit_frame(self) -> dict:
        """The websocket's last message: the result, whose output was already streamed."""
        frame = self.model_dump(mode="json", by_alias=True, exclude={"stdout", "stderr"})
        if self.compile is not None:
            frame["compile"] = self.compile.to_frame()
        return {"type": "exit", **frame}


def signal_name(signum: int | None) -> str | None:
    if not signum:
        return None
    try:
        return signals.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"
