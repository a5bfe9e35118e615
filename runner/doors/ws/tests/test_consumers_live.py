"""The websocket over a real socket, against daphne as `make run` starts it."""

import json
import time

import pytest
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server, live_leftovers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    with Server(tmp_path_factory.mktemp("ws"), **env) as running:
        yield running


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws/execute"


def test_the_first_line_arrives_well_before_the_program_ends(server):
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('last')"
    with connect(ws_url(server), origin="https://docs.example") as ws:
        ws.send(json.dumps({"type": "run", "language": "python", "code": code}))
        start = time.monotonic()
        arrivals = []
        while True:
            frame = json.loads(ws.recv(timeout=10))
            arrivals.append((time.monotonic() - start, frame))
            if frame["type"] == "exit":
                break
    text = "".join(f.get("data", "") for _, f in arrivals if f["type"] == "stdout")
    assert text == "first\nlast\n"
    first_at = next(t for t, f in arrivals if f["type"] == "stdout")
    exit_at = arrivals[-1][0]
    assert exit_at - first_at > 1.0
    assert arrivals[-1][1]["status"] == "ok"


def test_a_disconnect_leaves_no_process_behind(server):
    with connect(ws_url(server)) as ws:
        # The background sleeps exist before "up" is printed: seen from outside, the run is
        # more than a waiting pre-warmed sandbox (bwrap, init, loader) could be.
        code = "sleep 60 & sleep 60 & echo up; sleep 60"
        ws.send(json.dumps({"type": "run", "language": "bash", "code": code}))
        assert json.loads(ws.recv(timeout=10))["type"] == "started"
        assert json.loads(ws.recv(timeout=10)) == {"type": "stdout", "data": "up\n"}
        assert live_leftovers(LIVE_UID_BASES[0])  # the run is there while the socket is open
    deadline = time.monotonic() + 5
    while live_leftovers(LIVE_UID_BASES[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_leftovers(LIVE_UID_BASES[0]) == []


def test_the_exit_frame_matches_the_stored_execution(server):
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"type": "run", "language": "javascript", "code": "console.log(6 * 7)"}))
        frames = []
        while not frames or frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=10)))
    status, _, body = server.request(f"/api/executions/{frames[-1]['id']}")
    stored = json.loads(body)
    assert status == 200
    assert stored["stdout"] == "42\n"
    assert {k: stored[k] for k in frames[-1] if k != "type"} == {
        k: v for k, v in frames[-1].items() if k != "type"
    }


def test_a_slow_reader_still_gets_every_frame_and_the_exit(server):
    # The client reads nothing for a while (a browser busy drawing output): the run ends and
    # the server closes meanwhile, yet what it sent before closing must all arrive.
    code = "import sys\nfor _ in range(6000):\n    print('y' * 199)"
    with connect(ws_url(server), max_queue=1) as ws:
        ws.send(json.dumps({"type": "run", "language": "python", "code": code}))
        time.sleep(3)  # longer than the close handshake's timeout was (1 s)
        frames = []
        while not frames or frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=10)))
    text = "".join(f.get("data", "") for f in frames if f["type"] == "stdout")
    assert frames[-1]["status"] == "output_limit"
    assert len(text) == 1 << 20


def closing_code(ws) -> int:
    """The code the server closed the socket with, reading past any frames still coming."""
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            ws.recv(timeout=10)
    except ConnectionClosed as e:
        return e.rcvd.code


@pytest.mark.parametrize(
    "message, code, error",
    [
        ({"type": "run", "language": "python"}, 4400, "field 'code' is required"),
        ({"type": "dance"}, 4400, "unknown message type"),
        ({"type": "run", "language": "cobol", "code": "x"}, 4404, "unknown language"),
        ({"type": "run", "language": "bash", "code": "x" * 300_000}, 4413, "ceiling"),
    ],
)
def test_a_refused_first_message_closes_with_its_documented_code(server, message, code, error):
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps(message))
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "error" and error in frame["error"]
        assert closing_code(ws) == code
    assert "Exception inside application" not in server.log()


def test_an_unknown_language_lists_the_known_ones_in_its_error_frame(server):
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"type": "run", "language": "cobol", "code": "x"}))
        frame = json.loads(ws.recv(timeout=10))
    assert "python" in frame["languages"]


def test_a_client_that_resets_right_after_its_run_frame_has_its_run_killed_at_once(server):
    """However early the disconnect comes, even while the sandbox is still starting.

    A kill that came before the sandbox's program existed used to be lost: the run went on
    to its timeout (10 s) holding its slot. Its death may take a moment on a busy machine
    (what is left of a run gets the CPU behind live runs), but never the timeout.
    """
    import socket
    import struct

    def all_gone_within(seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while live_leftovers(LIVE_UID_BASES[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return live_leftovers(LIVE_UID_BASES[0])

    for _ in range(6):
        with connect(ws_url(server)) as ws:
            ws.send(json.dumps({"type": "run", "language": "bash", "code": "sleep 30 & sleep 30"}))
            # A reset, not a close handshake: SO_LINGER 0 makes close() send RST at once.
            ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.socket.close()
        time.sleep(0.5)  # by now the run has started, if it was not killed before it could
        assert all_gone_within(5) == []
    assert "output pipes still open" not in server.log()
