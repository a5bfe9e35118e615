"""What a run tells its door as it goes: started, output (tagged with its stage), exited."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .results import CaseResult, RunResult, StageResult


@dataclass(frozen=True)
class Started:
    id: uuid.UUID


@dataclass(frozen=True)
class Output:
    stream: str  # "stdout" or "stderr"
    data: str
    stage: str = "run"


@dataclass(frozen=True)
class StageFinished:
    """A stage before the last (the compile) is done; the run stage's end is Exited."""

    stage: str
    result: StageResult


@dataclass(frozen=True)
class CaseFinished:
    """A test case's verdict, as soon as it is known (cases may finish in any order)."""

    result: CaseResult


@dataclass(frozen=True)
class Exited:
    result: RunResult


Event = Started | Output | StageFinished | CaseFinished | Exited
