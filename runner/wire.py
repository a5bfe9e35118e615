"""The wire format of the REST and websocket doors: every request and response shape, defined once.

The views, the stored executions and the OpenAPI document come from these definitions
and the engine's RunResult, so a field name is spelled in exactly one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from engine.results import RunResult

MAX_ARGS = 64
MAX_OPTIONS = 16


def _whole(value):
    """JSON Schema's integer is any number without a fraction: 1000.0 and 1e3 are 1000."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer, strictly (no "10", no true), that a client may also write as 10.0 or 1e1.
Whole = Annotated[int, BeforeValidator(_whole)]


class TestCaseRequest(BaseModel):
    """One test case: an input, and what the program should print."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, max_length=200, description="Shown with its result; default: test N.")
    stdin: str = Field("", description="The case's standard input.")
    args: list[str] | None = Field(
        None, max_length=MAX_ARGS, description="Its command-line arguments; default: the run's."
    )
    expected_output: str | None = Field(
        None,
        alias="expectedOutput",
        description="What it should print on stdout, compared as `compare` says; without it, the case"
        " passes when the program exits 0.",
    )
    timeout: Whole | None = Field(None, description="Its wall-clock limit in ms; default: the run's.")
    memory: Whole | None = Field(None, description="Its memory limit in MiB; default: the run's.")


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
    timeout: Whole | None = Field(
        None, description="Wall-clock limit in milliseconds, up to the server's ceiling."
    )
    memory: Whole | None = Field(None, description="Memory limit in MiB, up to the server's ceiling.")
    compile_timeout: Whole | None = Field(
        None,
        alias="compileTimeout",
        description="A compiled language's compile stage: its wall-clock limit in ms (its own default"
        " and ceiling, apart from the run's).",
    )
    compile_memory: Whole | None = Field(
        None, alias="compileMemory", description="The compile stage's memory limit in MiB."
    )
    compiler_options: list[str] = Field(
        default_factory=list,
        alias="compilerOptions",
        max_length=MAX_OPTIONS,
        description="Extra compiler flags, each checked against the language's allow-list (docs/languages.md).",
    )
    run_args: list[str] = Field(
        default_factory=list,
        alias="runArgs",
        max_length=MAX_OPTIONS,
        description="Extra flags for the language's runtime (before the program and its args), each"
        " checked against the language's allow-list.",
    )
    tests: list[TestCaseRequest] | None = Field(
        None,
        description="Test cases, up to RUNNER_MAX_TESTS (32): a compiled program is built once, then each"
        " case runs in a fresh sandbox of its own and is judged (docs/grading.md). The answer then"
        " carries `tests` and `summary`.",
    )
    compare: Literal["lines", "exact", "tokens", "numbers"] | None = Field(
        None,
        description="How a case's output is compared with its expectedOutput: lines (the default:"
        " trailing whitespace and trailing empty lines ignored), exact, tokens (any whitespace layout)"
        " or numbers (tokens, numbers within `tolerance`).",
    )
    tolerance: float | None = Field(
        None,
        description="For compare numbers: the absolute or relative difference allowed (default 1e-6).",
    )
    stop_on_failure: bool | None = Field(
        None,
        alias="stopOnFailure",
        description="Run the cases one at a time, and skip those after the first that does not pass.",
    )


class BatchRequest(BaseModel):
    """The body of POST /api/batch."""

    model_config = ConfigDict(extra="forbid", strict=True)

    runs: list[Any] = Field(
        min_length=1,
        description="The runs, each the body of POST /api/execute; at most RUNNER_MAX_BATCH (20). Each"
        " is checked on its own: one that is wrong gets its error in its place, and the others run.",
        # Any JSON for each, as the document can't say "valid, or answered in its place".
        json_schema_extra={
            "items": {"description": "A run: the body of POST /api/execute (RunRequest)."},
            "examples": [
                [
                    {"language": "python", "code": "print(1)"},
                    {"language": "c", "code": "int main(void) { return 0; }"},
                ]
            ],
        },
    )


class BatchError(BaseModel):
    """A run of a batch that did not run, and why: what POST /api/execute would have answered."""

    model_config = ConfigDict(populate_by_name=True)

    error: str
    http_status: int = Field(alias="httpStatus", description="The status POST /api/execute would have had.")
    retry_after: int | None = Field(
        None, alias="retryAfter", description="Seconds to wait, with 429 and a busy 503."
    )
    field: str | None = Field(None, description="The run's field at fault, when there is one.")
    languages: list[str] | None = Field(None, description="The languages there are, for an unknown one.")


class BatchResult(BaseModel):
    """The answer of POST /api/batch: a result or an error for each run, in the order given."""

    results: list[RunResult | BatchError]


class SocketRun(RunRequest):
    """The first message on ws/execute: a run, with the same fields as POST /api/execute."""

    type: Literal["run"]
    interactive: bool = Field(False, description="Keep stdin open for stdin and eof messages.")


class Grading(BaseModel):
    """A stored graded run's test cases, as they were asked."""

    model_config = ConfigDict(populate_by_name=True)

    cases: list[TestCaseRequest]
    compare: str
    tolerance: float
    stop_on_failure: bool = Field(alias="stopOnFailure")


