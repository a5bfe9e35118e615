"""The contract of POST /api/execute: results, limits and every kind of bad input."""

import json

import pytest

from engine import languages

RESULT_FIELDS = [
    "id",
    "language",
    "exitCode",
    "stdout",
    "stderr",
    "duration",
    "timedOut",
    "truncated",
    "signal",
    "status",
    "cpuTime",
    "peakMemory",
    "compile",  # the compile stage's result; null for an interpreted language
    "tests",  # each test case's result; null for a run without tests
    "summary",
]


@pytest.mark.parametrize(
    "language, code, expected",
    [
        ("python", "print(sum(range(1, 101)))", "5050\n"),
        ("javascript", "console.log(Math.PI)", "3.141592653589793\n"),
        ("typescript", "const n: number = 21;\nconsole.log(n * 2)", "42\n"),
        ("bash", "echo $((6 * 7))", "42\n"),
    ],
)
def test_it_runs_each_language(api, language, code, expected):
    result = api.run(language, code)
    assert list(result) == RESULT_FIELDS
    assert result["language"] == language
    assert result["stdout"] == expected
    assert result["stderr"] == ""
    assert result["exitCode"] == 0
    assert result["status"] == "ok"
    assert result["timedOut"] is False and result["truncated"] is False and result["signal"] is None
    assert isinstance(result["duration"], int) and 0 <= result["duration"] < 10_000


@pytest.mark.parametrize(
    "alias, canonical",
    [
        ("PY", "python"),
        ("python3", "python"),
        ("Node", "javascript"),
        ("js", "javascript"),
        ("TS", "typescript"),
        ("sh", "bash"),
    ],
)
def test_it_answers_with_the_canonical_name_for_an_alias(api, alias, canonical):
    code = {
        "python": "print(1)",
        "javascript": "console.log(1)",
        "typescript": "console.log(1)",
        "bash": "echo 1",
    }
    result = api.run(alias, code[canonical])
    assert result["language"] == canonical
    assert result["stdout"] == "1\n"


def test_it_keeps_output_bytes_exactly(api):
    result = api.run("python", "import sys\nsys.stdout.write('  a\\r\\n\\n\\tb  ')\nsys.stderr.write('e\\n')")
    assert result["stdout"] == "  a\r\n\n\tb  "
    assert result["stderr"] == "e\n"


def test_it_replaces_invalid_utf8_and_keeps_nul(api):
    result = api.run("python", "import sys\nsys.stdout.buffer.write(b'ok\\xff\\x00end \\xe2\\x82\\xac')")
    assert result["stdout"] == "ok\ufffd\x00end \u20ac"


def test_it_reports_a_nonzero_exit_as_error(api):
    result = api.run("python", "import sys\nprint('bye')\nsys.exit(3)")
    assert (result["exitCode"], result["status"], result["signal"]) == (3, "error", None)
    assert result["stdout"] == "bye\n"


def test_it_names_the_signal_that_ended_the_program(api):
    result = api.run("bash", "kill -SEGV $$")
    assert result["signal"] == "SIGSEGV"
    assert result["exitCode"] is None
    assert result["status"] == "error"


def test_it_tells_exit_137_from_a_sigkill(api):
    result = api.run("bash", "exit 137")
    assert (result["exitCode"], result["signal"], result["status"]) == (137, None, "error")


def test_it_shows_a_python_traceback_in_stderr(api):
    result = api.run("python", "def f():\n    raise ValueError('boom')\nf()")
    assert result["exitCode"] == 1
    assert 'File "/tmp/main.py", line 2, in f' in result["stderr"]
    assert "ValueError: boom" in result["stderr"]


def test_it_reports_a_typescript_syntax_error(api):
    result = api.run("typescript", "const x: number = ;")
    assert result["exitCode"] != 0
    assert result["status"] == "error"
    assert "main.ts:1" in result["stderr"]
    assert "Unexpected" in result["stderr"]


def test_typescript_errors_point_at_the_source_line(api):
    result = api.run("typescript", "const a: number = 1;\n\nthrow new Error('at line three');")
    assert result["exitCode"] == 1
    assert "main.ts:3" in result["stderr"]


def test_typescript_syntax_this_node_lacks_is_lowered_for_it(api):
    # Decorators, `accessor` fields and `using` declarations: Node 20 parses none of them.
    code = """
function logged(method: Function, context: ClassMethodDecoratorContext) {
  console.log("decorated", String(context.name));
  return method;
}
class Counter {
  accessor count = 1;
  @logged bump() { this.count += 1; return this.count; }
}
class Resource { [Symbol.dispose]() { console.log("disposed"); } }
{
  using r = new Resource();
  console.log(new Counter().bump());
}
"""
    result = api.run("typescript", code)
    assert result["stdout"] == "decorated bump\n2\ndisposed\n", result["stderr"]


