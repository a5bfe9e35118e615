"""Test cases on POST /api/execute and /api/batch, through the real daphne server: every verdict,
per-case limits, isolation between cases, compile once, stopOnFailure, errors, cost and storage."""

import json

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server
from runner.doors.ws.tests.test_samples_live import wait_for_a_waiting_sandbox

LIVE = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
DOUBLE_PY = "n = int(input())\nprint(n * 2)"
DOUBLE_C = '#include <stdio.h>\nint main(void) { int n; scanf("%d", &n); printf("%d\\n", 2 * n); return 0; }'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**LIVE, "RUNNER_RATE_LIMIT": "off", "RUNNER_CLIENT_CONCURRENCY": "2", "RUNNER_MAX_TESTS": "8"}
    with Server(tmp_path_factory.mktemp("grading"), **env) as running:
        yield running


def post(server, path, body, headers=None):
    status, answer_headers, raw = server.request(
        path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    return status, json.loads(raw)


def grade(server, language, code, tests, **fields):
    status, body = post(
        server, "/api/execute", {"language": language, "code": code, "tests": tests, **fields}
    )
    assert status == 200, body
    return body


def sandboxes_started(server) -> int:
    status, _, body = server.request("/healthz")
    runs = json.loads(body)["runs"]
    return runs["warm"] + runs["cold"]


def test_every_verdict_in_the_order_given(server):
    code = "\n".join(
        [
            "import sys",
            "what = input()",
            "if what == 'loop':\n    while True: pass",
            "if what == 'hog':\n    x = bytearray(200 << 20); x[::4096] = b'x' * len(x[::4096])",
            "if what == 'flood':\n    sys.stdout.write('y' * (2 << 20))",
            "if what == 'fail':\n    sys.exit('it failed')",
            "print(what.upper())",
        ]
    )
    body = grade(
        server,
        "python",
        code,
        [
            {"name": "upper", "stdin": "abc", "expectedOutput": "ABC\n"},
            {"stdin": "abc", "expectedOutput": "abd"},
            {"name": "slow", "stdin": "loop", "timeout": 300},
            {"name": "big", "stdin": "hog", "memory": 64},
            {"name": "loud", "stdin": "flood"},
            {"name": "fails", "stdin": "fail", "expectedOutput": "x"},
            {"name": "exit code only", "stdin": "zz"},
        ],
    )
    statuses = [case["status"] for case in body["tests"]]
    assert statuses == ["passed", "wrong_answer", "timeout", "memory", "output_limit", "error", "passed"]
    assert [case["name"] for case in body["tests"]] == [
        "upper", "test 2", "slow", "big", "loud", "fails", "exit code only",
    ]  # fmt: skip
    assert [case["index"] for case in body["tests"]] == list(range(7))
    wrong = body["tests"][1]
    assert wrong["stdout"] == "ABC\n"
    assert wrong["difference"] == {"line": 1, "expected": "abd", "got": "ABC", "token": None}
    assert body["tests"][5]["stderr"] == "it failed\n" and body["tests"][5]["exitCode"] == 1
    assert body["tests"][4]["truncated"] is True
    assert body["summary"] == {"passed": 2, "failed": 5, "skipped": 0, "total": 7}
    assert body["status"] == "failed"
    assert body["stdout"] == "" and body["exitCode"] is None and body["compile"] is None


def test_all_passing_is_ok_and_each_case_may_have_its_own_args(server):
    body = grade(
        server,
        "bash",
        'echo "$1:$(cat)"',
        [
            {"stdin": "x", "args": ["one"], "expectedOutput": "one:x"},
            {"stdin": "y", "expectedOutput": "main:y"},
        ],
        args=["main"],
    )
    assert body["status"] == "ok"
    assert body["summary"] == {"passed": 2, "failed": 0, "skipped": 0, "total": 2}


@pytest.mark.parametrize(
    "compare, expected, printed, verdict",
    [
        ("lines", "1\n2", "1  \n2\n\n\n", "passed"),
        ("lines", "1 2", "1  2", "wrong_answer"),
        ("exact", "1\n", "1", "wrong_answer"),
        ("exact", "a b\n", "a b\n", "passed"),
        ("tokens", "1 2 3", "1\n2\n   3\n", "passed"),
        ("numbers", "0.333333 100", "0.3333333333 100.00000001", "passed"),
        ("numbers", "0.34", "0.3333", "wrong_answer"),
    ],
)
def test_each_compare_mode(server, compare, expected, printed, verdict):
    body = grade(
        server,
        "python",
        "import sys; sys.stdout.write(sys.stdin.read())",
        [{"stdin": printed, "expectedOutput": expected}],
        compare=compare,
    )
    assert body["tests"][0]["status"] == verdict, body["tests"][0]


def test_a_tolerance_of_its_own(server):
    tests = [{"stdin": "", "expectedOutput": "3.2"}]
    loose = grade(server, "python", "print(3.14159)", tests, compare="numbers", tolerance=0.1)
    tight = grade(server, "python", "print(3.14159)", tests, compare="numbers")
    assert loose["tests"][0]["status"] == "passed"
    assert tight["tests"][0]["status"] == "wrong_answer"
    assert tight["tests"][0]["difference"] == {"line": 1, "expected": "3.2", "got": "3.14159", "token": 1}


@pytest.mark.parametrize(
    "language, code",
    [
        # (The home's dot files, such as matplotlib's cache, are the language's own.)
        (
            "python",
            "import os\nprint(sorted(f for f in os.listdir('.') if f[0] != '.'))\nopen('left-behind', 'w')",
        ),
        (
            "c",
            "#include <stdio.h>\n#include <unistd.h>\n"
            'int main(void) { printf("%d\\n", access("left-behind", F_OK) == 0);'
            ' FILE *f = fopen("left-behind", "w"); return f == NULL; }',
        ),
    ],
)
def test_no_case_sees_another_cases_files(server, language, code):
    expected = "['main.py']" if language == "python" else "0"
    body = grade(server, language, code, [{"expectedOutput": expected}] * 4)
    assert [case["status"] for case in body["tests"]] == ["passed"] * 4, body["tests"]


def test_a_compiled_language_compiles_once_and_each_case_runs_the_program(server):
    before = sandboxes_started(server)
    body = grade(
        server,
        "c",
        DOUBLE_C,
        [{"stdin": str(n), "expectedOutput": str(2 * n)} for n in range(5)],
        compilerOptions=["-Wall"],
    )
    assert body["status"] == "ok", body
    assert body["compile"]["status"] == "ok" and body["compile"]["exitCode"] == 0
    # One sandbox for the compile and one for each case: no case compiled again.
    assert sandboxes_started(server) - before == 6


def starts(server) -> dict:
    return json.loads(server.request("/healthz")[2])["runs"]


@pytest.mark.parametrize("language, code", [("c", DOUBLE_C), ("python", DOUBLE_PY)])
def test_the_compile_or_a_case_takes_a_waiting_sandbox_as_any_run(server, language, code):
    post(server, "/api/execute", {"language": language, "code": code, "stdin": "1"})  # the pools start
    wait_for_a_waiting_sandbox(server, language)
    before = starts(server)
    body = grade(server, language, code, [{"stdin": "2", "expectedOutput": "4"}])
    assert body["status"] == "ok", body
    after = starts(server)
    # C: the compile took the waiting sandbox and its case, which brings the program built,
    # started cold. Python: the one case took it.
    expected = {"warm": 1, "cold": 1} if language == "c" else {"warm": 1, "cold": 0}
    assert {k: after[k] - before[k] for k in ("warm", "cold")} == expected


def test_a_case_leaves_nothing_for_the_next(server):
    # The first case starts a process meant to outlive it, and leaves a file and shared memory;
    # the second, in a sandbox of its own, finds none of them: its processes are the sandbox's
    # init and itself.
    code = (
        "import os, subprocess, sys\n"
        "if sys.stdin.read() == 'first':\n"
        "    subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "    open('mark', 'w').write('x'); open('/dev/shm/mark', 'w').write('x')\n"
        "else:\n"
        "    procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    print(os.path.exists('mark'), os.path.exists('/dev/shm/mark'), len(procs))"
    )
    body = grade(server, "python", code, [{"stdin": "first"}, {"stdin": "second", "expectedOutput": "False False 2"}],
                 stopOnFailure=True)  # fmt: skip
    assert [case["status"] for case in body["tests"]] == ["passed", "passed"], body["tests"]


def test_the_built_program_is_read_only_in_each_case(server):
    code = (
        "#include <stdio.h>\n#include <sys/stat.h>\n"
        'int main(void) { struct stat s; stat(".main", &s); printf("%o\\n", s.st_mode & 0777);'
        ' FILE *f = fopen(".main", "w"); printf("%s\\n", f ? "writable" : "read-only"); return 0; }'
    )
    body = grade(server, "c", code, [{"expectedOutput": "555\nread-only"}])
    assert body["tests"][0]["status"] == "passed", body["tests"][0]


@pytest.mark.parametrize(
    "language, code",
    [
        ("java", "import java.util.Scanner;\npublic class Doubler { public static void main(String[] a) {"
                 " System.out.println(2 * new Scanner(System.in).nextInt()); } }"),
        ("go", 'package main\n\nimport "fmt"\n\nfunc main() { var n int; fmt.Scan(&n); fmt.Println(2 * n) }'),
    ],
)  # fmt: skip
def test_other_compiled_languages_run_what_they_built(server, language, code):
    body = grade(
        server,
        language,
        code,
        [{"stdin": "21", "expectedOutput": "42"}, {"stdin": "1", "expectedOutput": "3"}],
    )
    assert [case["status"] for case in body["tests"]] == ["passed", "wrong_answer"], body
    assert body["status"] == "failed"


def test_a_compile_error_fails_every_case_and_nothing_runs(server):
    before = sandboxes_started(server)
    body = grade(server, "c", "int main(void) { return nope; }", [{"stdin": "1"}, {"stdin": "2"}])
    assert body["status"] == "compile_error"
    assert [case["status"] for case in body["tests"]] == ["compile_error", "compile_error"]
    assert "nope" in body["compile"]["stderr"]
    assert body["summary"] == {"passed": 0, "failed": 2, "skipped": 0, "total": 2}
    assert sandboxes_started(server) - before == 1


def test_stop_on_failure_skips_the_cases_after_the_first_failure(server):
    tests = [{"stdin": str(n), "expectedOutput": str(2 * n)} for n in range(4)]
    tests[1]["expectedOutput"] = "wrong"
    before = sandboxes_started(server)
    body = grade(server, "python", DOUBLE_PY, tests, stopOnFailure=True)
    assert [case["status"] for case in body["tests"]] == ["passed", "wrong_answer", "skipped", "skipped"]
    assert body["summary"] == {"passed": 1, "failed": 1, "skipped": 2, "total": 4}
    assert sandboxes_started(server) - before == 2


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"tests": "1"}, "tests", "must be a list of test cases"),
        ({"tests": {"stdin": "1"}}, "tests", "must be a list of test cases"),
        ({"tests": ["1"]}, "tests", "item 0 must be an object"),
        ({"tests": [{"stdin": "1", "expected": "2"}]}, "tests", "unknown field 'expected'"),
        ({"tests": [{"stdin": 1}]}, "tests", "field 'stdin' must be a string"),
        ({"tests": [{}] * 9}, "tests", "at most 8"),
        ({"tests": []}, "tests", "at least 1"),
        ({"tests": [{}], "compare": "fuzzy"}, "compare", "must be one of lines, exact, tokens, numbers"),
        ({"tests": [{}], "compare": "numbers", "tolerance": -0.1}, "tolerance", "at least 0"),
        ({"tests": [{}], "tolerance": "0.1"}, "tolerance", "must be a number"),
        ({"tests": [{"timeout": 10**9}]}, "tests", "item 0: field 'timeout'"),
        ({"tests": [{"memory": 1}]}, "tests", "item 0: field 'memory' must be at least"),
        ({"compare": "tokens"}, "compare", "needs 'tests'"),
        ({"tests": [{}], "stdin": "x"}, "stdin", "each case gives its own stdin"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field_and_nothing_runs(server, fields, field, words):
    key = server.issue_key(credits=5, name="grader")
    before = sandboxes_started(server)
    status, body = post(
        server, "/api/execute", {"language": "python", "code": "print(1)", **fields}, {"X-API-Key": key}
    )
    assert status == 400, body
    assert body["field"] == field and words in body["error"], body
    assert sandboxes_started(server) == before
    usage = server.request("/api/usage", headers={"X-API-Key": key})[2]
    assert json.loads(usage)["creditsRemaining"] == 5


def test_each_case_and_the_compile_cost_a_run_and_cases_not_run_are_refunded(server):
    key = server.issue_key(credits=10, name="course")
    headers = {"X-API-Key": key}
    tests = [{"stdin": str(n), "expectedOutput": str(2 * n)} for n in range(3)]
    status, body = post(server, "/api/execute", {"language": "c", "code": DOUBLE_C, "tests": tests}, headers)
    assert status == 200 and body["status"] == "ok"
    usage = json.loads(server.request("/api/usage", headers=headers)[2])
    assert usage["creditsRemaining"] == 6 and usage["runs"] == 4
    # A compile error: only the compile ran, so the three cases are given back.
    body = post(server, "/api/execute", {"language": "c", "code": "x", "tests": tests}, headers)[1]
    assert body["status"] == "compile_error"
    assert json.loads(server.request("/api/usage", headers=headers)[2])["creditsRemaining"] == 5
    # More runs than the credits left: refused whole, nothing charged.
    status, body = post(
        server, "/api/execute", {"language": "python", "code": "1", "tests": [{}] * 6}, headers
    )
    assert status == 402 and "6 runs" in body["error"]
    assert json.loads(server.request("/api/usage", headers=headers)[2])["creditsRemaining"] == 5


def test_a_graded_run_is_stored_with_its_cases_and_verdicts(server):
    tests = [
        {"name": "one", "stdin": "1", "expectedOutput": "2"},
        {"stdin": "5", "expectedOutput": "9", "timeout": 2000},
    ]
    body = grade(server, "python", DOUBLE_PY, tests, compare="tokens")
    status, _, raw = server.request(f"/api/executions/{body['id']}")
    stored = json.loads(raw)
    assert status == 200
    assert stored["status"] == "failed"
    assert stored["summary"] == body["summary"]
    assert [(c["name"], c["status"], c["stdout"]) for c in stored["tests"]] == [
        ("one", "passed", "2\n"), ("test 2", "wrong_answer", "10\n"),
    ]  # fmt: skip
    assert stored["tests"][1]["difference"] == {"line": 1, "expected": "9", "got": "10", "token": 1}
    grading = stored["grading"]
    assert grading["compare"] == "tokens" and grading["stopOnFailure"] is False
    assert grading["cases"][0]["expectedOutput"] == "2" and grading["cases"][1]["timeout"] == 2000


def test_batch_entries_carry_their_own_tests(server):
    status, body = post(
        server,
        "/api/batch",
        {
            "runs": [
                {"language": "python", "code": DOUBLE_PY, "tests": [{"stdin": "4", "expectedOutput": "8"}]},
                {"language": "c", "code": DOUBLE_C, "tests": [{"stdin": "4", "expectedOutput": "9"}]},
                {"language": "python", "code": "1", "tests": [{"stdin": "4"}], "compare": "nope"},
                {"language": "bash", "code": "echo plain"},
            ]
        },
    )
    assert status == 200
    graded, compiled, wrong, plain = body["results"]
    assert graded["status"] == "ok" and graded["summary"]["passed"] == 1
    assert compiled["status"] == "failed" and compiled["tests"][0]["difference"]["got"] == "8"
    assert wrong["httpStatus"] == 400 and wrong["field"] == "compare"
    assert plain["stdout"] == "plain\n" and plain["tests"] is None


def test_the_assert_appending_pattern_still_works_as_written(server):
    """A grader that pastes its asserts after the submission, and reads the exit code."""
    submission = "def add(a, b):\n    return a + b\n"
    asserts = "\nassert add(2, 3) == 5\nassert add(-1, 1) == 0\nprint('all passed')\n"
    status, _, raw = server.request(
        "/api/execute",
        json.dumps({"language": "python", "code": submission + asserts}).encode(),
        {"Content-Type": "application/json"},
    )
    body = json.loads(raw)
    assert (status, body["status"], body["stdout"]) == (200, "ok", "all passed\n")
    broken = "def add(a, b):\n    return a - b\n"
    body = json.loads(
        server.request(
            "/api/execute",
            json.dumps({"language": "python", "code": broken + asserts}).encode(),
            {"Content-Type": "application/json"},
        )[2]
    )
    assert body["status"] == "error" and "AssertionError" in body["stderr"]
