"""Runs forked from a zygote (sandbox/zygote.py, runtimes/zygote.c): what holds them apart.

The hostile battery runs every Python case through a zygote too (test_hostile.py); these are the
attacks on the zygote itself, and what two runs of one zygote could share.
"""

import json
import os
import signal
import time

import pytest

from engine.backends.local import STARTS
from sandbox import zygote as zygotes
from sandbox.pool import POOL
from sandbox.process import processes

pytestmark = pytest.mark.usefixtures("nothing_left_behind")


@pytest.fixture
def one(api, settings):
    """One Python zygote, which every run of the test then takes in turn."""
    settings.RUNNER_POOL_SIZE = 1
    settings.RUNNER_ZYGOTES = 1
    settings.RUNNER_ZYGOTE = True
    api.run("python", "pass")
    assert POOL.settle()
    return Zygotes()


class Zygotes:
    def current(self):
        POOL.settle()
        (box,) = POOL.idle("python")
        return box

    def pid(self, box) -> int:
        """The zygote's Python process, on the host (not bwrap or sandbox-init, which name it)."""
        uid = box.host.uid(box.spec.slot)
        for pid, owner in processes():
            if owner == uid:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except FileNotFoundError:
                    continue
                if argv[0] == b"/usr/bin/python3" and b"--zygote" in argv:
                    return pid
        raise AssertionError("no zygote process")


def forked(api, code: str, **body) -> dict:
    assert POOL.settle()  # the zygote has readied its next run (Zygote.park)
    before = STARTS["zygote"]
    result = api.run("python", code, **body)
    assert STARTS["zygote"] == before + 1, "the run was not forked from a zygote"
    return result


LEAVE = r"""
import ctypes, os, random, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
open("/tmp/left", "w").write("x")
open("/dev/shm/left", "w").write("x")
print(libc.shmget(4242, 4096, 0o1666) >= 0)
listener = socket.socket(socket.AF_UNIX)
listener.bind("\0left-behind")
listener.listen()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(30)
    os._exit(0)
print(random.random(), open("/proc/sys/kernel/random/boot_id").read().strip())
"""

FIND = r"""
import ctypes, errno, os, random, socket
libc = ctypes.CDLL(None, use_errno=True)
print(sorted(set(os.listdir("/tmp")) - {".cache"}), os.listdir("/dev/shm"))  # (.cache: its home files)
print(libc.shmget(4242, 0, 0) < 0 and ctypes.get_errno() == errno.ENOENT)
try:
    socket.socket(socket.AF_UNIX).connect("\0left-behind")
    print("connected")
except OSError as e:
    print(e.errno == errno.ECONNREFUSED)
print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print(random.random(), open("/proc/sys/kernel/random/boot_id").read().strip())
"""


def test_a_run_finds_nothing_of_the_run_before_it_in_the_same_zygote(api, one):
    first_zygote = one.current()
    left = forked(api, LEAVE)
    assert left["status"] == "ok", left
    created, first_random, first_boot = left["stdout"].split()
    assert created == "True"
    assert one.current() is first_zygote  # the same zygote serves the next run
    found = forked(api, FIND)
    lines = found["stdout"].splitlines()
    assert lines[0] == "['main.py'] []"  # its /tmp and /dev/shm are fresh tmpfs
    assert lines[1] == "True"  # SysV IPC: a fresh namespace
    assert lines[2] == "True"  # the abstract socket died with its run
    assert lines[3] == "[1, 2]"  # its init and itself: the daemon is gone
    second_random, second_boot = lines[4].split()
    assert second_random != first_random
    assert second_boot != first_boot  # each run's /proc covers are its own


ATTACK = r"""
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(seen)  # its init and itself
try:
    open("/proc/1/mem", "rb").read(1)
    print("read init's memory")
except OSError as e:
    print(type(e).__name__)
print(sorted(os.listdir("/proc/self/fd")))
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"))]
print(caps, [l.split()[1] for l in open("/proc/self/status") if l.startswith(("NoNewPrivs", "Seccomp:"))])
print(libc.unshare(0x20000), ctypes.get_errno(), libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno())
print(libc.setns(0, 0), ctypes.get_errno())
for pid in range(1, 400):
    try:
        os.kill(pid, 0)
    except OSError:
        pass
    else:
        if pid not in seen:
            print("can signal", pid)
try:
    os.kill(-1, signal.SIGKILL)  # every process it may signal, but its init and itself
except ProcessLookupError:
    print("no one to signal")
"""


