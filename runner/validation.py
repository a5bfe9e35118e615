"""The service's rules for a request: parsing, the language, sizes, files, and limits under ceilings.

Every door validates through here, so the same request gets the same verdict and the
same message from each; a failure is a neutral Refused, which the door renders.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from pydantic import BaseModel, ValidationError

from engine import grading, languages
from engine.spec import RunSpec, TestCase, Tests

from . import conf
from .conf import RunnerConfig
from .errors import Refused
from .wire import RunRequest

MIN_MEMORY_MIB = 16
MIN_COMPILE_MEMORY_MIB = 64
# The kernel's limit for one argument (MAX_ARG_STRLEN, its NUL included), and what all of them
# may take together, well inside ARG_MAX beside the sandbox's own command line.
MAX_ARG_BYTES = 131071
MAX_ARGS_BYTES = 256 * 1024
FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
MAX_FILE_DEPTH = 8

_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "list_type": "must be a list of strings",
    "dict_type": "must be an object mapping file names to their contents",
}


def _describe(error: dict) -> Refused:
    loc = [str(part) for part in error["loc"]]
    name = loc[0] if loc else None
    kind = error["type"]
    if not loc:
        return Refused("malformed", "the body must be a JSON object")
    if name == "tests" and len(loc) > 1:
        return _describe_case(loc, kind, error)
    if kind == "model_type":
        return Refused("malformed", "the body must be a JSON object")
    if kind == "missing":
        return Refused("invalid", f"field '{name}' is required", field=name)
    if kind == "extra_forbidden":
        return Refused("invalid", f"unknown field '{name}'", field=name)
    where = f"'{name}'" if len(loc) == 1 else f"'{name}' item {loc[1]!r}"
    words = _TYPE_WORDS.get(kind, error["msg"])
    if name == "tests" and kind == "list_type":
        words = "must be a list of test cases (objects)"
    if name == "compare":
        words = f"must be one of {', '.join(grading.COMPARES)}"
    if name == "tolerance" and kind.startswith("float"):
        words = "must be a number"
    if kind in ("too_long", "string_too_long"):
        words = f"is too long (at most {error['ctx']['max_length']})"
    if kind == "too_short":
        words = f"must hold at least {error['ctx']['min_length']}"
    if name == "files" and kind == "string_type":
        words = "must be a string (the file's contents)"
    return Refused("invalid", f"field {where} {words}", field=name)


def _describe_case(loc: list[str], kind: str, error: dict) -> Refused:
    """A test case's error, naming the case: "field 'tests' item 2: unknown field 'expected'"."""
    case = f"field 'tests' item {loc[1]}"
    if kind == "model_type":
        return Refused("invalid", f"{case} must be an object", field="tests")
    field = loc[2] if len(loc) > 2 else ""
    if kind == "extra_forbidden":
        return Refused("invalid", f"{case}: unknown field '{field}'", field="tests")
    words = _TYPE_WORDS.get(kind, error["msg"])
    if kind in ("too_long", "string_too_long"):
        words = f"is too long (at most {error['ctx']['max_length']})"
    item = f" item {loc[3]}" if len(loc) > 3 else ""
    return Refused("invalid", f"{case}: field '{field}'{item} {words}", field="tests")


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _Duplicate(k)
    return dict(pairs)


def loads(body: bytes | str):
    """A request's JSON, parsed once; a key given twice is refused, as it would silently mean its
    last value (two "language"s would run the second)."""
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates)
    except _Duplicate as e:
        raise Refused("invalid", f"the key {e.args[0]!r} is given twice", field=e.args[0]) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise Refused("malformed", f"malformed JSON: {e}") from None
    # A JSON escape can name half of a UTF-16 pair alone ("\udc80"): Python keeps it as a lone
    # surrogate, which no file, pipe or database can take. The wire itself is UTF-8, so only
    # an escape can make one: the walk is only for bodies that have such an escape.
    escape = _SURROGATE_ESCAPE_BYTES if isinstance(body, bytes) else _SURROGATE_ESCAPE
    if escape.search(body):
        if (where := _lone_surrogate(data, "")) is not None:
            raise Refused(
                "invalid",
                f"{where or 'the body'} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                "escape): text must be valid Unicode",
                field=where or None,
            )
    return data


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def _lone_surrogate(value, where: str) -> str | None:
    """The path of the first string (or key) in value that holds a lone surrogate; None if none does."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return where
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            found = _lone_surrogate(key, where)
            if found is None:
                found = _lone_surrogate(item, path)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _lone_surrogate(item, f"{where}[{i}]")) is not None:
                return found
    return None


def validate(data, model: type[BaseModel] = RunRequest):
    """A parsed body as the model, or Refused naming the field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _describe(e.errors()[0]) from None


