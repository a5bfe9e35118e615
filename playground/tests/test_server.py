"""The real server, as `make run` starts it: daphne serving the ASGI app on a loopback port."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("server")
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "RUNNER_UID_BASE": "62100",
        "RUNNER_CGROUP_PARENT": "code-playground-test-server",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE, env=env, check=True)
    port = free_port()
    log = open(data / "server.log", "w+")
    proc = subprocess.Popen(
        [
            str(Path(python).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "playground.asgi:application",
        ],
        cwd=BASE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"daphne exited: {(data / 'server.log').read_text()}") from None
            time.sleep(0.05)
    yield url, data / "server.log"
    proc.terminate()
    proc.wait(10)
    log.close()


def request(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_it_serves_the_readme_examples(server):
    url, _ = server
    status, _, body = request(f"{url}/api/run/python?code=print(sum(range(1,101)))")
    assert status == 200
    result = json.loads(body)
    assert result["stdout"] == "5050\n" and result["exitCode"] == 0

    payload = json.dumps({"language": "javascript", "code": "console.log(Math.PI)"}).encode()
    status, _, body = request(f"{url}/api/execute", payload, {"Content-Type": "application/json"})
    assert json.loads(body)["stdout"] == "3.141592653589793\n"

    payload = json.dumps({"language": "python", "code": "while True: pass", "timeout": 1000}).encode()
    status, _, body = request(f"{url}/api/execute", payload, {"Content-Type": "application/json"})
    result = json.loads(body)
    assert (result["timedOut"], result["status"]) == (True, "timeout")


def test_it_says_at_start_whether_isolation_holds(server):
    _, log = server
    text = log.read_text()
    assert "sandbox layer uid drop" in text
    assert "runtimes: python" in text
    assert "CODE EXECUTION IS DISABLED" not in text


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    url, _ = server
    status, headers, body = request(
        f"{url}/api/execute", b"x" * (2 << 20), {"Content-Type": "application/json"}
    )
    assert status == 413
    assert json.loads(body)["error"].startswith("the request body is over")
    assert headers["access-control-allow-origin"] == "*"


def test_a_chunked_body_over_the_limit_is_refused(server):
    url, _ = server

    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    req = urllib.request.Request(
        f"{url}/api/execute",
        data=chunks(),
        method="POST",
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (ConnectionError, urllib.error.URLError):
        status = 413  # the server may close before the client finishes sending
    assert status == 413


def test_pages_and_docs_are_served(server):
    url, _ = server
    assert request(f"{url}/")[0] == 200
    status, headers, body = request(f"{url}/api/docs")
    assert status == 200 and b"/api/execute" in body
    assert headers["x-frame-options"] == "DENY"
