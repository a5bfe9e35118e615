"""Compiled languages through the real server: the compile stage's result, limits, flags and frames.

Each compiled language gets the four verdicts a judge needs (compile error, runtime error,
timeout, memory kill) through REST; the websocket streams the compiler's output tagged as
such; a failed compile is stored as one; and every request field of the compile stage is
checked, with a 400 naming it, before anything runs.
"""

import json
import time

import pytest
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server
from engine import languages

COMPILED = [lang.name for lang in languages.LANGUAGES if lang.compile]

# Per language: a compile error, a runtime error, a program that never ends, one that eats memory.
VERDICTS = {
    "c": (
        "int main(void) { return nope; }",
        "int main(void) { return 4; }",
        "int main(void) { for (;;) {} }",
        "#include <stdlib.h>\n#include <string.h>\n"
        "int main(void) { for (;;) memset(malloc(1 << 20), 1, 1 << 20); }",
    ),
    "cpp": (
        "int main() { return nope; }",
        "int main() { return 4; }",
        "int main() { for (;;) {} }",
        "#include <vector>\nint main() { std::vector<std::vector<char>> v; for (;;) v.emplace_back(1 << 20, 1); }",
    ),
    "java": (
        "public class Main { public static void main(String[] a) { int n = nope; } }",
        "public class Main { public static void main(String[] a) { System.exit(4); } }",
        "public class Main { public static void main(String[] a) { for (;;) {} } }",
        # Past the heap: the JVM itself ends it with OutOfMemoryError, so this is an error.
        "import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
        "List<long[]> k = new ArrayList<>(); for (;;) k.add(new long[1 << 17]); } }",
    ),
    "go": (
        "package main\n\nfunc main() { nope() }\n",
        'package main\n\nimport "os"\n\nfunc main() { os.Exit(4) }\n',
        "package main\n\nfunc main() {\n\tfor {\n\t}\n}\n",
        "package main\n\nfunc main() {\n\tvar k [][]byte\n\tfor {\n\t\tb := make([]byte, 1<<20)\n"
        "\t\tfor i := range b {\n\t\t\tb[i] = 1\n\t\t}\n\t\tk = append(k, b)\n\t}\n}\n",
    ),
    "rust": (
        "fn main() { nope(); }",
        "fn main() { std::process::exit(4); }",
        "fn main() { loop { std::hint::spin_loop(); } }",
        "fn main() { let mut v = Vec::new(); loop { v.push(vec![1u8; 1 << 20]); } }",
    ),
}
MEMORY_VERDICT = {"java": "error"}  # (the JVM's own OutOfMemoryError, under the cgroup's limit)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "RUNNER_RATE_LIMIT": "off",
    }
    with Server(tmp_path_factory.mktemp("compiled"), **env) as running:
        yield running


def run(server, **body) -> dict:
    status, _, answer = server.execute(body)
    assert status == 200, answer
    return answer


def test_every_compiled_language_has_its_verdict_cases():
    assert sorted(VERDICTS) == sorted(COMPILED)


@pytest.mark.parametrize("language", COMPILED)
def test_each_verdict_of_a_compiled_language(server, language):
    broken, failing, endless, hungry = VERDICTS[language]
    result = run(server, language=language, code=broken)
    assert (result["status"], result["exitCode"], result["stdout"]) == ("compile_error", None, "")
    assert result["compile"]["status"] == "error" and result["compile"]["exitCode"] != 0
    assert "nope" in result["compile"]["stderr"]
    result = run(server, language=language, code=failing)
    assert (result["status"], result["exitCode"], result["compile"]["status"]) == ("error", 4, "ok")
    result = run(server, language=language, code=endless, timeout=500)
    assert (result["status"], result["compile"]["status"]) == ("timeout", "ok"), result
    result = run(server, language=language, code=hungry, memory=64, timeout=10_000)
    assert result["status"] == MEMORY_VERDICT.get(language, "memory"), result
    assert result["compile"]["status"] == "ok"


