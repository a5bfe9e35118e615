"""The battery's case: a hostile program and what containing it looks like (test_hostile.py)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    language: str
    code: str
    status: str | tuple[str, ...] = "ok"
    stdout: str | None = None  # exact, when given
    contains: tuple[str, ...] = ()  # each must appear in stdout, stderr or the compiler's output
    lacks: tuple[str, ...] = ()  # none may appear in any of them
    signal: str | tuple[str, ...] | None = None
    timeout: int = 2000
    memory: int | None = None
    stdin: str = ""
    compile_status: str | tuple[str, ...] | None = None  # a compiled language's compile verdict
    compile_timeout: int | None = None