def test_a_run_can_not_see_signal_read_or_hold_anything_of_its_zygote(api, one):
    box = one.current()
    pid = one.pid(box)
    result = forked(api, ATTACK)
    assert result["status"] == "ok", result
    lines = result["stdout"].splitlines()
    assert lines[0] == "[1, 2]"
    assert lines[1] == "PermissionError"  # its init is not dumpable
    assert lines[2] == "['0', '1', '2', '3']"  # (3: the listing itself)
    assert (
        lines[3]
        == "['0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000'] ['1', '2']"
    )
    assert lines[4] == "-1 1 -1 1"  # unshare and mount: EPERM, by the run's own filter
    assert lines[5] == "-1 1"
    assert "can signal" not in result["stdout"] and lines[-1] == "no one to signal"
    # The zygote lives on, and serves the next run.
    assert os.path.exists(f"/proc/{pid}") and one.current() is box
    assert forked(api, "print(6 * 7)")["stdout"] == "42\n"


def test_the_zygote_holds_no_shared_mapping_and_no_fd_of_a_run(api, one):
    box = one.current()
    pid = one.pid(box)
    forked(api, "print(1)")
    assert one.current() is box
    # Shared mappings: none writable, none of memory. (glibc maps its gconv cache shared, read-only,
    # from the read-only /usr every sandbox binds: the same file any process may read.)
    with open(f"/proc/{pid}/maps") as f:
        shared = [line.split() for line in f if line.split()[1].endswith("s")]
    assert [m for m in shared if "w" in m[1] or len(m) < 6 or not m[5].startswith("/usr/")] == []
    # Its control socket, its own stdout and stderr: nothing of any run.
    assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    assert status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2"
    # One child, its next run's first process, parked in that run's own cgroup: everything of the
    # run before is gone.
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += f.read().split()
    assert children == [str(box.parked.process.pid)]
    with open(f"/proc/{children[0]}/cgroup") as f:
        groups = f.read()
    assert all(os.path.basename(d) in groups for d in box.parked.cgroup.dirs.values())


def test_a_forked_run_is_accounted_in_its_own_cgroup(api, one):
    busy = forked(
        api, "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n    pass"
    )
    assert busy["status"] == "ok" and busy["cpuTime"] >= 250, busy
    big = forked(api, "x = bytearray(200 << 20)\nx[::4096] = b'1' * len(x[::4096])\nprint('held')", memory=64)
    assert big["status"] == "memory", big
    small = forked(api, "print(1)")
    assert small["status"] == "ok" and small["peakMemory"] < 32 << 20, small
    # The zygote itself was not what the OOM killer took.
    assert forked(api, "print(2)")["stdout"] == "2\n"


def test_a_zygote_is_replaced_after_its_share_of_runs(api, one, monkeypatch):
    first = one.current()
    monkeypatch.setattr(zygotes, "ZYGOTE_RUNS", first.runs + 2)
    forked(api, "print(1)")
    assert one.current() is first
    forked(api, "print(2)")
    assert one.current() is not first and first.destroyed


def test_a_zygote_killed_from_outside_is_replaced_and_runs_go_on(api, one):
    box = one.current()
    os.kill(one.pid(box), signal.SIGKILL)
    time.sleep(0.05)
    result = api.run("python", "print(5)")  # a cold run, or a fresh zygote's
    assert result["stdout"] == "5\n"
    assert one.current() is not box
    assert forked(api, "print(6)")["stdout"] == "6\n"


def test_the_setting_turns_zygotes_off_and_healthz_says_which_languages_fork(api, client, settings):
    settings.RUNNER_POOL_SIZE = 2
    settings.RUNNER_ZYGOTE = True
    assert client.get("/healthz").json()["zygotes"] == ["python"]
    settings.RUNNER_ZYGOTE = False
    api.run("python", "pass")
    POOL.settle()
    before = dict(STARTS)
    assert api.run("python", "print(3)")["stdout"] == "3\n"
    assert STARTS["zygote"] == before.get("zygote", 0) and STARTS["warm"] == before["warm"] + 1
    health = client.get("/healthz").json()
    assert health["zygotes"] == [] and health["runs"]["zygote"] == STARTS["zygote"]


