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


def test_a_run_can_be_fetched_the_moment_its_answer_arrives(server):
    # The record is written just after the answer (runner.recorder); until then it is pending.
    for i in range(5):
        _, _, result = server.execute({"language": "bash", "code": f"echo {i}"})
        status, _, body = server.request(f"/api/executions/{result['id']}")
        assert status == 200
        assert json.loads(body)["stdout"] == f"{i}\n"


def test_the_api_answers_through_its_own_lean_stack_and_pages_keep_theirs(server):
    _, headers, _ = server.request("/api/runtimes")
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in headers and "vary" not in headers  # no session, no CSRF cookie
    status, headers, _ = server.request("/")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"  # the pages' middleware still runs
    assert headers["referrer-policy"] == "same-origin"
    assert "access-control-allow-origin" not in headers
    status, headers, _ = server.request("/admin/login/")
    assert status == 200 and "csrftoken" in headers.get("set-cookie", "")


@pytest.mark.parametrize("language", ["bash", "python"])
def test_a_server_stopped_just_after_an_answer_leaves_nothing_behind(tmp_path, language):
    # A sandbox is torn down just after its answer; a server stopped in between finishes
    # the teardown as it exits.
    from conftest import live_leftovers

    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[1]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    with Server(tmp_path, RUNNER_POOL_SIZE="0", **env) as running:
        _, _, result = running.execute(
            {"language": language, "code": "echo bye" if language == "bash" else "print('bye')"}
        )
        assert result["stdout"] == "bye\n"
    assert live_leftovers(LIVE_UID_BASES[1]) == []
    assert "Traceback" not in running.log()
