"""Fixtures shared by every app's tests."""

import json
import os

import pytest
from django.core.cache import cache

from sandbox import cgroups, service
from sandbox.pool import POOL, POOL_UID_OFFSET, POOL_UIDS
from sandbox.process import processes

TEST_UID_BASE = 62000
TEST_CGROUP_PARENT = "code-playground-test"
# Servers the tests start as separate processes: their own uids and cgroups, and
# (two at once) a distinct uid base each, as two servers on one host must have.
LIVE_UID_BASES = (64000, 66000)
LIVE_CGROUP_PARENT = "code-playground-test-live"


def _remove_test_database_journal():
    """The test database's WAL and shared-memory files, which Django leaves when it deletes
    the database while other threads still hold connections. A stale WAL beside the next
    session's new database file would be replayed into it."""
    from django.conf import settings

    name = settings.DATABASES["default"]["TEST"]["NAME"]
    for suffix in ("-wal", "-shm"):
        try:
            os.remove(name + suffix)
        except FileNotFoundError:
            pass


def pytest_sessionstart(session):
    _remove_test_database_journal()


def pytest_sessionfinish(session, exitstatus):
    _remove_test_database_journal()


@pytest.fixture(autouse=True)
def _test_host(settings):
    # Tests use their own uids and cgroup parent, so a dev server running beside
    # them can't be mistaken for something a test left behind (and the reverse).
    settings.RUNNER_UID_BASE = TEST_UID_BASE
    settings.RUNNER_CGROUP_PARENT = TEST_CGROUP_PARENT
    settings.RUNNER_TOOLS_DIR = os.environ.get("RUNNER_TOOLS_DIR", "/opt/code-playground")
    # Every test runs as one client from one address: the fair-use tests set their own limits.
    settings.RUNNER_RATE_LIMIT = "off"
    settings.RUNNER_CLIENT_CONCURRENCY = 64
    # In-process tests run inside a transaction: a run's row is written by the request itself.
    # (The live-server tests use the background recorder.)
    settings.RUNNER_RECORD_IN_BACKGROUND = False
    cache.clear()


class Api:
    """A thin helper over Django's test client that speaks JSON to /api/."""

    def __init__(self, client):
        self.client = client

    def execute(self, body=None, *, raw=None, **headers):
        data = raw if raw is not None else json.dumps(body)
        return self.client.post("/api/execute", data=data, content_type="application/json", **headers)

    def run(self, language: str, code: str, **body):
        """POST a run and return the result dict, asserting it was answered 200."""
        response = self.execute({"language": language, "code": code, **body})
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def api(client, db):
    return Api(client)


_collected = False