def parse_body(body: bytes | str, model: type[BaseModel] = RunRequest):
    return validate(loads(body), model)


def check_language(
    name: str, config: RunnerConfig | None = None, *, runnable: bool = True
) -> languages.Language:
    """The served language by this name or alias (Refused: not_found); for a run, one whose
    toolchain is on this host (Refused: unavailable, saying what is missing)."""
    config = config or conf.get()
    lang = languages.get(name)
    chosen = config.engine.languages  # None: every language in the registry
    if lang is None or (chosen is not None and lang.name not in chosen):
        raise Refused(
            "not_found", f"unknown language '{name}'", languages=[lang.name for lang in config.languages]
        )
    if runnable and (why := languages.unavailable(lang.name, config.host.tools_dir)):
        raise Refused("unavailable", f"{lang.title} is not available on this server: {why}")
    return lang


def check_code_size(size: int, config: RunnerConfig) -> None:
    if size > config.max_code_bytes:
        raise Refused(
            "too_large", f"code is {size} bytes; the ceiling is {config.max_code_bytes} bytes", field="code"
        )


def run_spec(req: RunRequest, config: RunnerConfig, key=None) -> RunSpec:
    """Check a request against the server's rules and ceilings: the same messages from every door."""
    lang = check_language(req.language, config)
    check_code_size(len(req.code.encode()) + sum(len(v.encode()) for v in req.files.values()), config)
    _check_args(req.args, "field 'args'", "args")
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
    compile_limits = _compile_limits(req, lang, limits, config)
    _check_options("compilerOptions", req.compiler_options, lang.compile)
    _check_options("runArgs", req.run_args, lang.run)
    return RunSpec(
        lang.name,
        req.code,
        req.stdin,
        tuple(req.args),
        dict(req.files),
        limits,
        compile_limits,
        tuple(req.compiler_options),
        tuple(req.run_args),
        tests=_tests(req, limits, config, max_timeout, max_memory),
    )


def _tests(req: RunRequest, limits, config: RunnerConfig, max_timeout: int, max_memory: int) -> Tests | None:
    """The test cases, each within the same ceilings as a run; None for a run without them."""
    if req.tests is None:
        for name, value in (("compare", req.compare), ("tolerance", req.tolerance),
                            ("stopOnFailure", req.stop_on_failure)):  # fmt: skip
            if value is not None:
                raise Refused("invalid", f"field '{name}' needs 'tests'", field=name)
        return None
    if not req.tests:
        raise Refused("invalid", "field 'tests' must hold at least 1 test case", field="tests")
    check_tests_count(len(req.tests), config)
    if req.stdin:
        raise Refused("invalid", "field 'stdin': with 'tests', each case gives its own stdin", field="stdin")
    tolerance = grading.DEFAULT_TOLERANCE if req.tolerance is None else req.tolerance
    if not (tolerance >= 0 and tolerance != float("inf")):
        raise Refused("invalid", "field 'tolerance' must be a number of at least 0", field="tolerance")
    cases = []
    for i, case in enumerate(req.tests):
        where = f"field 'tests' item {i}:"
        if case.args is not None:
            _check_args(case.args, f"{where} field 'args'", "tests")
        case_limits = limits
        if case.timeout is not None:
            _check_range(f"{where} field 'timeout'", case.timeout, 1, max_timeout, "ms", field="tests")
            case_limits = replace(case_limits, timeout_ms=case.timeout)
        if case.memory is not None:
            _check_range(
                f"{where} field 'memory'", case.memory, MIN_MEMORY_MIB, max_memory, "MiB", field="tests"
            )
            case_limits = replace(case_limits, memory_mib=case.memory)
        cases.append(
            TestCase(
                name=case.name if case.name is not None else f"test {i + 1}",
                stdin=case.stdin,
                args=None if case.args is None else tuple(case.args),
                expected_output=case.expected_output,
                limits=None if case_limits is limits else case_limits,
            )
        )
    return Tests(tuple(cases), req.compare or "lines", tolerance, bool(req.stop_on_failure))