def test_javascript_runs_es_modules_and_commonjs(api):
    esm = api.run("javascript", "import os from 'node:os';\nconsole.log(typeof os.cpus)")
    cjs = api.run("javascript", "const os = require('os');\nconsole.log(typeof os.cpus)")
    assert esm["stdout"] == cjs["stdout"] == "function\n"


def test_typescript_runs_top_level_await_and_require(api):
    result = api.run(
        "typescript",
        "const v: number = await Promise.resolve(7);\nconsole.log(v, typeof require('fs').readFileSync)",
    )
    assert result["stdout"] == "7 function\n"


def test_typescript_without_module_syntax_runs_as_commonjs_like_javascript(api):
    script = api.run("typescript", "const n: number = 1;\nconsole.log(typeof __filename, typeof require, n)")
    assert script["stdout"] == "string function 1\n", script["stderr"]
    module = api.run(
        "typescript",
        "import os from 'node:os';\nconsole.log(typeof __filename, typeof require, typeof os.cpus)",
    )
    assert module["stdout"] == "undefined function function\n", module["stderr"]
    meta = api.run("typescript", "console.log(import.meta.url)")
    assert meta["stdout"] == "file:///tmp/.main.mjs\n", meta["stderr"]
    # CommonJS exports are kept working by esbuild's wrapper, inside an ES module.
    exports = api.run("typescript", "exports.x = 1;\nconsole.log(typeof module, module.exports.x)")
    assert exports["stdout"] == "object 1\n", exports["stderr"]


def test_it_feeds_stdin(api):
    result = api.run("python", "import sys\nprint(sys.stdin.read()[::-1])", stdin="abc\ndef")
    assert result["stdout"] == "fed\ncba\n"


def test_stdin_is_an_immediate_eof_when_absent(api):
    result = api.run("python", "try:\n    input()\nexcept EOFError:\n    print('eof')")
    assert result["stdout"] == "eof\n"


def test_it_feeds_large_stdin(api):
    # Larger than a pipe's buffer, so it has to be written while the program reads.
    result = api.run("python", "import sys\nprint(len(sys.stdin.read()))", stdin="x" * 900_000)
    assert result["stdout"] == "900000\n"


def test_it_passes_args(api):
    result = api.run("python", "import sys\nprint(sys.argv[1:])", args=["a", "b c", "--flag", ""])
    assert result["stdout"] == "['a', 'b c', '--flag', '']\n"
    result = api.run("typescript", "console.log(process.argv.slice(2).join('|'))", args=["x", "y z"])
    assert result["stdout"] == "x|y z\n"


@pytest.mark.parametrize(
    "language, code, files",
    [
        (
            "python",
            "from lib.util import f\nprint(f())",
            {"lib/util.py": "def f(): return 42", "lib/__init__.py": ""},
        ),
        ("javascript", "console.log(require('./util.js').f())", {"util.js": "exports.f = () => 42"}),
        (
            "typescript",
            "import { f } from './util';\nconsole.log(f())",
            {"util.ts": "export const f = (): number => 42"},
        ),
        ("bash", "source ./util.sh\nf", {"util.sh": "f() { echo 42; }"}),
    ],
)
def test_the_program_can_import_extra_files(api, language, code, files):
    result = api.run(language, code, files=files)
    assert result["stdout"] == "42\n", result["stderr"]


def test_a_request_may_lower_the_timeout(api):
    result = api.run("python", "while True: pass", timeout=500)
    assert result["timedOut"] is True
    assert result["status"] == "timeout"
    assert result["signal"] == "SIGKILL" and result["exitCode"] is None
    assert 450 <= result["duration"] < 3000


def test_a_timed_out_run_keeps_what_it_printed(api):
    result = api.run("python", "import time\nprint('before', flush=True)\ntime.sleep(60)", timeout=500)
    assert result["status"] == "timeout"
    assert result["stdout"] == "before\n"


def test_a_request_may_raise_the_timeout_up_to_the_ceiling(api, settings):
    settings.RUNNER_TIMEOUT = 300
    result = api.run("python", "import time\ntime.sleep(0.6)\nprint('done')", timeout=2000)
    assert result["status"] == "ok" and result["stdout"] == "done\n"


def test_the_default_timeout_applies_without_a_request_value(api, settings):
    settings.RUNNER_TIMEOUT = 400
    result = api.run("bash", "sleep 30")
    assert result["status"] == "timeout"


