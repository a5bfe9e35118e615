"""Test cases over the websocket, through daphne: a frame per case as soon as it is judged, then
the exit frame with the summary; the compile's output streamed; a kill; refusals."""

import json
import time

import pytest
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server, live_leftovers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "RUNNER_RATE_LIMIT": "off",
        "RUNNER_CLIENT_CONCURRENCY": "2",
    }
    with Server(tmp_path_factory.mktemp("ws-grading"), **env) as running:
        yield running


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws/execute"


def frames_of(server, run: dict, timeout: float = 30) -> list[tuple[float, dict]]:
    """Every frame of one run, with when it came (seconds from the run message)."""
    frames = []
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"type": "run", **run}))
        start = time.monotonic()
        while True:
            frame = json.loads(ws.recv(timeout=timeout))
            frames.append((time.monotonic() - start, frame))
            if frame["type"] in ("exit", "error"):
                return frames


def test_each_case_is_a_frame_as_soon_as_it_is_judged_then_the_summary(server):
    # The slow case is first: the quick ones are judged, and sent, while it still runs.
    code = "import time\nn = int(input())\nif n == 0: time.sleep(1.5)\nprint(n * 2)"
    tests = [{"name": f"n={n}", "stdin": str(n), "expectedOutput": str(2 * n)} for n in range(4)]
    tests[3]["expectedOutput"] = "7"
    frames = frames_of(server, {"language": "python", "code": code, "tests": tests})
    kinds = [f["type"] for _, f in frames]
    assert kinds[0] == "started" and kinds[-1] == "exit"
    assert kinds[1:-1] == ["test"] * 4  # no stdout frames: each case's output is in its frame
    tests_at = {f["index"]: t for t, f in frames if f["type"] == "test"}
    assert tests_at[0] > tests_at[1] + 1.0  # the slow first case came last, well after the others
    by_index = {f["index"]: f for _, f in frames if f["type"] == "test"}
    assert [by_index[i]["status"] for i in range(4)] == ["passed", "passed", "passed", "wrong_answer"]
    assert by_index[3]["difference"] == {"line": 1, "expected": "7", "got": "6", "token": None}
    assert by_index[2]["name"] == "n=2" and by_index[2]["stdout"] == "4\n"
    exit_frame = frames[-1][1]
    assert exit_frame["status"] == "failed"
    assert exit_frame["summary"] == {"passed": 3, "failed": 1, "skipped": 0, "total": 4}
    assert "tests" not in exit_frame  # they were sent already
    # The stored execution has them all.
    status, _, raw = server.request(f"/api/executions/{exit_frame['id']}")
    assert [case["status"] for case in json.loads(raw)["tests"]] == [
        "passed",
        "passed",
        "passed",
        "wrong_answer",
    ]


def test_a_compiled_languages_compile_is_streamed_then_its_cases(server):
    code = '#include <stdio.h>\n#warning "careful"\nint main(void) { int n; scanf("%d", &n); printf("%d\\n", n + 1); }'
    tests = [{"stdin": "1", "expectedOutput": "2"}, {"stdin": "41", "expectedOutput": "42"}]
    frames = [f for _, f in frames_of(server, {"language": "c", "code": code, "tests": tests})]
    kinds = [f["type"] for f in frames]
    stage_at = kinds.index("stage")
    assert kinds[0] == "started"
    assert all(k == "stderr" for k in kinds[1:stage_at]) and stage_at > 1
    assert all(f.get("stage") == "compile" for f in frames[1:stage_at])
    assert "careful" in "".join(f["data"] for f in frames[1:stage_at])
    assert frames[stage_at]["status"] == "ok"
    assert kinds[stage_at + 1 :] == ["test", "test", "exit"]
    assert frames[-1]["status"] == "ok" and frames[-1]["summary"]["passed"] == 2


def test_a_compile_error_fails_every_case(server):
    frames = [f for _, f in frames_of(server, {"language": "c", "code": "int main(", "tests": [{}, {}]})]
    tests = [f for f in frames if f["type"] == "test"]
    assert [t["status"] for t in tests] == ["compile_error", "compile_error"]
    assert frames[-1]["status"] == "compile_error"


def test_a_kill_ends_every_case_and_skips_the_rest(server):
    tests = [{"stdin": str(n)} for n in range(6)]
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"type": "run", "language": "bash", "code": "sleep 30", "tests": tests}))
        assert json.loads(ws.recv(timeout=10))["type"] == "started"
        time.sleep(0.5)
        ws.send(json.dumps({"type": "kill"}))
        start = time.monotonic()
        frames = []
        while True:
            frame = json.loads(ws.recv(timeout=10))
            frames.append(frame)
            if frame["type"] == "exit":
                break
    assert time.monotonic() - start < 5
    assert frames[-1]["status"] == "killed"
    assert {f["status"] for f in frames if f["type"] == "test"} == {"skipped"}
    assert frames[-1]["summary"]["skipped"] == 6
    deadline = time.monotonic() + 5
    while live_leftovers(LIVE_UID_BASES[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_leftovers(LIVE_UID_BASES[0]) == []


@pytest.mark.parametrize(
    "run, field",
    [
        ({"tests": [{}], "interactive": True}, "interactive"),
        ({"tests": [{"expected": "1"}]}, "tests"),
        ({"tests": [{}], "tolerance": -1, "compare": "numbers"}, "tolerance"),
    ],
)
def test_a_bad_spec_is_an_error_frame_and_a_4400_close(server, run, field):
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"type": "run", "language": "python", "code": "print(1)", **run}))
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "error" and frame["field"] == field, frame
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=10)
        assert getattr(closed.value, "rcvd", None).code == 4400
