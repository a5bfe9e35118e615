"""Load and leaks: 200 runs at concurrency 8 through the real HTTP server, hostile ones among them."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server, live_leftovers

RUNS = 200
CLIENTS = 8
# (request, what a correct answer looks like)
MIX = [
    ({"language": "python", "code": "print(sum(range(101)))"}, {"stdout": "5050\n", "status": "ok"}),
    (
        {"language": "javascript", "code": "console.log([1, 2, 3].map((x) => x * 2).join())"},
        {"stdout": "2,4,6\n"},
    ),
    ({"language": "typescript", "code": "const n: number = 7;\nconsole.log(n * 6)"}, {"stdout": "42\n"}),
    ({"language": "bash", "code": "echo $((2 ** 10))"}, {"stdout": "1024\n"}),
    ({"language": "python", "code": "import sys\nsys.exit(3)"}, {"exitCode": 3, "status": "error"}),
    ({"language": "bash", "code": ":(){ :|:& };:", "timeout": 1000}, {}),
    (
        {"language": "python", "code": "x = []\nwhile True:\n    x.append(' ' * 10**6)", "memory": 64},
        {"status": "memory"},
    ),
    (
        {"language": "javascript", "code": "for (;;) {}", "timeout": 300},
        {"status": "timeout", "timedOut": True},
    ),
    (
        {"language": "python", "code": "while True:\n    print('x' * 1000)"},
        {"status": "output_limit", "truncated": True},
    ),
    ({"language": "bash", "code": "setsid sleep 1000 &\n(sleep 1000 &)\necho bye"}, {"stdout": "bye\n"}),
    ({"language": "bash", "code": "printf '\\xff\\x00'"}, {"stdout": "\ufffd\x00"}),
]


def server_state(pid: int) -> tuple[int, int]:
    """(open fds, resident KiB) of the server process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return len(os.listdir(f"/proc/{pid}/fd")), rss


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # One address sends all 200 runs: the per-client limits are off, the server's slots and queue are not.
    env = {
        "RUNNER_UID_BASE": str(LIVE_UID_BASES[0]),
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
        "RUNNER_RATE_LIMIT": "off",
        "RUNNER_CLIENT_CONCURRENCY": str(CLIENTS),
    }
    with Server(tmp_path_factory.mktemp("load"), **env) as running:
        yield running


def run(server, i):
    body, expected = MIX[i % len(MIX)]
    status, headers, result = server.execute(body)
    if status == 503:
        assert headers.get("retry-after"), result
        return "busy"
    assert status == 200, result
    for key, value in expected.items():
        assert result[key] == value, (body, result)
    return "ran"


def test_200_mixed_runs_at_concurrency_8_leave_nothing_behind(server):
    for i in range(len(MIX) * 2):  # warm up: first runs fill caches that are not leaks
        run(server, i)
    time.sleep(0.5)
    fds_before, rss_before = server_state(server.proc.pid)
    tmp_before = set(os.listdir("/tmp"))

    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(lambda i: run(server, i), range(RUNS)))
    assert outcomes.count("ran") + outcomes.count("busy") == RUNS
    assert outcomes.count("ran") > RUNS // 2

    deadline = time.monotonic() + 5
    # Closing client sockets may trail the last response, and so does the last sandbox's
    # teardown (its answer goes out first).
    while (state := server_state(server.proc.pid))[0] != fds_before and time.monotonic() < deadline:
        time.sleep(0.1)
    while live_leftovers(LIVE_UID_BASES[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    fds_after, rss_after = state
    assert fds_after == fds_before
    # Alone this grows 4-10 MiB (the allocator's high-water mark of runs' megabyte outputs held at
    # once: each is decoded, joined, answered as JSON and journalled before its answer); under the
    # whole suite's load once 25. A per-run leak of the outputs themselves would be hundreds.
    assert rss_after - rss_before < 40 * 1024, f"resident memory grew {rss_after - rss_before} KiB"
    assert set(os.listdir("/tmp")) - tmp_before == set()
    assert live_leftovers(LIVE_UID_BASES[0]) == []
    assert "Traceback" not in server.log()