@pytest.mark.parametrize(
    "field, value, ceiling", [("timeout", 60_001, "60000 ms"), ("memory", 1025, "1024 MiB")]
)
def test_a_limit_above_the_ceiling_is_refused_naming_it(api, field, value, ceiling):
    response = api.execute({"language": "python", "code": "print(1)", field: value})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field
    assert ceiling in body["error"]


@pytest.mark.parametrize("field, value", [("timeout", 0), ("timeout", -5), ("memory", 1)])
def test_a_limit_below_the_minimum_is_refused(api, field, value):
    response = api.execute({"language": "python", "code": "print(1)", field: value})
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_a_request_may_lower_memory(api):
    code = "x = bytearray(100 * 1024 * 1024)\nprint('allocated')"
    assert api.run("python", code)["stdout"] == "allocated\n"
    result = api.run("python", code, memory=64)
    assert result["status"] == "memory"
    assert result["signal"] == "SIGKILL"
    assert result["stdout"] == ""


def test_the_memory_limit_kills_a_node_program(api):
    result = api.run("javascript", "const a = []; while (true) a.push(Buffer.alloc(1 << 20, 1));", memory=96)
    assert result["status"] == "memory"


def test_output_over_the_cap_is_truncated_and_the_run_stopped(api, settings):
    settings.RUNNER_OUTPUT_LIMIT = 10_000
    result = api.run("python", "import time\nwhile True:\n    print('y' * 99)\n", timeout=5000)
    assert result["status"] == "output_limit"
    assert result["truncated"] is True
    assert len(result["stdout"]) == 10_000
    assert result["stdout"].startswith("y" * 99 + "\n")
    assert result["duration"] < 5000


def test_the_output_cap_counts_stdout_and_stderr_together(api, settings):
    settings.RUNNER_OUTPUT_LIMIT = 1000
    code = "import sys, time\nsys.stdout.write('o' * 600)\nsys.stdout.flush()\ntime.sleep(0.3)\nsys.stderr.write('e' * 600)"
    result = api.run("python", code)
    assert result["truncated"] is True
    assert result["stdout"] == "o" * 600
    assert result["stderr"] == "e" * 400


def test_endless_node_output_is_truncated_not_killed_for_memory(api):
    result = api.run("javascript", "const s = 'x'.repeat(4096); while (true) process.stdout.write(s);")
    assert result["status"] == "output_limit"
    assert len(result["stdout"]) == 1 << 20


def test_the_cap_never_splits_a_character(api, settings):
    settings.RUNNER_OUTPUT_LIMIT = 1001  # 333 three-byte characters and two bytes of the next
    result = api.run("python", "import sys\nsys.stdout.write('\u20ac' * 1000)")
    assert result["truncated"] is True
    assert result["stdout"] == "\u20ac" * 333


def test_output_just_under_the_cap_is_complete(api, settings):
    settings.RUNNER_OUTPUT_LIMIT = 1000
    result = api.run("python", "print('z' * 998)")
    assert result["status"] == "ok" and result["truncated"] is False
    assert result["stdout"] == "z" * 998 + "\n"


# --- bad input ---


def test_an_unknown_language_is_404_listing_the_languages(api):
    response = api.execute({"language": "cobol", "code": "x"})
    assert response.status_code == 404
    body = response.json()
    assert "cobol" in body["error"]
    assert body["languages"] == languages.names()
    assert "ruby" in body["languages"]


@pytest.mark.parametrize("missing", ["language", "code"])
def test_a_missing_field_is_400_naming_it(api, missing):
    body = {"language": "python", "code": "print(1)"}
    del body[missing]
    response = api.execute(body)
    assert response.status_code == 400
    assert response.json() == {"error": f"field '{missing}' is required", "field": missing}


