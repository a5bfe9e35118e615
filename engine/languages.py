"""The language registry: one TOML file per language under languages/, validated when loaded.

Each file says how the language runs inside the sandbox (the run stage, an optional
compile stage, the pre-warmed loader), how its real version is read, which Debian
packages it needs, the editor's mode, an example, and conformance samples that the
test suite runs in every language, cold and pooled. Everything reads this registry:
the API and GET /api/runtimes, the editor, the Makefile, the OpenAPI document, the
tests, the hostile battery and the benchmark.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import subprocess
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox import Limits
from sandbox.process import run_tool

log = logging.getLogger(__name__)

DIRECTORY = Path(__file__).resolve().parent.parent / "languages"


class _Strict(BaseModel):
    # Not pydantic's strict mode: TOML has arrays where these have tuples. Strings stay
    # strings in lax mode too (a number is refused), and no unknown key passes.
    model_config = ConfigDict(extra="forbid", frozen=True)


Strings = tuple[str, ...]


OPTIONS = "{options}"  # in a stage's argv: where a request's allowed flags go (none: nowhere)


class Stage(_Strict):
    argv: Strings = Field(min_length=1)  # inside the sandbox; the run stage's user args follow
    # The flags a request may add (compilerOptions, runArgs): regular expressions, each
    # matched against one flag whole. Empty: the request may add none.
    options: Strings = ()

    @field_validator("options")
    @classmethod
    def _patterns(cls, value: Strings) -> Strings:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{pattern!r} is not a regular expression: {e}") from None
        return value

    def expand(
        self, options: tuple[str, ...] | list[str], memory_mib: int, files: tuple[str, ...] = ()
    ) -> list[str]:
        """argv with the request's flags where {options} stands (or, without it, nowhere), the
        run's files matching {sources:*.c,*.h} (sorted; `*` crosses folders), and the stage's
        memory limit in MiB for {memory} (a JVM sizes its heap by it)."""
        out: list[str] = []
        for part in self.argv:
            if part == OPTIONS:
                out += options
            elif part.startswith("{sources:") and part.endswith("}"):
                patterns = part[len("{sources:") : -1].split(",")
                out += sorted(f for f in files if any(fnmatch.fnmatchcase(f, p) for p in patterns))
            else:
                out.append(part.replace("{memory}", str(memory_mib)))
        return out


class CompileStage(Stage):
    """Its own limits, under their own ceilings: never cut short by the run's timeout."""

    timeout: int = Field(10_000, ge=1)  # ms
    memory: int = Field(512, ge=16)  # MiB
    processes: int = Field(128, ge=1)
    # A CPU quota of its own (compilers with threads of their own: javac, go build); None: the run's.
    cpus: float | None = Field(None, gt=0)
    # Pre-warmed: a sandbox waits with /opt/pool-exec (a tool of the language's) as both stages;
    # the hand-over brings the files and the compiler's command line, then the program's.
    pool: bool = False
    # What it builds, relative to the working directory (a directory is taken whole): test cases
    # compile once, and each runs with these copied into a fresh sandbox of its own.
    built: Strings = Field(min_length=1)

    @field_validator("built")
    @classmethod
    def _relative(cls, value: Strings) -> Strings:
        for path in value:
            if path.startswith("/") or ".." in path.split("/") or not path.startswith("."):
                raise ValueError(f"{path!r}: a built path is relative and starts with a dot")
        return value

    def limits(self, run: Limits) -> Limits:
        return Limits(
            timeout_ms=self.timeout,
            memory_mib=self.memory,
            processes=self.processes,
            output_bytes=run.output_bytes,
            tmpfs_mib=run.tmpfs_mib,
            file_size_mib=run.file_size_mib,
            open_files=run.open_files,
            cpus=self.cpus or run.cpus,
        )


class RunStage(Stage):
    pool: Strings | None = None  # a pre-warmed sandbox's loader, which then becomes the run
    # Or: its runs take another language's waiting sandboxes (TypeScript, built before its run,
    # runs in JavaScript's: the loader tells the two apart by the built files it is handed).
    pool_of: str | None = None
    # Its waiting sandboxes are zygotes (sandbox.zygote: runs/pool-loader.py --zygote), which
    # fork each run, when the engine's `zygote` setting is on. Python's only.
    zygote: bool = False


