"""One submit path: both doors charge and refund credits alike, through the real daphne server."""

import json
import threading

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

LIVE = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}


@pytest.fixture
def busy_server(tmp_path):
    """One execution slot and no queue: a second run while one runs is refused as busy."""
    with Server(
        tmp_path, **LIVE, RUNNER_CONCURRENCY="1", RUNNER_QUEUE_SIZE="0", RUNNER_POOL_SIZE="0"
    ) as running:
        yield running


@pytest.fixture
def server(tmp_path):
    with Server(tmp_path, **LIVE) as running:
        yield running


def usage(server, secret: str) -> dict:
    status, _, body = server.request("/api/usage", headers={"X-API-Key": secret})
    assert status == 200
    return json.loads(body)


def holding_the_only_slot(server):
    """A run that keeps the one execution slot busy; its thread ends when the run does."""
    started = threading.Event()

    def hold():
        with connect(server.url.replace("http://", "ws://") + "/ws/execute") as ws:
            ws.send(json.dumps({"type": "run", "language": "bash", "code": "echo up; sleep 3"}))
            while json.loads(ws.recv(timeout=10))["type"] != "stdout":
                pass
            started.set()
            while json.loads(ws.recv(timeout=10))["type"] != "exit":
                pass

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(10)
    return thread


def test_a_run_refused_as_busy_costs_nothing_on_either_door(busy_server):
    server = busy_server
    secret = server.issue_key(credits=5)
    holder = holding_the_only_slot(server)
    try:
        status, headers, body = server.request(
            "/api/execute",
            json.dumps({"language": "bash", "code": "echo hi"}).encode(),
            {"Content-Type": "application/json", "X-API-Key": secret},
        )
        assert status == 503 and headers["retry-after"] == "1"
        with connect(server.url.replace("http://", "ws://") + f"/ws/execute?api_key={secret}") as ws:
            ws.send(json.dumps({"type": "run", "language": "bash", "code": "echo hi"}))
            frame = json.loads(ws.recv(timeout=10))
            # Refused, and closed with 4000 + the REST door's 503.
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert frame["type"] == "error" and "busy" in frame["error"] and frame["retryAfter"] == 1
        assert closed.value.rcvd.code == 4503
    finally:
        holder.join(15)
    assert usage(server, secret) == {"name": "paid", "runs": 0, "creditsRemaining": 5, "rateLimit": "600/min"}
    assert "Exception inside application" not in server.log()


def test_a_run_that_ran_costs_one_credit_on_either_door(server):
    secret = server.issue_key(credits=5)
    status, _, _ = server.request(
        "/api/execute",
        json.dumps({"language": "bash", "code": "echo hi"}).encode(),
        {"Content-Type": "application/json", "X-API-Key": secret},
    )
    assert status == 200
    with connect(
        server.url.replace("http://", "ws://") + "/ws/execute", additional_headers={"X-API-Key": secret}
    ) as ws:
        ws.send(json.dumps({"type": "run", "language": "bash", "code": "echo hi"}))
        while json.loads(ws.recv(timeout=10))["type"] != "exit":
            pass
    assert usage(server, secret)["runs"] == 2 and usage(server, secret)["creditsRemaining"] == 3