@pytest.mark.parametrize(
    "field, value",
    [
        ("language", 3),
        ("code", ["print(1)"]),
        ("code", None),
        ("stdin", 5),
        ("args", "a b"),
        ("args", [1, 2]),
        ("files", ["a.py"]),
        ("files", {"a.py": 3}),
        ("timeout", "1000"),
        ("timeout", 1.5),
        ("timeout", True),
        ("memory", "64"),
    ],
)
def test_a_mistyped_field_is_400_naming_it(api, field, value):
    body = {"language": "python", "code": "print(1)", field: value}
    response = api.execute(body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert f"'{field}'" in response.json()["error"]


def test_an_unknown_field_is_400_naming_it(api):
    response = api.execute({"language": "python", "code": "print(1)", "timout": 5})
    assert response.status_code == 400
    assert response.json() == {"error": "unknown field 'timout'", "field": "timout"}


@pytest.mark.parametrize("raw", ["{", "not json", '{"language": "python",}', ""])
def test_malformed_json_is_400(api, raw):
    response = api.execute(raw=raw)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")


@pytest.mark.parametrize("raw", ["[]", '"python"', "42", "null"])
def test_a_body_that_is_not_an_object_is_400(api, raw):
    response = api.execute(raw=raw)
    assert response.status_code == 400
    assert response.json() == {"error": "the body must be a JSON object"}


def test_code_over_the_ceiling_is_413(api, settings):
    settings.RUNNER_MAX_CODE = 1000
    response = api.execute({"language": "python", "code": "#" * 1001})
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["error"]
    assert api.execute({"language": "python", "code": "#" * 1000}).status_code == 200


def test_the_code_ceiling_counts_the_extra_files(api, settings):
    settings.RUNNER_MAX_CODE = 1000
    response = api.execute({"language": "python", "code": "#" * 600, "files": {"a.py": "#" * 600}})
    assert response.status_code == 413


def test_the_default_code_ceiling_is_256_kib(api):
    response = api.execute({"language": "python", "code": "#" * (256 * 1024 + 1)})
    assert response.status_code == 413


def test_a_body_over_1_mib_is_413(api):
    response = api.execute({"language": "python", "code": "print(1)", "stdin": "x" * (1 << 20)})
    assert response.status_code == 413
    assert "error" in response.json()


@pytest.mark.parametrize(
    "name",
    [
        "../escape.py",
        "/etc/passwd",
        "a/../../b.py",
        ".hidden",
        "a//b.py",
        "",
        "with space.py",
        "a\\b.py",
        "main.py",
    ],
)
def test_a_bad_file_name_is_400(api, name):
    response = api.execute({"language": "python", "code": "print(1)", "files": {name: "x"}})
    assert response.status_code == 400, name
    assert response.json()["field"] == "files"


def test_a_name_used_as_file_and_folder_is_400(api):
    response = api.execute({"language": "python", "code": "1", "files": {"lib": "x", "lib/a.py": "y"}})
    assert response.status_code == 400
    assert "both a file and a folder" in response.json()["error"]


def test_too_many_files_is_400(api, settings):
    settings.RUNNER_MAX_FILES = 2
    response = api.execute({"language": "python", "code": "1", "files": {"a.py": "", "b.py": "", "c.py": ""}})
    assert response.status_code == 400


def test_an_arg_with_a_nul_is_400(api):
    response = api.execute({"language": "python", "code": "1", "args": ["a\u0000b"]})
    assert response.status_code == 400
    assert response.json()["field"] == "args"


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_a_wrong_method_is_405(client, db, method):
    response = getattr(client, method)("/api/execute")
    assert response.status_code == 405
    assert response["Allow"] == "POST, OPTIONS"
    assert "error" in response.json()


def test_it_answers_any_origin(api):
    response = api.execute({"language": "python", "code": "print(1)"}, HTTP_ORIGIN="https://blog.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in response


def test_it_answers_the_preflight_of_a_json_post(client):
    response = client.options(
        "/api/execute",
        HTTP_ORIGIN="null",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "content-type" in response["Access-Control-Allow-Headers"].lower()


def test_a_cross_site_post_needs_no_csrf_token(db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        "/api/execute",
        data=json.dumps({"language": "bash", "code": "echo ok"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["stdout"] == "ok\n"


def test_an_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"].startswith("no such endpoint")


@pytest.fixture(params=["cold", "warm"])
def either_start(request, settings):
    settings.RUNNER_POOL_SIZE = 0 if request.param == "cold" else 2
    return request.param


@pytest.mark.parametrize("language", ["python", "javascript", "typescript", "bash"])
@pytest.mark.parametrize(
    "body, message",
    [
        ({"files": {"MAIN/x": "1"}}, "uses the main file"),
        ({"args": ["a" * 131072]}, "field 'args' item 0 is over 131071 bytes"),
        ({"args": ["a" * 100_000] * 3}, "field 'args' is over 262144 bytes in all"),
    ],
    ids=["main file as a folder", "one argument over the kernel's limit", "arguments over their total"],
)
def test_the_same_bad_request_gets_the_same_400_in_every_language_and_path(
    api, either_start, language, body, message
):
    from engine import languages

    main = languages.get(language).filename
    if "files" in body:
        body = {"files": {name.replace("MAIN", main): v for name, v in body["files"].items()}}
    response = api.execute({"language": language, "code": "1", **body})
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert response.json()["field"] == next(iter(body))


def test_an_argument_just_under_the_kernels_limit_runs(api):
    result = api.run("bash", 'echo "${#1}"', args=["a" * 131071])
    assert result["stdout"] == "131071\n"