class BuildService(_Strict):
    """A build step shared by every run of the language (TypeScript's esbuild): one long-lived
    sandbox of its own (sandbox.service, engine.transpile) that turns a run's files into what the
    run's sandbox then runs, so no run's sandbox starts the builder."""

    argv: Strings = Field(min_length=1)  # the service's program, inside its sandbox
    tools: tuple[tuple[str, str], ...] = ()  # its tools, as the language's (the runs don't get them)
    timeout: int = Field(10_000, ge=1)  # ms one build may take; past it, the run gets an error
    memory: int = Field(512, ge=64)  # MiB of the service's sandbox


class VersionProbe(_Strict):
    argv: Strings = Field(min_length=1)  # on the host; {tools} is the tools directory
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            if re.compile(value).groups < 1:
                raise ValueError("needs one group, the version")
        except re.error as e:
            raise ValueError(f"is not a regular expression: {e}") from None
        return value


class Sample(_Strict):
    """A conformance case: run cold and pooled by the test suite, in every language."""

    name: str
    code: str
    stdin: str = ""
    args: Strings = ()
    files: dict[str, str] = Field(default_factory=dict)
    stdout: str | None = None  # exact, when given
    stderr: str | None = None  # contained in stderr, when given
    exit_code: int = 0  # (none is expected with a signal, or a compile error)
    signal: str | None = None  # the signal that ended it, by name
    status: str = "ok"
    compile_stderr: str | None = None  # contained in the compile stage's stderr, when given
    libraries: bool = False  # it needs the language's libraries (not run with RUNNER_LIBRARIES=off)


class Library(_Strict):
    name: str  # as its version probe names it (Python: the distribution's name)
    debian: str  # the Debian package the Makefile installs


class Libraries(_Strict):
    """Libraries the language offers beyond its standard one (Python's data stack), from Debian.

    RUNNER_LIBRARIES=off leaves them out: the Makefile does not install them, and where they
    are installed anyway, the `hide` directories are empty in the sandbox.
    """

    packages: tuple[Library, ...] = Field(min_length=1)
    # On the host, with each library's name appended: prints "name version" per line for each found.
    probe: Strings = Field(min_length=1)
    hide: Strings = ()


class Bench(_Strict):
    code: str  # the program make bench times
    bare: Strings | None = None  # the same program with no sandbox, its baseline