def test_the_compile_has_its_own_time_apart_from_the_runs(server):
    # The run may have 50 ms; g++ takes far longer than that, and is not cut short.
    code = "#include <iostream>\n#include <map>\nint main() { std::map<int, int> m{{1, 2}}; std::cout << m[1] << '\\n'; }"
    result = run(server, language="c++", code=code, timeout=50)
    assert (result["status"], result["stdout"]) == ("ok", "2\n"), result
    assert result["compile"]["duration"] > 50
    # A compile over its own limit is a compile error, with the compile's verdict.
    # (a million statements for the optimiser: seconds of silent work)
    slow = "#define T(x) x x x x x x x x x x\nint main(int n, char **v) { T(T(T(T(T(T(n = n * 31 + 7;)))))) return n; }"
    result = run(server, language="c", code=slow, compileTimeout=400)
    assert (result["status"], result["compile"]["status"]) == ("compile_error", "timeout"), result
    assert 400 <= result["compile"]["duration"] < 3000
    # And over its own memory, as rustc is within 48 MiB.
    result = run(server, language="rust", code='fn main() { println!("x"); }', compileMemory=64)
    assert result["status"] in ("compile_error", "ok")
    if result["status"] == "compile_error":
        assert result["compile"]["status"] in ("memory", "error")


def test_the_runs_accounting_is_its_own(server):
    result = run(server, language="c", code='#include <stdio.h>\nint main(void) { puts("x"); return 0; }')
    compiled = result["compile"]
    assert compiled["cpuTime"] >= 5 and compiled["peakMemory"] > result["peakMemory"], result
    assert result["cpuTime"] < compiled["cpuTime"]


def test_compiler_options_and_run_args_go_where_they_should(server):
    code = '#include <stdio.h>\nint main(void) { printf("%d\\n", GREETING); return 0; }'
    result = run(server, language="c", code=code, compilerOptions=["-DGREETING=7", "-O0", "-Wall"])
    assert result["stdout"] == "7\n"
    java = 'public class Main { public static void main(String[] a) { assert a.length > 9 : "checked"; } }'
    assert run(server, language="java", code=java)["status"] == "ok"  # assertions are off by default
    result = run(server, language="java", code=java, runArgs=["-ea"])
    assert result["status"] == "error" and "AssertionError: checked" in result["stderr"]


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"language": "c", "compilerOptions": ["-Wl,-rpath,/tmp"]}, "compilerOptions", "is not allowed"),
        ({"language": "c", "compilerOptions": ["-I/etc"]}, "compilerOptions", "is not allowed"),
        ({"language": "c", "compilerOptions": ["-fplugin=/tmp/x.so"]}, "compilerOptions", "is not allowed"),
        ({"language": "java", "compilerOptions": ["-J-Xmx4g"]}, "compilerOptions", "is not allowed"),
        ({"language": "java", "runArgs": ["-javaagent:/tmp/a.jar"]}, "runArgs", "is not allowed"),
        ({"language": "python", "compilerOptions": ["-O2"]}, "compilerOptions", "this language takes none"),
        ({"language": "c", "runArgs": ["-ea"]}, "runArgs", "this language takes none"),
        ({"language": "python", "compileTimeout": 1000}, "compileTimeout", "has no compile stage"),
        ({"language": "c", "compileTimeout": 0}, "compileTimeout", "at least 1"),
        ({"language": "c", "compileTimeout": 10**7}, "compileTimeout", "ceiling"),
        ({"language": "c", "compileMemory": 8}, "compileMemory", "at least 64"),
        ({"language": "c", "compilerOptions": "-O2"}, "compilerOptions", ""),
    ],
)
def test_a_bad_compile_field_is_refused_naming_it(server, body, field, message):
    status, _, answer = server.execute({"code": "int main(void) { return 0; }", **body})
    assert status == 400, answer
    assert answer["field"] == field and message in answer["error"]


