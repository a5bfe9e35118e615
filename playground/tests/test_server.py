"""The real server, as `make run` starts it: daphne serving the ASGI app on a loopback port."""

import json
import urllib.error
import urllib.request

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    with Server(tmp_path_factory.mktemp("server"), **env) as running:
        yield running


def test_it_serves_the_readme_examples(server):
    status, _, body = server.request("/api/run/python?code=print(sum(range(1,101)))")
    assert status == 200
    result = json.loads(body)
    assert result["stdout"] == "5050\n" and result["exitCode"] == 0

    _, _, result = server.execute({"language": "javascript", "code": "console.log(Math.PI)"})
    assert result["stdout"] == "3.141592653589793\n"

    _, _, result = server.execute({"language": "python", "code": "while True: pass", "timeout": 1000})
    assert (result["timedOut"], result["status"]) == (True, "timeout")


def test_it_says_at_start_whether_isolation_holds(server):
    text = server.log()
    assert "sandbox layer uid drop" in text
    assert "sandbox layer seccomp" in text
    assert "runtimes: python" in text
    assert "CODE EXECUTION IS DISABLED" not in text


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    status, headers, body = server.request(
        "/api/execute", b"x" * (2 << 20), {"Content-Type": "application/json"}
    )
    assert status == 413
    assert json.loads(body)["error"].startswith("the request body is over")
    assert headers["access-control-allow-origin"] == "*"


def test_a_chunked_body_over_the_limit_is_refused(server):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    req = urllib.request.Request(
        f"{server.url}/api/execute",
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


def test_static_files_are_served_compressed(server):
    status, headers, body = server.request(
        "/static/build/editor-page.js", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert len(body) < 300_000


def test_pages_and_docs_are_served(server):
    assert server.request("/")[0] == 200
    status, headers, body = server.request("/api/docs")
    assert status == 200 and b"/api/execute" in body
    assert headers["x-frame-options"] == "DENY"
