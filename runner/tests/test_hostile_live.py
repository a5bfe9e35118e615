"""The battery's websocket cases, against the real server (daphne), cold and pooled.

What a client can do to the server itself through a socket: send input without end, send
frames the code did not foresee, and trickle output a byte at a time.
"""

import http.client
import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

MIB = 1 << 20
STDIN_LIMIT = 8 * MIB
FRAME = MIB // 2  # daphne takes messages up to 1 MiB


@pytest.fixture(scope="module", params=["cold", "pooled"])
def server(request, tmp_path_factory):
    env = {
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "RUNNER_POOL_SIZE": "0" if request.param == "cold" else "2",
        "RUNNER_STDIN_LIMIT": str(STDIN_LIMIT),
        "RUNNER_RATE_LIMIT": "off",
        "RUNNER_CONCURRENCY": "2",  # and RUNNER_CLIENT_CONCURRENCY as it comes: half of them
    }
    with Server(tmp_path_factory.mktemp(f"hostile-{request.param}"), **env) as running:
        running.start = request.param
        if running.start == "pooled":
            # The pools fill from the first run on: that one starts cold, then they wait, full.
            assert running.execute({"language": "bash", "code": "true"})[0] == 200
            time.sleep(2)
        yield running


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws/execute"


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def frames_until_exit(ws, timeout=30) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] != "exit":
        frames.append(json.loads(ws.recv(timeout=timeout)))
    return frames


def stdout(frames) -> str:
    return "".join(f["data"] for f in frames if f["type"] == "stdout")


def run_frame(language: str, code: str, **fields) -> str:
    return json.dumps({"type": "run", "language": language, "code": code, "interactive": True, **fields})


def starts(server) -> dict:
    return json.loads(server.request("/healthz")[2])["runs"]


@pytest.fixture(autouse=True)
def took_its_path(server):
    """Each test's runs took the path the server is named for: a pooled sandbox, or a cold start."""
    before = starts(server)
    yield
    after = starts(server)
    other = "cold" if server.start == "pooled" else "warm"
    assert after[other] == before[other]
    assert (
        after["warm" if server.start == "pooled" else "cold"]
        > before["warm" if server.start == "pooled" else "cold"]
    )


def test_stdin_to_a_program_that_never_reads_is_held_back_not_buffered(server):
    # 80 frames of half a MiB to a program that reads nothing: the server stops taking frames
    # once the pipe is full, and the client's sends block, instead of the server holding them all.
    chunk = "x" * FRAME
    with connect(ws_url(server), max_size=None) as ws:
        before = rss(server.proc.pid)
        ws.send(run_frame("python", "import time\nprint('up', flush=True)\ntime.sleep(4)", timeout=4000))
        sent = []

        def flood():
            try:
                for _ in range(80):
                    ws.send(json.dumps({"type": "stdin", "data": chunk}))
                    sent.append(1)
            except ConnectionClosed:
                pass

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        time.sleep(2.5)  # the run is still going (it sleeps 4 s)
        grown = rss(server.proc.pid) - before
        in_flight = len(sent)
        frames = frames_until_exit(ws)
        sender.join(30)
    assert grown < 24 * MIB, f"the server grew {grown >> 20} MiB"
    assert in_flight < 40, f"{in_flight} frames were taken from a client whose program reads nothing"
    assert frames[-1]["status"] == "timeout"
    assert stdout(frames) == "up\n"


