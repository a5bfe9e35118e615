"""The real server, as `make run` starts it: daphne serving the ASGI app on a loopback port."""

import gzip
import json
import posixpath
import re
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


def test_the_api_s_answers_say_their_length_and_are_not_chunked(server):
    """As the pages' are (Django's CommonMiddleware): a client reads the answer in one piece."""
    for path, body in (
        ("/api/execute", {"language": "bash", "code": "echo 1"}),
        ("/api/execute", {"language": "bash"}),  # a 400
    ):
        status, headers, raw = server.request(
            path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        assert status in (200, 400)
        assert "transfer-encoding" not in headers
        assert int(headers["content-length"]) == len(raw) > 0
    status, headers, raw = server.request("/api/runtimes")
    assert status == 200 and int(headers["content-length"]) == len(raw)


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
    """The editor page's script and the chunks it imports before any language's mode: gzipped,
    and under 300 kB together. Each mode is a chunk of its own, loaded when first shown."""
    todo, loaded, later, total = ["editor-page.js"], set(), set(), 0
    while todo:
        name = todo.pop()
        if name in loaded:
            continue
        loaded.add(name)
        status, headers, body = server.request(f"/static/build/{name}", headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip", name
        total += len(body)
        source = gzip.decompress(body).decode()
        here = posixpath.dirname(name)
        # Static imports (`import"./x.js"`, `from"./x.js"`) load with the page; import("./x.js") later.
        todo += [posixpath.join(here, p) for p in re.findall(r'(?:\bfrom|\bimport)\s*"\./([^"]+)"', source)]
        later |= {posixpath.join(here, p) for p in re.findall(r'\bimport\("\./([^"]+)"\)', source)}
    assert len(loaded) > 1 and total < 300_000, (loaded, total)
    assert len(later) >= 10 and not later & loaded, (later, loaded)  # the modes wait to be shown


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


def test_a_first_start_with_an_operators_settings_serves(tmp_path):
    """SECRET_KEY set, and a data directory that does not exist yet: the first thing an operator does."""
    data = tmp_path / "srv" / "data"
    env = {
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "DATA_DIR": str(data),
        "SECRET_KEY": "an-operators-own-secret-key-" + "x" * 30,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "false",
    }
    with Server(tmp_path, **env) as running:
        status, _, body = running.request("/api/run/bash?code=echo%20up")
        assert (status, json.loads(body)["stdout"]) == (200, "up\n")
    assert (data / "db.sqlite3").exists()
    assert not (data / "secret_key").exists()  # the operator's key is used, none is made


def runs_so_far(server) -> int:
    _, _, body = server.request("/healthz")
    runs = json.loads(body)["runs"]
    return runs["warm"] + runs["cold"]


@pytest.mark.parametrize("path", ["/", "/embed.js", "/healthz", "/api/runtimes"])
def test_head_answers_as_get_does_for_uptime_monitors(server, path):
    status, headers, body = server.request(path, method="HEAD")
    assert (status, body) == (200, b"")


def test_head_on_a_run_runs_nothing(server):
    before = runs_so_far(server)
    status, headers, body = server.request("/api/run/python?code=print(1)", method="HEAD")
    assert status == 405 and "GET" in headers["allow"]
    assert runs_so_far(server) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE", "TRACE", "POST"])
def test_the_docs_page_refuses_other_methods_with_json(server, method):
    status, headers, body = server.request(
        "/api/docs", data=b"" if method != "TRACE" else None, method=method
    )
    assert status == 405
    assert json.loads(body)["error"].startswith(f"method {method} is not allowed")


def test_a_websocket_to_an_unknown_path_is_refused_without_a_traceback(server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(server.url.replace("http://", "ws://") + "/ws/nope", open_timeout=10)
    assert refused.value.response.status_code == 403
    assert "Traceback" not in server.log() and "No route found" not in server.log()


def test_a_bad_host_is_answered_400_and_logged_in_one_line(tmp_path):
    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    with Server(tmp_path, ALLOWED_HOSTS="playground.example", **env) as running:
        status, _, body = running.request("/api/runtimes", headers={"Host": "evil.example"})
        assert (status, json.loads(body)) == (400, {"error": "bad request"})
        status, _, _ = running.request("/", headers={"Host": "evil.example"})
        assert status == 400
        log = running.log()
    assert "Invalid HTTP_HOST header: 'evil.example'" in log
    assert "Traceback" not in log


def test_the_application_parses_a_body_whatever_its_content_type_says(server):
    # Twisted would parse a form or multipart body into arguments no one reads, and answer a bare
    # 400, before the application saw it, to a multipart one it could not parse.
    body = json.dumps({"language": "bash", "code": "echo hi"}).encode()
    for kind in ("multipart/form-data; boundary=x", "application/x-www-form-urlencoded"):
        status, _, raw = server.request("/api/execute", body, {"Content-Type": kind})
        assert (status, json.loads(raw)["stdout"]) == (200, "hi\n"), kind


def test_a_key_given_twice_is_refused_naming_it(server):
    body = b'{"language": "python", "language": "bash", "code": "echo hi"}'
    status, _, raw = server.request("/api/execute", body, {"Content-Type": "application/json"})
    assert status == 400
    assert json.loads(raw) == {"error": "the key 'language' is given twice", "field": "language"}


SECRET_CODE = "print('output-that-must-not-be-logged', input())"


def test_each_run_is_logged_in_one_line_without_its_code_input_or_output(server):
    _, _, result = server.execute({"language": "python", "code": SECRET_CODE, "stdin": "input-not-logged"})
    text = server.log(until=lambda text: f"run {result['id']}" in text)
    line = next(line for line in text.splitlines() if f"run {result['id']}" in line)
    assert "language=python status=ok" in line and "client=127.0.0.1" in line
    assert f"cpu_ms={result['cpuTime']}" in line and f"peak_memory={result['peakMemory']}" in line
    for secret in ("output-that-must-not-be-logged", "input-not-logged", "print("):
        assert secret not in server.log()


def test_log_format_json_makes_every_line_json(tmp_path):
    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    with Server(tmp_path, LOG_FORMAT="json", **env) as running:
        _, _, result = running.execute({"language": "bash", "code": "echo hi"})
        running.request("/no-such-page")
        lines = running.log(until=lambda text: '"status": 404' in text and result["id"] in text).splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]  # every line parses
    run = next(e for e in entries if e.get("run") == result["id"])
    assert (run["logger"], run["language"], run["status"], run["client"]) == (
        "runner.runs",
        "bash",
        "ok",
        "127.0.0.1",
    )
    assert any(e.get("logger") == "access" and e.get("status") == 404 for e in entries)
    assert any("sandbox layer" in e.get("message", "") for e in entries)


def test_a_server_removes_a_killed_predecessors_cgroups_when_it_starts(tmp_path):
    """As after kill -9 and Restart=always: the groups are new, and nothing has run yet."""
    import os
    import subprocess

    from sandbox import cgroups, process

    support = cgroups.support()
    if not support.version:
        pytest.skip("no cgroups on this host")
    predecessor = subprocess.Popen(["true"])
    predecessor.wait()
    stamp = f"pid{predecessor.pid}.{process.started(os.getpid())}"
    made = []
    for mount in support.mounts.values():
        for name in (f"slot0-{stamp}-0000dead", f"pool100-{stamp}-0000beef"):
            path = os.path.join(mount, LIVE_CGROUP_PARENT, name)
            os.makedirs(path, exist_ok=True)
            made.append(path)
    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    try:
        with Server(tmp_path, RUNNER_POOL_SIZE="0", **env):
            assert [path for path in made if os.path.isdir(path)] == []
    finally:
        for path in made:
            if os.path.isdir(path):
                os.rmdir(path)


def test_runs_answered_just_before_a_kill_9_are_stored_by_the_next_server(tmp_path):
    """The background writer had not stored them yet (here it is held up by a lock on the
    database): the journal has them, and the next server replays it at start."""
    import signal as signals
    import sqlite3

    env = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}
    first = Server(tmp_path, **env).__enter__()
    lock = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # the writer now waits for the database
        answers = [first.execute({"language": "bash", "code": f"echo {i}"}) for i in range(3)]
        first.proc.send_signal(signals.SIGKILL)
        first.proc.wait(10)
    finally:
        lock.rollback()
        lock.close()
        first._log.close()
    assert [status for status, _, _ in answers] == [200] * 3
    with Server(tmp_path, **env) as second:
        for i, (_, _, result) in enumerate(answers):
            status, _, body = second.request(f"/api/executions/{result['id']}")
            assert status == 200, f"run {i} was answered, then lost"
            assert json.loads(body)["stdout"] == f"{i}\n"
    assert (tmp_path / "runs.journal").read_bytes() == b""  # replayed, and emptied