# What a program can see of its own process: the same, pooled or forked from a zygote.
INTROSPECT = r"""
import json, os, resource, signal, sys
names = [n for n in dir(resource) if n.startswith("RLIMIT_")]
print(json.dumps({
    "argv": sys.argv, "path": sys.path, "modules": sorted(sys.modules), "main": sorted(vars(sys.modules["__main__"])),
    "flags": list(sys.flags), "env": dict(os.environ), "cwd": os.getcwd(), "files": sorted(os.listdir(".")),
    "ids": [os.getpid(), os.getppid(), os.getuid(), os.getgid(), os.getgroups(), os.getpgrp() == os.getpid()],
    "umask": os.umask(0o22), "hostname": os.uname().nodename,
    "limits": {n: resource.getrlimit(getattr(resource, n)) for n in names},
    "signals": {s.name: str(signal.getsignal(s)) for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)},
    "fds": sorted(os.listdir("/proc/self/fd")), "stdio": [os.readlink(f"/proc/self/fd/{n}")[:5] for n in (0, 1, 2)],
    "status": [l for l in open("/proc/self/status") if l.startswith(("Cap", "NoNewPrivs", "Seccomp", "Uid", "Gid"))],
    "dirs": {d: sorted(os.listdir(d)) for d in ("/", "/dev", "/dev/pts", "/dev/shm", "/proc/pressure")},
    "modes": {d: oct(os.stat(d).st_mode) for d in ("/tmp", "/dev/shm", "/dev/pts")},
    "owners": {d: [os.stat(d).st_uid, os.stat(d).st_gid] for d in ("/tmp", "/dev/shm")},
    "proc": {f: open(f).read() for f in ("/proc/uptime", "/proc/loadavg", "/proc/cmdline", "/proc/sys/fs/file-nr")},
    "meminfo": open("/proc/meminfo").read().split("\n")[0], "cgroup": open("/proc/self/cgroup").read(),
    "stdin": sys.stdin.read(), "home": sorted(os.listdir(os.path.expanduser("~/.cache"))) if os.path.isdir(os.path.expanduser("~/.cache")) else None,
}))
"""


def test_a_pooled_run_and_a_forked_run_see_the_same_process(api, settings):
    settings.RUNNER_POOL_SIZE = 2
    seen = {}
    for zygote in (False, True):
        settings.RUNNER_ZYGOTE = zygote
        api.run("python", "pass")
        assert POOL.settle()
        before = STARTS["zygote"], STARTS["warm"]
        result = api.run("python", INTROSPECT, stdin="in", args=["a", "b c"], files={"lib/x.py": "y = 1\n"})
        assert (STARTS["zygote"] - before[0], STARTS["warm"] - before[1]) == (int(zygote), 1)
        assert result["status"] == "ok", result
        seen[zygote] = json.loads(result["stdout"])
    pooled, forked_ = seen[False], seen[True]
    # Two known differences. The zygote's processes count against the run uid's RLIMIT_NPROC,
    # so a forked run's is higher by as many: the room is the same (the next test). And a forked
    # run is under two stacked filters, the zygote's and its own, which together deny what the
    # one filter of a pooled run does.
    assert (pooled["limits"].pop("RLIMIT_NPROC"), forked_["limits"].pop("RLIMIT_NPROC")) == (
        [64, 64],
        [66, 66],
    )
    for status in (pooled["status"], forked_["status"]):
        status.remove(next(line for line in status if line.startswith("Seccomp_filters")))
    assert {k: v for k, v in forked_.items() if forked_[k] != pooled[k]} == {}


FORKS = """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        n += 1
except OSError as e:
    print(n, e.errno)
"""


def test_a_pooled_run_and_a_forked_run_may_start_as_many_processes(api, settings):
    settings.RUNNER_POOL_SIZE = 2
    seen = []
    for zygote in (False, True):
        settings.RUNNER_ZYGOTE = zygote
        api.run("python", "pass")
        assert POOL.settle()
        seen.append(api.run("python", FORKS, timeout=5000)["stdout"])
    assert seen[0] == seen[1] and seen[0].endswith(" 11\n"), seen