def test_stdin_past_the_budget_closes_the_socket_and_the_record_keeps_only_its_start(server):
    chunk = "y" * FRAME
    with connect(ws_url(server), max_size=None) as ws:
        ws.send(run_frame("bash", "echo up; cat > /dev/null; echo read-all", timeout=20000))
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        assert frames[0]["type"] == "started" and frames[1] == {"type": "stdout", "data": "up\n"}
        run_id = frames[0]["id"]
        with pytest.raises(ConnectionClosed):
            for _ in range(STDIN_LIMIT // FRAME + 4):
                ws.send(json.dumps({"type": "stdin", "data": chunk}))
            while True:
                frames.append(json.loads(ws.recv(timeout=10)))
        assert ws.close_code == 4413
    error = next(f for f in frames if f["type"] == "error")
    assert error["field"] == "data" and f"limit of {STDIN_LIMIT} bytes" in error["error"]
    for _ in range(100):
        status, _, body = server.request(f"/api/executions/{run_id}")
        if status == 200:
            break
        time.sleep(0.05)
    stored = json.loads(body)
    assert stored["status"] == "killed"
    assert stored["storedTruncated"] == ["stdin"]
    assert stored["stdin"] == "y" * (64 << 10)


def test_a_lone_surrogate_in_a_stdin_frame_is_an_error_and_the_run_goes_on(server):
    with connect(ws_url(server)) as ws:
        ws.send(run_frame("python", "print(input().upper())"))
        assert json.loads(ws.recv(timeout=10))["type"] == "started"
        ws.send('{"type": "stdin", "data": "\\udc80"}')
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "surrogate" in error["error"] and error["field"] == "data"
        ws.send("[" * 100_000 + "]" * 100_000)  # nested deeper than any parser recurses
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "malformed JSON" in error["error"]
        ws.send(json.dumps({"type": "stdin", "data": "still here\n"}))
        frames = frames_until_exit(ws)
    assert stdout(frames) == "STILL HERE\n"
    assert frames[-1]["status"] == "ok"


def test_a_lone_surrogate_in_the_run_frame_is_refused(server):
    with connect(ws_url(server)) as ws:
        ws.send('{"type": "run", "language": "python", "code": "print(1) # \\ud800"}')
        error = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4400
    assert error["field"] == "code" and "surrogate" in error["error"]
    status, _, body = server.request(
        "/api/execute", b'{"language": "python", "code": "\\udc80"}', {"Content-Type": "application/json"}
    )
    assert status == 400 and json.loads(body)["field"] == "code"
    # The server is well, and its recorder still stores runs.
    status, _, result = server.execute({"language": "python", "code": "print(6 * 7)"})
    assert status == 200 and result["stdout"] == "42\n"


def test_output_trickled_a_byte_at_a_time_arrives_in_few_frames(server):
    # 20,000 one-byte writes, 30 µs apart (each would be a read, an event and a frame): the
    # server reads them in batches a few milliseconds apart, so the client gets far fewer
    # frames than writes, and the server spends far less than a core on them.
    code = (
        "import os, time\nfor _ in range(20000):\n    os.write(1, b'.')\n"
        "    t = time.perf_counter()\n    while time.perf_counter() - t < 3e-5:\n        pass"
    )
    with connect(ws_url(server), max_size=None) as ws:
        ws.send(run_frame("python", code))
        frames = frames_until_exit(ws)
    data = [f["data"] for f in frames if f["type"] == "stdout"]
    assert "".join(data) == "." * 20000
    assert len(data) < 2000, f"{len(data)} frames for 20000 writes"


def test_one_client_leaves_room_for_another(server):
    """Two slots; client A asks for two long runs at once, then client B for a short one. A
    holds one slot, not both (its second run waits its turn), so B's run is answered first."""
    port = int(server.url.rsplit(":", 1)[1])
    done: list[str] = []

    def run(client: str, source: str, code: str):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
        body = json.dumps({"language": "python", "code": code})
        conn.request("POST", "/api/execute", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        result = json.loads(response.read())
        assert response.status == 200, result
        assert result["status"] == "ok", result
        done.append(client)

    sleeper = "import time\ntime.sleep(1.0)\nprint('a')"
    threads = [threading.Thread(target=run, args=(f"A{i}", "127.0.0.2", sleeper)) for i in (1, 2)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # both of A's runs are in: one running, the other running or waiting
    threads.append(threading.Thread(target=run, args=("B", "127.0.0.3", "print('b')")))
    threads[-1].start()
    for t in threads:
        t.join(30)
    assert sorted(done) == ["A1", "A2", "B"]
    assert done[0] == "B", done
