"""What a request may send before anything is read, through the real server and raw sockets."""

import json
import socket
import time

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

LIVE = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(
        tmp_path_factory.mktemp("limits"), RUNNER_REQUEST_TIMEOUT="1.5", RUNNER_POOL_SIZE="0", **LIVE
    ) as s:
        yield s


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def answer(sock) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    while len(body) < int(headers.get("Content-Length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_a_content_length_over_the_limit_is_refused_before_a_byte_of_it_is_sent(server):
    with connect(server) as sock:
        sock.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4294967296\r\n\r\n")  # fmt: skip
        status, headers, body = answer(sock)
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "the request body is over the 1048576 byte limit"
    assert headers["access-control-allow-origin"] == "*"


def test_a_chunked_body_is_refused_the_moment_it_passes_the_limit(server):
    chunk = b"x" * 65536
    sent = 0
    with connect(server) as sock:
        sock.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.setblocking(False)
        got = b""
        try:
            while sent < 300 << 20 and not got:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                try:
                    got = sock.recv(65536)
                except BlockingIOError:
                    pass
        except (BrokenPipeError, ConnectionResetError, BlockingIOError):
            pass
        sock.setblocking(True)
        status = int((got or sock.recv(65536)).split()[1])
    assert status == 413
    assert sent < 8 << 20  # answered at about 1 MiB, not read to the end of 300 MiB


def test_a_request_that_trickles_in_is_answered_408(server):
    with connect(server) as sock:
        sock.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(4):  # a header a while, each resetting an idle timer
            time.sleep(0.4)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        status, headers, body = answer(sock)
    assert status == 408 and "did not arrive within 1.5 s" in json.loads(body)["error"]
    assert time.monotonic() - started < 5


def test_an_idle_keep_alive_connection_is_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /api/runtimes HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer(sock)[0] == 200
        sock.settimeout(5)
        assert sock.recv(1) == b""  # closed after the request timeout, with no answer owed


@pytest.mark.parametrize(
    "request_bytes, status, kind",
    [
        (
            b"GET /api/run/python?code=" + b"x" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "application/json",
        ),
        (b"GET /s/" + b"x" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "text/plain; charset=utf-8"),
        (
            b"GET /api/runtimes HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n",
            431,
            "application/json",
        ),
        (
            b"GET /api/runtimes HTTP/1.1\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 100) for i in range(200))
            + b"\r\n",
            431,
            "application/json",
        ),
    ],
    ids=["long api url", "long page url", "one huge header", "many headers"],
)
def test_oversized_urls_and_headers_get_an_answer_not_a_dropped_connection(
    server, request_bytes, status, kind
):
    with connect(server) as sock:
        sock.sendall(request_bytes)
        got, headers, body = answer(sock)
    assert (got, headers["content-type"]) == (status, kind)
    assert body


def test_a_normal_request_is_untouched(server):
    status, _, result = server.execute({"language": "bash", "code": "echo fine"})
    assert (status, result["stdout"]) == (200, "fine\n")
