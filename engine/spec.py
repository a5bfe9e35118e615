"""RunSpec: one validated run, as a plain JSON-serialisable value (a remote worker gets exactly this)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sandbox import Limits


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

    def sources(self, main: str) -> dict[str, bytes]:
        """The files placed in the sandbox's working directory, the main one first."""
        return {main: self.code.encode(), **{k: v.encode() for k, v in self.files.items()}}

    def to_json(self) -> dict:
        return asdict(self)

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
        )
