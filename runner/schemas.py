"""The wire format: every request and response shape, defined once.

The REST views, the stored executions, and the OpenAPI document all come from
these definitions, so a field name is spelled in exactly one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from . import languages
from .conf import RunnerConfig
from .sandbox import Limits

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "killed"]
MIN_MEMORY_MIB = 16
MAX_ARGS = 64
FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
MAX_FILE_DEPTH = 8


class RunRequest(BaseModel):
    """The body of POST /api/execute."""

    model_config = ConfigDict(extra="forbid", strict=True)

    language: str = Field(description="A language name or alias, in any case.", examples=["python"])
    code: str = Field(description="The program's source.", examples=["print(sum(range(1, 101)))"])
    stdin: str = Field("", description="The program's standard input; it reads EOF after it.")
    args: list[str] = Field(default_factory=list, description="Command-line arguments.", max_length=MAX_ARGS)
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Extra files beside the main one, by relative path; the program can import them.",
    )
    timeout: int | None = Field(
        None, description="Wall-clock limit in milliseconds, up to the server's ceiling."
    )
    memory: int | None = Field(None, description="Memory limit in MiB, up to the server's ceiling.")


class SocketRun(RunRequest):
    """The first message on ws/execute: a run, with the same fields as POST /api/execute."""

    type: Literal["run"]
    interactive: bool = Field(False, description="Keep stdin open for stdin and eof messages.")


class RunResult(BaseModel):
    """What every run answers, from every door."""

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
        "memory (killed for exceeding memory), output_limit, or killed (stopped by its client)."
    )

    def to_wire(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def exit_frame(self) -> dict:
        """The websocket's last message: the result, whose output was already streamed."""
        return {"type": "exit", **self.model_dump(mode="json", by_alias=True, exclude={"stdout", "stderr"})}


class ExecutionRecord(RunResult):
    """A stored run: the result with what was run."""

    code: str
    stdin: str
    args: list[str]
    files: dict[str, str]
    created_at: datetime


class Runtime(BaseModel):
    language: str
    version: str = Field(description="Read from the real interpreter when the server starts.")
    aliases: list[str]
    runtime: str


class ErrorResponse(BaseModel):
    error: str
    retry_after: int | None = Field(None, alias="retryAfter", description="Seconds to wait, with 429.")
    field: str | None = Field(None, description="The request field at fault, when there is one.")
    languages: list[str] | None = Field(None, description="The languages there are, for an unknown one.")


class SnippetRequest(BaseModel):
    """The body of POST /api/snippets."""

    model_config = ConfigDict(extra="forbid", strict=True)

    language: str = Field(description="A language name or alias; stored under its canonical name.")
    code: str
    stdin: str = ""
    title: str = Field("", max_length=200)


class SnippetLinks(BaseModel):
    id: str = Field(description="Short, and derived from the content: the same content has the same id.")
    url: str = Field(description="The share link, which opens the snippet in the editor.")
    embed_url: str = Field(alias="embedUrl", description="A page made for an iframe.")


class SnippetRecord(SnippetLinks):
    language: str
    code: str
    stdin: str
    title: str
    created_at: datetime = Field(alias="createdAt")


class RequestError(Exception):
    """A bad request, with the HTTP status and the JSON body it answers with."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def to_wire(self) -> dict:
        return {"error": self.message, **self.extra}


@dataclass(frozen=True)
class RunSpec:
    """One validated run: what to run and within which limits."""

    language: languages.Language
    code: str
    stdin: str = ""
    args: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def sources(self) -> dict[str, bytes]:
        """The files placed in the sandbox's working directory, the main one first."""
        return {self.language.filename: self.code.encode(), **{k: v.encode() for k, v in self.files.items()}}


_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "list_type": "must be a list of strings",
    "dict_type": "must be an object mapping file names to their contents",
}