class ExecutionRecord(RunResult):
    """A stored run: the result with what was run."""

    code: str
    stdin: str
    args: list[str]
    files: dict[str, str]
    grading: Grading | None = Field(None, description="A graded run's test cases, as asked.")
    stored_truncated: list[str] = Field(
        default_factory=list,
        description="The fields this record keeps only the start of: a record holds at most"
        " RUNNER_STORED_LIMIT bytes of each of stdin, stdout and stderr (compile.stdout and"
        " compile.stderr too).",
    )
    created_at: datetime


class Library(BaseModel):
    name: str
    version: str


class Runtime(BaseModel):
    language: str
    version: str = Field(description="Read from the real interpreter when the server starts.")
    aliases: list[str]
    runtime: str
    available: bool = Field(
        description="False when the language's toolchain is missing on this host: its runs get 503."
    )
    reason: str | None = Field(None, description="Why it is unavailable, when it is.")
    compiled: bool = Field(description="It has a compile stage: its results carry `compile`.")
    libraries: list[Library] = Field(
        description="Libraries it offers beyond its standard one (Python's data stack), as installed."
    )


class ErrorResponse(BaseModel):
    error: str
    retry_after: int | None = Field(
        None, alias="retryAfter", description="Seconds to wait, with 429 and a busy 503."
    )
    field: str | None = Field(None, description="The request field at fault, when there is one.")
    languages: list[str] | None = Field(None, description="The languages there are, for an unknown one.")


class SnippetRequest(BaseModel):
    """The body of POST /api/snippets."""

    model_config = ConfigDict(extra="forbid", strict=True)

    language: str = Field(description="A language name or alias; stored under its canonical name.")
    code: str
    stdin: str = ""
    title: str = Field("", max_length=200)
    tests: list[TestCaseRequest] = Field(
        default_factory=list,
        description="Test cases kept with it (up to RUNNER_MAX_TESTS): the editor's Tests panel shows them,"
        " and the embed shows them read-only.",
    )


class SnippetLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(description="Short, and derived from the content: the same content has the same id.")
    url: str = Field(description="The share link, which opens the snippet in the editor.")
    embed_url: str = Field(alias="embedUrl", description="A page made for an iframe.")


class SnippetRecord(SnippetLinks):
    language: str
    code: str
    stdin: str
    title: str
    tests: list[TestCaseRequest]
    created_at: datetime = Field(alias="createdAt")


class Usage(BaseModel):
    """GET /api/usage: what an API key has used."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    runs: int
    credits_remaining: int | None = Field(alias="creditsRemaining", description="null: unlimited.")
    rate_limit: str | None = Field(alias="rateLimit", description="Like 600/min; null: none.")