class Language(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9+#-]*$")
    order: int = 100  # where it is listed (the API, the editor), then by name
    title: str  # as people write it
    aliases: Strings = ()
    editor: str  # the editor's mode (frontend/src/codemirror.js)
    filename: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    runtime: str  # GET /api/runtimes' "runtime"; {version}, and {<language>} for another's version
    packages: Strings = ()  # Debian packages the Makefile installs
    env: dict[str, str] = Field(default_factory=dict)
    tools: tuple[tuple[str, str], ...] = ()  # (file in the tools directory, path inside)
    # The host's directories the toolchain needs beyond the sandbox's /usr/bin and /usr/lib
    # (headers, a standard library's sources), bound read-only at the same path.
    host_paths: Strings = ()
    # Directories of the tools directory whose files each run starts with in its home, under
    # the path given (matplotlib's font list): (directory, path in the home).
    home: tuple[tuple[str, str], ...] = ()
    compile: CompileStage | None = None
    build: BuildService | None = None
    run: RunStage
    version: VersionProbe
    example: str
    samples: tuple[Sample, ...] = Field(min_length=1)
    bench: Bench | None = None
    libraries: Libraries | None = None

    @property
    def pooled(self) -> bool:
        """Whether its runs may take a pre-warmed sandbox."""
        return bool(self.run.pool or self.run.pool_of or (self.compile and self.compile.pool))

    @property
    def pool_name(self) -> str:
        """The pool its runs take a waiting sandbox from."""
        return self.run.pool_of or self.name

    def argv(self, args: list[str], options: tuple[str, ...] = (), memory_mib: int = 0) -> list[str]:
        return [*self.run.expand(options, memory_mib), *args]

    def home_files(self, tools_dir: str) -> dict[str, bytes]:
        return _home_files(self.name, tools_dir)

    def binds(self, tools_dir: str, build: bool = False) -> tuple[tuple[str, str], ...]:
        """Its tools (its build service's, with build) and host paths, as (host path, path inside)."""
        given = self.build.tools if build else self.tools
        tools = tuple((os.path.join(tools_dir, name), inside) for name, inside in given)
        return tools + tuple((path, path) for path in self.host_paths)


@functools.cache
def _home_files(name: str, tools_dir: str) -> dict[str, bytes]:
    """The files a run of this language starts with in its home, read once per process."""
    files = {}
    for directory, inside in get(name).home:
        source = os.path.join(tools_dir, directory)
        for entry in sorted(os.listdir(source)) if os.path.isdir(source) else ():
            if entry.startswith("."):
                continue  # (the Makefile's mark)
            with open(os.path.join(source, entry), "rb") as f:
                files[f"{inside}/{entry}"] = f.read()
    return files


class RegistryError(Exception):
    """A language file is malformed; the message names the file and the field."""


def load(directory: Path = DIRECTORY) -> tuple[Language, ...]:
    """Every language file in the directory, in name order, each validated."""
    found = []
    for path in sorted(directory.glob("*.toml")):
        where = f"{path.parent.name}/{path.name}"
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"{where}: not valid TOML: {e}") from None
        try:
            lang = Language.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(the file)"
            raise RegistryError(f"{where}: field '{field}': {first['msg']}") from None
        if path.stem != lang.name:
            raise RegistryError(f"{where}: field 'name': {lang.name!r} must be the file's name")
        found.append(lang)
    by_name = {lang.name: lang for lang in found}
    for lang in found:
        if lang.run.pool_of and not (lang.run.pool_of in by_name and by_name[lang.run.pool_of].run.pool):
            raise RegistryError(
                f"{lang.name}: field 'run.pool_of': {lang.run.pool_of!r} has no waiting sandboxes"
            )
    names = [n for lang in found for n in (lang.name, *lang.aliases)]
    for n in names:
        if names.count(n) > 1:
            raise RegistryError(f"{directory.name}/: the name or alias {n!r} is given twice")
    return tuple(sorted(found, key=lambda lang: (lang.order, lang.name)))


LANGUAGES: tuple[Language, ...] = load()
_BY_NAME = {n: lang for lang in LANGUAGES for n in (lang.name, *lang.aliases)}


def get(name: str) -> Language | None:
    """Look a language up by name or alias, ignoring case."""
    return _BY_NAME.get(name.strip().lower()) if isinstance(name, str) else None


def names() -> list[str]:
    return [lang.name for lang in LANGUAGES]


@functools.cache
def probe(tools_dir: str) -> dict[str, tuple[str | None, str | None]]:
    """Ask each real toolchain for its version, once per process: name -> (version, why not).

    A language whose toolchain is missing or answers no version is unavailable: the reason
    says which program failed and how, and its runs are refused, never half-served.
    """
    found: dict[str, tuple[str | None, str | None]] = {}
    for lang in LANGUAGES:
        argv = [part.replace("{tools}", tools_dir) for part in lang.version.argv]
        try:
            out = run_tool(argv)
        except (OSError, subprocess.SubprocessError) as e:
            log.error("cannot read the %s version with %s: %s", lang.name, argv[0], e)
            found[lang.name] = (
                None,
                f"its toolchain is missing: {argv[0]}: {getattr(e, 'strerror', None) or e}",
            )
            continue
        text = (out.stdout or out.stderr).decode(errors="replace")
        m = re.search(lang.version.pattern, text)
        if m and out.returncode == 0:
            found[lang.name] = (m.group(1), None)
        else:
            found[lang.name] = (None, f"its toolchain gave no version: {argv[0]} exited {out.returncode}")
    return found