def _compile_limits(req: RunRequest, lang: languages.Language, limits, config: RunnerConfig):
    if not lang.compile:
        for name, value in (("compileTimeout", req.compile_timeout), ("compileMemory", req.compile_memory)):
            if value is not None:
                raise Refused("invalid", f"field '{name}': {lang.title} has no compile stage", field=name)
        return None
    compile_limits = lang.compile.limits(limits)
    if req.compile_timeout is not None:
        _check_range("compileTimeout", req.compile_timeout, 1, config.max_compile_timeout_ms, "ms")
        compile_limits = replace(compile_limits, timeout_ms=req.compile_timeout)
    if req.compile_memory is not None:
        _check_range(
            "compileMemory", req.compile_memory, MIN_COMPILE_MEMORY_MIB, config.max_compile_memory_mib, "MiB"
        )
        compile_limits = replace(compile_limits, memory_mib=req.compile_memory)
    return compile_limits


def _check_options(name: str, given: list[str], stage) -> None:
    """Each flag must match one of the stage's allow-list patterns, whole."""
    if not given:
        return
    allowed = stage.options if stage else ()
    if not allowed:
        raise Refused("invalid", f"field '{name}': this language takes none", field=name)
    for i, option in enumerate(given):
        if not any(re.fullmatch(pattern, option) for pattern in allowed):
            raise Refused(
                "invalid",
                f"field '{name}' item {i} ({option[:40]!r}) is not allowed: see docs/languages.md",
                field=name,
            )


def check_tests_count(count: int, config: RunnerConfig) -> None:
    if count > config.max_tests:
        raise Refused(
            "invalid", f"field 'tests' has {count} cases; at most {config.max_tests}", field="tests"
        )


def _check_args(args: list[str], where: str, field: str) -> None:
    for i, arg in enumerate(args):
        if "\0" in arg:
            raise Refused("invalid", f"{where} item {i} contains a NUL character", field=field)
        if len(arg.encode()) > MAX_ARG_BYTES:
            raise Refused("invalid", f"{where} item {i} is over {MAX_ARG_BYTES} bytes", field=field)
    if sum(len(arg.encode()) for arg in args) > MAX_ARGS_BYTES:
        raise Refused("invalid", f"{where} is over {MAX_ARGS_BYTES} bytes in all", field=field)


def _check_range(name: str, value: int, low: int, ceiling: int, unit: str, field: str | None = None) -> None:
    """name: a field's name, or where it is ("field 'tests' item 0: field 'timeout'")."""
    field = field or name
    where = name if " " in name else f"field '{name}'"
    if value < low:
        raise Refused("invalid", f"{where} must be at least {low} {unit}", field=field)
    if value > ceiling:
        raise Refused(
            "invalid",
            f"{where} is {value} {unit}, above the server's ceiling of {ceiling} {unit}",
            field=field,
        )


def _check_files(files: dict[str, str], lang: languages.Language, config: RunnerConfig) -> None:
    if len(files) > config.max_files:
        raise Refused(
            "invalid", f"field 'files' has {len(files)} files; at most {config.max_files}", field="files"
        )
    dirs = set()
    for name in files:
        parts = name.split("/")
        if len(parts) > MAX_FILE_DEPTH or not all(FILE_PART.fullmatch(p) for p in parts):
            raise Refused(
                "invalid",
                f"field 'files' has a bad file name {name!r}: use a relative path of letters, digits, "
                "'.', '_' and '-', not starting with '.'",
                field="files",
            )
        if name == lang.filename:
            raise Refused("invalid", f"field 'files' may not replace the main file {name!r}", field="files")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    if lang.filename in dirs:
        raise Refused(
            "invalid", f"field 'files' uses the main file {lang.filename!r} as a folder", field="files"
        )
    clash = dirs & files.keys()
    if clash:
        raise Refused(
            "invalid", f"field 'files' uses {sorted(clash)[0]!r} as both a file and a folder", field="files"
        )
