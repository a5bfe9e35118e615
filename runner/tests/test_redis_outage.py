"""Redis down or frozen: runs answer 503 at once, what doesn't need Redis goes on, and it recovers.

Each test starts a private redis-server on a port of its own (never the machine's), and the
real server pointed at it.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")


class Redis:
    def __init__(self, port: int):
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it was frozen
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    private = Redis(port)
    private.start()
    yield private
    private.stop()


@pytest.fixture
def server(tmp_path, redis):
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "RUNNER_POOL_SIZE": "0",
    }
    with Server(tmp_path, **env) as running:
        yield running


def run(server):
    started = time.monotonic()
    status, headers, body = server.execute({"language": "bash", "code": "echo hi"})
    return status, headers, body, time.monotonic() - started


def save_snippet(server):
    started = time.monotonic()
    status, _, _ = server.request(
        "/api/snippets", json.dumps({"language": "bash", "code": f"echo {time.time()}"}).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    return status, time.monotonic() - started


def websocket_refusal(server):
    with connect(server.url.replace("http://", "ws://") + "/ws/execute") as ws:
        ws.send(json.dumps({"type": "run", "language": "bash", "code": "echo hi"}))
        frame = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return frame, closed.value.rcvd.code


def health(server):
    status, _, body = server.request("/healthz")
    return status, json.loads(body)


def test_with_redis_down_runs_answer_503_and_it_recovers_by_itself(server, redis):
    assert run(server)[0] == 200
    assert health(server)[1]["redis"]["ok"] is True
    redis.stop()
    status, headers, body, took = run(server)
    assert status == 503 and headers["retry-after"] == "5"
    assert "Redis" in body["error"] and body["retryAfter"] == 5
    assert took < 3
    frame, code = websocket_refusal(server)
    assert frame["type"] == "error" and "Redis" in frame["error"] and code == 4503
    assert save_snippet(server)[0] in (200, 201)
    status, report = health(server)
    assert status == 503 and report["redis"]["ok"] is False and "Redis" in report["error"]
    redis.start()
    for _ in range(50):  # redis-py reconnects on its next call
        if run(server)[0] == 200:
            break
        time.sleep(0.1)
    assert run(server)[0] == 200
    assert health(server)[0] == 200
    assert "Traceback" not in server.log()


def test_with_redis_frozen_runs_answer_503_quickly_and_nothing_else_waits(server, redis):
    assert run(server)[0] == 200
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        status, _, body, took = run(server)
        assert status == 503 and "Redis" in body["error"]
        assert took < 3  # the call's timeout, not the client's
        status, took = save_snippet(server)
        assert status in (200, 201) and took < 2
        assert server.request("/api/runtimes")[0] == 200
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    for _ in range(50):
        if run(server)[0] == 200:
            break
        time.sleep(0.1)
    assert run(server)[0] == 200


def test_a_run_admitted_before_the_outage_is_answered_and_stored(server, redis):
    import threading

    answer = {}

    def slow_run():
        answer["result"] = server.execute({"language": "bash", "code": "sleep 1; echo done"})

    thread = threading.Thread(target=slow_run)
    thread.start()
    time.sleep(0.5)  # admitted and running
    redis.stop()
    thread.join(15)
    status, _, result = answer["result"]
    assert status == 200 and result["stdout"] == "done\n"
    stored_status, _, stored = server.request(f"/api/executions/{result['id']}")
    assert stored_status == 200 and json.loads(stored)["stdout"] == "done\n"
