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

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "killed", "compile_error", "failed"]
Verdict = Literal[
    "passed", "wrong_answer", "timeout", "memory", "output_limit", "error", "compile_error", "skipped"
]
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


class Mismatch(BaseModel):
    """Where a wrong answer's output first differs from the expected output."""

    line: int = Field(
        description="The 1-based line of the output (of the expected output, past the output's end)."
    )
    expected: str | None = Field(
        description="That line (or token) as expected; null past the expected output's end."
    )
    got: str | None = Field(description="That line (or token) as printed; null past the output's end.")
    token: int | None = Field(None, description="For the tokens and numbers compares: the 1-based token.")


class CaseResult(BaseModel):
    """One test case: its run's fields, and its verdict."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    index: int = Field(description="Its place among the cases given, from 0.")
    name: str
    status: Verdict = Field(
        description="passed; wrong_answer (it ran well, and printed something else); timeout, memory or"
        " output_limit (a limit ended it); error (a non-zero exit, a signal, or it could not run: see"
        " `error`); compile_error (the compile failed, and nothing ran); skipped (not run: stopOnFailure,"
        " or the run was killed)."
    )
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: str | None = None
    duration: int = Field(0, description="Its program's own wall time in milliseconds.")
    truncated: bool = False
    cpu_time: int | None = None
    peak_memory: int | None = None
    difference: Mismatch | None = Field(None, description="For a wrong answer: the first difference.")
    error: str | None = Field(None, description="Why it did not run, when a case could not start.")

    def to_frame(self) -> dict:
        return {"type": "test", **self.model_dump(mode="json", by_alias=True)}


class Summary(BaseModel):
    passed: int
    failed: int = Field(description="Cases that ran, or could not, and did not pass.")
    skipped: int
    total: int

    @classmethod
    def of(cls, verdicts: list[str]) -> Summary:
        passed, skipped = verdicts.count("passed"), verdicts.count("skipped")
        return cls(
            passed=passed, failed=len(verdicts) - passed - skipped, skipped=skipped, total=len(verdicts)
        )


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
        "compile_error (the compile stage failed, and nothing ran). With test cases: ok when every case "
        "passed, failed when one did not, compile_error or killed."
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
    tests: list[CaseResult] | None = Field(
        None,
        description="With test cases: each case's result, in the order given. The run's own fields"
        " then sum the cases up: stdout and stderr are empty, duration is the cases' wall time from the"
        " first start to the last end, cpuTime their sum and peakMemory their most.",
    )
    summary: Summary | None = None

    @classmethod
    def without_run(cls, id: UUID, language: str, status: str, **fields) -> RunResult:
        """A result whose program never ran (its compile failed, or it had test cases to run
        instead): the run's own fields are empty."""
        empty = dict(
            exit_code=None, stdout="", stderr="", duration=0, timed_out=False, truncated=False, signal=None
        )
        return cls(id=id, language=language, status=status, **{**empty, **fields})

    def to_wire(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def exit_frame(self) -> dict:
        """The websocket's last message: the result, whose output (and cases) were already sent."""
        frame = self.model_dump(mode="json", by_alias=True, exclude={"stdout", "stderr", "tests"})
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
