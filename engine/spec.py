"""RunSpec: one validated run, as a plain JSON-serialisable value (a remote worker gets exactly this)."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field

from sandbox import Limits
from sandbox.built import Artifact

from .grading import DEFAULT_TOLERANCE


@dataclass(frozen=True)
class TestCase:
    """One input a program is run on, and what it should print (None: judged by its exit alone)."""

    __test__ = False  # (not a pytest class)

    name: str
    stdin: str = ""
    args: tuple[str, ...] | None = None  # None: the run's own args
    expected_output: str | None = None
    limits: Limits | None = None  # None: the run's own limits


@dataclass(frozen=True)
class Tests:
    """A run's test cases and how their output is judged (engine.grading)."""

    __test__ = False

    cases: tuple[TestCase, ...]
    compare: str = "lines"
    tolerance: float = DEFAULT_TOLERANCE
    stop_on_failure: bool = False

    @classmethod
    def from_json(cls, data: dict) -> Tests:
        cases = tuple(
            TestCase(
                name=c["name"],
                stdin=c.get("stdin", ""),
                args=None if c.get("args") is None else tuple(c["args"]),
                expected_output=c.get("expected_output"),
                limits=Limits(**c["limits"]) if c.get("limits") else None,
            )
            for c in data["cases"]
        )
        return cls(cases, data.get("compare", "lines"), data.get("tolerance", DEFAULT_TOLERANCE),
                   bool(data.get("stop_on_failure", False)))  # fmt: skip


@dataclass(frozen=True)
class RunSpec:
    """What to run and within which limits: the language by its canonical name, and a limit per stage."""

    language: str
    code: str
    stdin: str = ""
    args: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)  # the run stage's
    compile_limits: Limits | None = None  # the compile stage's, for a language that has one
    compiler_options: tuple[str, ...] = ()  # checked against the language's allow-list
    run_options: tuple[str, ...] = ()  # the runtime's flags, checked likewise
    # A compiled language's test cases compile once: a build-only run compiles and hands back
    # what it built (the run stage never starts); each case's run then gets that, read-only,
    # and has no compile stage of its own.
    build_only: bool = False
    built: dict[str, Artifact] | None = None
    tests: Tests | None = None  # graded: one run per case, after one compile (engine.suite)

    def sources(self, main: str) -> dict[str, bytes]:
        """The files placed in the sandbox's working directory, the main one first."""
        return {main: self.code.encode(), **{k: v.encode() for k, v in self.files.items()}}

    @property
    def compiles(self) -> bool:
        """It has a compile stage: a compiled language's, unless what it builds is given."""
        return self.compile_limits is not None and self.built is None

    @property
    def runs(self) -> int:
        """How many runs it counts as to fair use: one, or with test cases one a case and one for
        the compile."""
        return 1 if self.tests is None else len(self.tests.cases) + self.compiles

    def to_json(self) -> dict:
        data = asdict(self)
        if self.built is not None:
            data["built"] = {
                name: {"data": base64.b64encode(a.data).decode(), "executable": a.executable}
                for name, a in self.built.items()
            }
        return data

    @classmethod
    def from_json(cls, data: dict) -> RunSpec:
        compile_limits = data.get("compile_limits")
        return cls(
            language=data["language"],
            code=data["code"],
            stdin=data.get("stdin", ""),
            args=tuple(data.get("args", ())),
            files=dict(data.get("files", {})),
            limits=Limits(**data.get("limits", {})),
            compile_limits=Limits(**compile_limits) if compile_limits else None,
            compiler_options=tuple(data.get("compiler_options", ())),
            run_options=tuple(data.get("run_options", ())),
            build_only=bool(data.get("build_only", False)),
            tests=Tests.from_json(data["tests"]) if data.get("tests") else None,
            built=None
            if data.get("built") is None
            else {
                name: Artifact(base64.b64decode(a["data"]), bool(a["executable"]))
                for name, a in data["built"].items()
            },
        )