class Server:
    """The real server, started as `make run` starts it, on a free loopback port, in its own data dir."""

    def __init__(self, data_dir, **env):
        from pathlib import Path

        from django.conf import settings

        self.base = Path(settings.BASE_DIR)
        self.data = Path(data_dir)
        self.data.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "DATA_DIR": str(self.data), **env}
        self.log_path = self.data / "server.log"
        self.proc = None

    def __enter__(self):
        import socket
        import subprocess
        import sys
        import time

        python = sys.executable
        subprocess.run(
            [python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=self.base, env=self.env, check=True
        )
        global _collected
        if not _collected:  # once per test session, as make run does before serving
            subprocess.run(
                [python, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=self.base, check=True
            )
            _collected = True
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.base, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(400):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"daphne exited: {self.log_path.read_text()}") from None
                time.sleep(0.05)
        raise AssertionError("daphne did not start listening")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()

    def log(self, until=None, seconds: float = 10.0) -> str:
        """The server's log so far; with until (a test on its text), once that holds. A line about
        an answer (its run's, its access line) is written just after the answer goes out."""
        import time

        deadline = time.monotonic() + seconds
        text = self.log_path.read_text()
        while until is not None and not until(text) and time.monotonic() < deadline:
            time.sleep(0.01)
            text = self.log_path.read_text()
        return text

    def request(self, path, data=None, headers=None, method=None):
        """(status, lower-cased headers, body) of one request; HTTP errors are answers too."""
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def issue_key(self, credits: int, name: str = "paid") -> str:
        """A new API key with these credits, made as an operator makes one (manage.py create_api_key)."""
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", name, "--credits", str(credits)],
            cwd=self.base, env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def execute(self, body: dict):
        status, headers, raw = self.request(
            "/api/execute", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        return status, headers, json.loads(raw)


# --- What a run could leave on the host ---------------------------------------------
def sandbox_leftovers() -> list[str]:
    """Whatever a run could leave on the host: processes of the sandbox uids, run cgroups."""
    found = []
    POOL.settle()  # a sandbox being launched into the pool is not a leftover
    # Run slots' uids, and the pre-warmed sandboxes' uids but those waiting in the pool.
    idle = POOL.idle_uids()
    uids = set(range(TEST_UID_BASE - 1, TEST_UID_BASE + 64))
    uids |= set(range(TEST_UID_BASE + POOL_UID_OFFSET, TEST_UID_BASE + POOL_UID_OFFSET + POOL_UIDS)) - idle
    for pid, uid in processes():
        if uid in uids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except FileNotFoundError:
                continue
            state = ", ".join(f"{k}={fields[k].strip()}" for k in ("Name", "State", "PPid") if k in fields)
            found.append(f"process {pid} ({state})")
    support = cgroups.support()
    for base in support.mounts.values():
        parent = os.path.join(base, TEST_CGROUP_PARENT)
        if os.path.isdir(parent):
            # Expected: the groups of the waiting sandboxes, and the empty ones kept for reuse.
            kept = POOL.idle_cgroups() | cgroups.spare_dirs() | service.running_cgroups()
            found += [
                f"cgroup {parent}/{d}"
                for d in os.listdir(parent)
                if os.path.isdir(f"{parent}/{d}") and f"{parent}/{d}" not in kept
            ]
            found += [
                f"spare cgroup {d} not empty"
                for d in cgroups.spare_dirs()
                if d.startswith(parent) and members(d)
            ]
    return found


def members(group: str) -> list[int]:
    try:
        with open(f"{group}/cgroup.procs") as f:
            return [int(pid) for pid in f.read().split()]
    except FileNotFoundError:
        return []


def launching(pid: int) -> bool:
    """sandbox-launch, still root for the moment before it drops to its sandbox's uid."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "sandbox-launch"
    except FileNotFoundError:
        return True  # gone meanwhile


def uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


@pytest.fixture
def nothing_left_behind():
    """The test ends with no sandbox process and no cgroup left on the host (autouse where it applies)."""
    yield
    # No grace period: a sandbox is torn down just after its run's answer, and an in-process
    # request's event loop only closes once that is done.
    left = sandbox_leftovers()
    assert not left, f"left behind: {left}"


def live_leftovers(uid_base: int) -> list[str]:
    """What a live server (another process) left: run-slot processes, run cgroups, busy pooled ones.

    Expected: waiting pre-warmed sandboxes, each a cgroup holding just bwrap, sandbox-init and
    the loader, on pool uids; a build service (TypeScript's: bwrap, sandbox-init, Node and
    esbuild) on its own uid; and the empty groups kept for reuse, up to cgroups.SPARE_GROUPS a
    server.
    """
    found = []
    slots = range(uid_base - 1, uid_base + 64)
    found += [f"process {pid}" for pid, uid in processes() if uid in slots]
    # The parent is shared by the live servers: any one's waiting sandboxes may be in it.
    pool_uids = {
        uid
        for base in LIVE_UID_BASES
        for uid in range(base + POOL_UID_OFFSET, base + POOL_UID_OFFSET + POOL_UIDS)
    } | {base + service.SERVICE_SLOT for base in LIVE_UID_BASES}  # (a shared build service's)
    for base in cgroups.support().mounts.values():
        parent = os.path.join(base, LIVE_CGROUP_PARENT)
        if not os.path.isdir(parent):
            continue
        empty = []
        for d in os.listdir(parent):
            path = f"{parent}/{d}"
            if not os.path.isdir(path):
                continue
            pids = members(path)
            if not pids:
                empty.append(path)
            elif len(pids) > 4 or any(uid_of(pid) not in pool_uids and not launching(pid) for pid in pids):
                found.append(f"cgroup {path} ({len(pids)} processes)")
        if len(empty) > cgroups.SPARE_GROUPS * len(LIVE_UID_BASES):
            found += [f"empty cgroup {path} beyond the spares" for path in empty]
    return found