@functools.cache
def library_versions(name: str) -> tuple[tuple[str, str], ...]:
    """The language's libraries found on the host, with their versions, in the file's order."""
    lang = get(name)
    if lang.libraries is None:
        return ()
    wanted = [lib.name for lib in lang.libraries.packages]
    try:
        out = run_tool([*lang.libraries.probe, *wanted])
    except (OSError, subprocess.SubprocessError) as e:
        log.error("cannot list the %s libraries: %s", name, e)
        return ()
    found = dict(
        line.split(" ", 1) for line in out.stdout.decode(errors="replace").splitlines() if " " in line
    )
    return tuple((lib, found[lib].strip()) for lib in wanted if lib in found)


def versions(tools_dir: str) -> dict[str, str]:
    """Each language's real version, or "unavailable"."""
    return {name: version or "unavailable" for name, (version, _) in probe(tools_dir).items()}


def unavailable(name: str, tools_dir: str) -> str | None:
    """Why this language can't run here (its toolchain is missing), or None when it can."""
    return probe(tools_dir)[name][1]


def served(names: tuple[str, ...] | None) -> tuple[Language, ...]:
    """The registry's languages this server serves (None: all), in the registry's order."""
    return LANGUAGES if names is None else tuple(lang for lang in LANGUAGES if lang.name in names)


def canonical(given: list[str]) -> tuple[str, ...]:
    """Names or aliases as the registry's names; RegistryError for one it doesn't have."""
    out = []
    for name in given:
        lang = get(name)
        if lang is None:
            raise RegistryError(f"unknown language {name!r}: the registry has {', '.join(names())}")
        out.append(lang.name)
    return tuple(dict.fromkeys(out))


def runtimes(tools_dir: str, names: tuple[str, ...] | None = None, libraries: bool = True) -> list[dict]:
    """What GET /api/runtimes lists: canonical name, real version, aliases, runtime, whether it
    runs, its stages, and the libraries it offers (none with RUNNER_LIBRARIES=off)."""
    found = versions(tools_dir)
    listed = []
    for lang in served(names):
        why = unavailable(lang.name, tools_dir)
        listed.append(
            {
                "language": lang.name,
                "version": found[lang.name],
                "aliases": list(lang.aliases),
                "runtime": lang.runtime.format(version=found[lang.name], **found),
                "available": why is None,
                **({"reason": why} if why else {}),
                "compiled": lang.compile is not None,
                "libraries": [
                    {"name": lib, "version": version}
                    for lib, version in (library_versions(lang.name) if libraries else ())
                ],
            }
        )
    return listed


def table() -> str:
    """The languages as docs/languages.md lists them, between its marks (a test checks that it does)."""
    rows = [
        "| Language | Names | Main file | Stages | Pre-warmed | Debian packages |",
        "|---|---|---|---|---|---|",
    ]
    for lang in LANGUAGES:
        names = ", ".join(f"`{n}`" for n in (lang.name, *lang.aliases))
        packages = ", ".join(lang.packages) or "–"
        stages = "compile, run" if lang.compile else "run"
        rows.append(
            f"| {lang.title} | {names} | `{lang.filename}` | {stages} | {'yes' if lang.pooled else 'no'} | {packages} |"
        )
    for lang in LANGUAGES:
        rows += ["", f"### {lang.title}", "", f"- Runs as: `{' '.join(lang.run.argv)}`"]
        if lang.build:
            b = lang.build
            rows.append(
                f"- Built by one service all its runs share: `{' '.join(b.argv)}` ({b.timeout} ms a build, {b.memory} MiB)"
            )
        if lang.compile:
            c = lang.compile
            rows.append(f"- Compiles with: `{' '.join(c.argv)}`")
            cores = f", {c.cpus:g} cores" if c.cpus else ""
            rows.append(f"- Compile limits: {c.timeout} ms, {c.memory} MiB, {c.processes} processes{cores}")
        for label, stage in (("compilerOptions", lang.compile), ("runArgs", lang.run)):
            if stage and stage.options:
                rows.append(f"- `{label}` allowed: " + ", ".join(f"`{p}`" for p in stage.options))
        if lang.libraries:
            listed = ", ".join(f"{lib.name} (`{lib.debian}`)" for lib in lang.libraries.packages)
            rows.append(f"- Libraries: {listed}")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["packages"]:
        print(" ".join(sorted({p for lang in LANGUAGES for p in lang.packages})))
    else:
        print(table(), end="")