def test_a_failed_compile_is_stored_as_one_and_streamed_tagged(server):
    url = server.url.replace("http://", "ws://") + "/ws/execute"
    code = '#include <stdio.h>\nint main(void) { printf("x") }'
    with connect(url) as ws:
        ws.send(json.dumps({"type": "run", "language": "c", "code": code}))
        frames = []
        while not frames or frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=30)))
    compiler = "".join(f["data"] for f in frames if f["type"] == "stderr" and f.get("stage") == "compile")
    assert "main.c:2:" in compiler and "error:" in compiler
    assert not [f for f in frames if f["type"] in ("stdout", "stderr") and "stage" not in f]
    exit_frame = frames[-1]
    assert exit_frame["status"] == "compile_error" and exit_frame["compile"]["status"] == "error"
    status, _, body = server.request(f"/api/executions/{exit_frame['id']}")
    stored = json.loads(body)
    assert status == 200 and stored["status"] == "compile_error"
    assert stored["compile"]["stderr"] == compiler


def test_a_compiled_run_streams_the_compile_then_the_program(server):
    url = server.url.replace("http://", "ws://") + "/ws/execute"
    code = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("ran")\n}\n'
    with connect(url) as ws:
        ws.send(json.dumps({"type": "run", "language": "go", "code": code, "stdin": ""}))
        frames = []
        while not frames or frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=30)))
    kinds = [(f["type"], f.get("stage")) for f in frames]
    assert kinds[0] == ("started", None)
    assert ("stage", "compile") in kinds and ("stdout", None) in kinds
    assert "".join(f["data"] for f in frames if f["type"] == "stdout") == "ran\n"
    assert kinds.index(("stage", "compile")) < kinds.index(("stdout", None))
    assert frames[-1]["compile"]["status"] == "ok"


@pytest.mark.parametrize("language", ["c", "java"])
def test_a_compiled_program_reads_what_is_typed_while_it_runs(server, language):
    """Interactive over the websocket: what is sent during the compile waits for the program, and
    the compiler never reads it (it has /dev/null; the waiting sandbox's hand-overs come first)."""
    code = {
        "c": "#include <stdio.h>\nint main(void) { char b[64];\n"
        '  while (fgets(b, sizeof b, stdin)) { printf("got %s", b); fflush(stdout); } return 0; }',
        "java": "import java.io.*;\npublic class Main { public static void main(String[] a) throws IOException {\n"
        "  BufferedReader r = new BufferedReader(new InputStreamReader(System.in)); String l;\n"
        '  while ((l = r.readLine()) != null) { System.out.println("got " + l); } } }',
    }[language]
    url = server.url.replace("http://", "ws://") + "/ws/execute"
    time.sleep(1.5)  # the pools have filled since the last run: this one takes a waiting sandbox
    before = warm_runs(server)
    with connect(url) as ws:
        ws.send(json.dumps({"type": "run", "language": language, "code": code, "interactive": True}))
        ws.send(json.dumps({"type": "stdin", "data": "early\n"}))  # sent while it compiles
        got, frames = "", []
        while "got early\n" not in got:
            frames.append(json.loads(ws.recv(timeout=30)))
            got += frames[-1].get("data", "") if frames[-1]["type"] == "stdout" else ""
        ws.send(json.dumps({"type": "stdin", "data": "later\n"}))
        ws.send(json.dumps({"type": "eof"}))
        while frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=30)))
            got += frames[-1].get("data", "") if frames[-1]["type"] == "stdout" else ""
    assert got == "got early\ngot later\n"
    assert (frames[-1]["status"], frames[-1]["compile"]["status"]) == ("ok", "ok")
    assert warm_runs(server) == before + 1


def warm_runs(server) -> int:
    return json.loads(server.request("/healthz")[2])["runs"]["warm"]