def _describe(error: dict) -> RequestError:
    loc = [str(part) for part in error["loc"]]
    name = loc[0] if loc else None
    kind = error["type"]
    if kind == "json_invalid":
        return RequestError(400, f"malformed JSON: {error['ctx']['error']}")
    if kind == "model_type" or not loc:
        return RequestError(400, "the body must be a JSON object")
    if kind == "missing":
        return RequestError(400, f"field '{name}' is required", field=name)
    if kind == "extra_forbidden":
        return RequestError(400, f"unknown field '{name}'", field=name)
    where = f"'{name}'" if len(loc) == 1 else f"'{name}' item {loc[1]!r}"
    words = _TYPE_WORDS.get(kind, error["msg"])
    if kind in ("too_long", "string_too_long"):
        words = f"is too long (at most {error['ctx']['max_length']})"
    if name == "files" and kind == "string_type":
        words = "must be a string (the file's contents)"
    return RequestError(400, f"field {where} {words}", field=name)


def parse_body(body: bytes | str, model: type[BaseModel] = RunRequest):
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise _describe(e.errors()[0]) from None


def check_language(name: str) -> languages.Language:
    lang = languages.get(name)
    if lang is None:
        raise RequestError(404, f"unknown language '{name}'", languages=languages.names())
    return lang


def check_code_size(size: int, config: RunnerConfig) -> None:
    if size > config.max_code_bytes:
        raise RequestError(
            413, f"code is {size} bytes; the ceiling is {config.max_code_bytes} bytes", field="code"
        )


class Usage(BaseModel):
    """GET /api/usage: what an API key has used."""

    name: str
    runs: int
    credits_remaining: int | None = Field(alias="creditsRemaining", description="null: unlimited.")
    rate_limit: str | None = Field(alias="rateLimit", description="Like 600/min; null: none.")


def run_spec(req: RunRequest, config: RunnerConfig, key=None) -> RunSpec:
    """Check a request against the server's rules and ceilings: the same messages from every door."""
    lang = check_language(req.language)
    check_code_size(len(req.code.encode()) + sum(len(v.encode()) for v in req.files.values()), config)
    for i, arg in enumerate(req.args):
        if "\0" in arg:
            raise RequestError(400, f"field 'args' item {i} contains a NUL character", field="args")
    _check_files(req.files, lang, config)
    limits = config.defaults
    # An API key may carry higher ceilings of its own.
    max_timeout = (key and key.max_timeout_ms) or config.max_timeout_ms
    max_memory = (key and key.max_memory_mib) or config.max_memory_mib
    if req.timeout is not None:
        _check_range("timeout", req.timeout, 1, max_timeout, "ms")
        limits = replace(limits, timeout_ms=req.timeout)
    if req.memory is not None:
        _check_range("memory", req.memory, MIN_MEMORY_MIB, max_memory, "MiB")
        limits = replace(limits, memory_mib=req.memory)
    return RunSpec(lang, req.code, req.stdin, tuple(req.args), dict(req.files), limits)


def _check_range(name: str, value: int, low: int, ceiling: int, unit: str) -> None:
    if value < low:
        raise RequestError(400, f"field '{name}' must be at least {low} {unit}", field=name)
    if value > ceiling:
        raise RequestError(
            400,
            f"field '{name}' is {value} {unit}, above the server's ceiling of {ceiling} {unit}",
            field=name,
        )


def _check_files(files: dict[str, str], lang: languages.Language, config: RunnerConfig) -> None:
    if len(files) > config.max_files:
        raise RequestError(
            400, f"field 'files' has {len(files)} files; at most {config.max_files}", field="files"
        )
    dirs = set()
    for name in files:
        parts = name.split("/")
        if len(parts) > MAX_FILE_DEPTH or not all(FILE_PART.fullmatch(p) for p in parts):
            raise RequestError(
                400,
                f"field 'files' has a bad file name {name!r}: use a relative path of letters, digits, "
                "'.', '_' and '-', not starting with '.'",
                field="files",
            )
        if name == lang.filename:
            raise RequestError(400, f"field 'files' may not replace the main file {name!r}", field="files")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = dirs & files.keys()
    if clash:
        raise RequestError(
            400, f"field 'files' uses {sorted(clash)[0]!r} as both a file and a folder", field="files"
        )
