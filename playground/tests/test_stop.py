"""SIGTERM with runs in flight: the server drains, answers them, and exits 0."""

import json
import signal
import threading
import time

from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

# The tests are one client with two runs at once, which by default (half the slots) may have one.
LIVE = {
    "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
    "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
    "RUNNER_CLIENT_CONCURRENCY": "4",
}


def in_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()))
    thread.start()
    return thread, box


def websocket_run(server, code):
    with connect(server.url.replace("http://", "ws://") + "/ws/execute") as ws:
        ws.send(json.dumps({"type": "run", "language": "bash", "code": code}))
        frames = []
        while not frames or frames[-1]["type"] != "exit":
            frames.append(json.loads(ws.recv(timeout=30)))
        return frames[-1]


def stop(server) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(30)


def test_runs_in_flight_finish_and_are_answered_then_the_server_exits_0(tmp_path):
    server = Server(tmp_path, **LIVE).__enter__()
    try:
        rest, rest_answer = in_thread(
            lambda: server.execute({"language": "bash", "code": "sleep 1.5; echo rest"})
        )
        ws, ws_answer = in_thread(lambda: websocket_run(server, "sleep 1.5; echo ws"))
        time.sleep(0.7)  # both are running
        started = time.monotonic()
        assert stop(server) == 0
        rest.join(10)
        ws.join(10)
    finally:
        server._log.close()
    status, _, result = rest_answer["value"]
    assert (status, result["stdout"], result["status"]) == (200, "rest\n", "ok")
    assert ws_answer["value"]["status"] == "ok"
    assert time.monotonic() - started < 10
    log = server.log()
    assert "Segmentation fault" not in log and "Fatal Python error" not in log and "Traceback" not in log
    assert "stopped" in log


def test_runs_still_going_after_the_grace_period_are_killed_and_answered(tmp_path):
    server = Server(tmp_path, RUNNER_STOP_GRACE="1", **LIVE).__enter__()
    try:
        rest, answer = in_thread(lambda: server.execute({"language": "bash", "code": "sleep 20"}))
        time.sleep(0.7)
        started = time.monotonic()
        assert stop(server) == 0
        rest.join(10)
    finally:
        server._log.close()
    status, _, result = answer["value"]
    assert (status, result["status"]) == (200, "killed")
    assert time.monotonic() - started < 8
    assert "killing 1 runs still going" in server.log()


def test_while_it_drains_new_connections_are_refused(tmp_path):
    import socket

    server = Server(tmp_path, RUNNER_STOP_GRACE="5", **LIVE).__enter__()
    try:
        rest, _ = in_thread(lambda: server.execute({"language": "bash", "code": "sleep 2"}))
        time.sleep(0.7)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except OSError:
            refused = True
        assert refused
        assert server.proc.wait(30) == 0
        rest.join(10)
    finally:
        server._log.close()
