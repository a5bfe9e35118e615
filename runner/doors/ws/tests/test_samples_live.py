"""Every language's conformance samples over the websocket, through daphne, cold and pre-warmed.

The same samples engine/tests/test_languages.py runs through the REST view: here each goes
as a `run` frame, its output is gathered from the frames as they stream, and the exit frame
(with the compile stage's, for a compiled language) must say what the language file says.
"""

import json
import re
import time

import pytest
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server
from engine import languages

SAMPLES = [(lang.name, sample) for lang in languages.LANGUAGES for sample in lang.samples]


@pytest.fixture(scope="module", params=["warm", "cold"])
def server(request, tmp_path_factory):
    env = {
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0 if request.param == "warm" else 1]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "RUNNER_RATE_LIMIT": "off",
        "RUNNER_POOL_SIZE": "2" if request.param == "warm" else "0",
    }
    with Server(tmp_path_factory.mktemp(f"samples-{request.param}"), **env) as running:
        running.start = request.param
        assert (
            running.execute({"language": "bash", "code": "true"})[0] == 200
        )  # the pools start at the first run
        yield running


def starts(server) -> dict:
    return json.loads(server.request("/healthz")[2])["runs"]


def wait_for_a_waiting_sandbox(server, name: str) -> None:
    """Until the language's pool has a sandbox waiting (/metrics says), as the samples come back to back."""
    pattern = re.compile(rf'^playground_pool_waiting{{language="{re.escape(name)}"}} ([0-9.]+)$', re.M)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = pattern.search(server.request("/metrics")[2].decode())
        if found and float(found.group(1)) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {name} sandbox came to wait in 10 s")


@pytest.mark.parametrize("name, sample", SAMPLES, ids=[f"{n}-{s.name}" for n, s in SAMPLES])
def test_every_sample_streams_as_its_file_says(server, name, sample):
    if sample.libraries and server.env.get("RUNNER_LIBRARIES", "on") == "off":
        pytest.skip("RUNNER_LIBRARIES is off")
    warm = server.start == "warm" and languages.get(name).pooled
    if warm:
        wait_for_a_waiting_sandbox(server, languages.get(name).pool_name)
    before = starts(server)
    message = {"type": "run", "language": name, "code": sample.code, "stdin": sample.stdin}
    message.update(args=list(sample.args), files=dict(sample.files))
    with connect(server.url.replace("http://", "ws://") + "/ws/execute") as ws:
        ws.send(json.dumps(message))
        frames = [json.loads(ws.recv(timeout=60))]
        while frames[-1]["type"] not in ("exit", "error"):
            frames.append(json.loads(ws.recv(timeout=60)))
    end = frames[-1]
    assert end["type"] == "exit", end

    def text(kind: str, stage: str | None = None) -> str:
        return "".join(f["data"] for f in frames if f["type"] == kind and f.get("stage") == stage)

    exit_code = None if sample.signal or sample.status == "compile_error" else sample.exit_code
    assert (end["status"], end["exitCode"], end["signal"]) == (sample.status, exit_code, sample.signal), (
        frames
    )
    if sample.stdout is not None:
        assert text("stdout") == sample.stdout
    if sample.stderr is not None:
        assert sample.stderr in text("stderr")
    if languages.get(name).compile is None:
        assert end["compile"] is None
    else:
        assert end["compile"]["status"] == ("error" if sample.status == "compile_error" else "ok")
        assert [f["stage"] for f in frames if f["type"] == "stage"] == ["compile"]
    if sample.compile_stderr is not None:
        assert sample.compile_stderr in text("stderr", "compile")
    # It took the path this server serves: a waiting sandbox when it has pools, else a cold start.
    after = starts(server)
    assert after[("warm" if warm else "cold")] == before[("warm" if warm else "cold")] + 1
