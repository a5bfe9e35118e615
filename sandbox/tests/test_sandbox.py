"""Isolation, checked from inside real sandboxes: what a program can see, reach and leave behind."""

import os
import socket
import threading

import pytest
from django.conf import settings as django_settings

import sandbox
from conftest import TEST_UID_BASE
from sandbox import cgroups, process


def test_etc_holds_only_the_alternatives_links(api):
    result = api.run("bash", "ls -A /etc; ls /etc/alternatives | head -1; echo | awk '{print \"awk works\"}'")
    lines = result["stdout"].splitlines()
    assert lines[0] == "alternatives"
    assert lines[-1] == "awk works"


def test_host_files_are_invisible(api):
    paths = [
        "/etc/shadow",
        "/etc/passwd",
        "/root",
        "/home",
        "/usr/local",
        "/var",
        str(django_settings.BASE_DIR),
        django_settings.DATABASES["default"]["NAME"],
        "/sys",
        "/opt/code-playground",
    ]
    code = "import os, sys\nfor p in sys.argv[1:]:\n    print(p, os.path.exists(p))"
    result = api.run("python", code, args=paths)
    assert result["stdout"] == "".join(f"{p} False\n" for p in paths)


def test_only_the_runtime_is_mounted_and_read_only(api):
    code = (
        'for d in /usr/bin /usr/lib / /dev; do touch $d/x 2>/dev/null && echo "$d writable" || echo "$d ro"; done\n'
        "ls /"
    )
    result = api.run("bash", code)
    lines = result["stdout"].splitlines()
    assert lines[:4] == ["/usr/bin ro", "/usr/lib ro", "/ ro", "/dev ro"]
    # /opt holds the sandbox's tools (a pre-warmed bash sandbox's loader, say), nothing else.
    assert sorted(set(lines[4:]) - {"opt"}) == [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "proc",
        "sbin",
        "tmp",
        "usr",
    ]


def test_the_working_directory_is_a_private_writable_tmpfs(api):
    code = "pwd; echo hi > note.txt; cat /tmp/note.txt; echo $HOME; stat -f -c %T /tmp; ls -A"
    result = api.run("bash", code)
    assert result["stdout"] == "/tmp\nhi\n/tmp\ntmpfs\nmain.sh\nnote.txt\n"


def test_files_written_in_one_run_are_gone_in_the_next(api):
    api.run("bash", "echo secret > /tmp/left.txt; echo x > /dev/shm/left")
    result = api.run("bash", "ls -A /tmp /dev/shm")
    assert "left" not in result["stdout"]


def test_the_program_is_unprivileged(api):
    code = "import os\nprint(os.getuid(), os.geteuid(), os.getgid())\n" + (
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))])"
    )
    result = api.run("python", code)
    assert (
        result["stdout"] == "1000 1000 1000\n['0000000000000000', '0000000000000000', '0000000000000000']\n"
    )


async def test_on_the_host_the_sandbox_runs_as_the_slots_uid():
    host = sandbox.Host(uid_base=TEST_UID_BASE, cgroup_parent="code-playground-test")
    spec = sandbox.BoxSpec(argv=["/bin/sh", "-c", "echo ready; sleep 5"], slot=3)
    box = await sandbox.Sandbox.start(spec, host, stdin=b"")
    try:
        assert await box.stdout.readline() == b"ready\n"
        members = box.cgroup.pids() if box.cgroup else process.uid_pids(TEST_UID_BASE + 3)
        assert len(members) >= 3  # bwrap, sandbox-init, sh (and sleep)
        uids = set()
        for pid in members:
            with open(f"/proc/{pid}/status") as f:
                uids |= {int(v) for line in f if line.startswith("Uid:") for v in line.split()[1:]}
        assert uids == {TEST_UID_BASE + 3}
    finally:
        await box.destroy()


def test_the_server_environment_never_reaches_the_sandbox(api, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_TEST_SECRET", "hunter2")
    code = "tr '\\0' '\\n' < /proc/1/environ; echo ---; env | sort"
    result = api.run("bash", code)
    assert "hunter2" not in result["stdout"]
    assert "PLAYGROUND_TEST_SECRET" not in result["stdout"]
    names = {line.split("=", 1)[0] for line in result["stdout"].splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "TMPDIR", "LANG", "USER", "PWD", "SHLVL", "_", "OLDPWD"}


def test_only_the_standard_fds_are_open(api):
    code = (
        "import os\nopen_fds = []\nfor fd in range(3, 1024):\n    try:\n        os.fstat(fd)\n"
        "        open_fds.append(fd)\n    except OSError:\n        pass\nprint(open_fds)"
    )
    assert api.run("python", code)["stdout"] == "[]\n"


def test_the_sandbox_has_its_own_process_tree_and_hostname(api):
    code = (
        "import os, socket\nprint(os.getppid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(open('/proc/1/cmdline').read().split('\\0')[0], socket.gethostname())"
    )
    result = api.run("python", code)
    first, second = result["stdout"].splitlines()
    assert first == "1 [1, 2]"
    assert second == "/.sandbox-init sandbox"


def test_the_network_is_unreachable_even_on_loopback(api):
    # A server on the host's loopback: the sandbox has its own, empty network namespace.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        code = (
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n"
            "except OSError as e:\n    print('refused', e.errno)\nprint(open('/proc/net/dev').read().count(':'))"
        )
        result = api.run("python", code)
    finally:
        listener.close()
        thread.join()
    assert result["stdout"].startswith("refused")
    assert result["stdout"].splitlines()[1] == "1"  # only lo
    assert accepted == []


def test_new_user_namespaces_are_refused(api):
    result = api.run("bash", "unshare -U true && echo allowed || echo refused")
    assert result["stdout"].strip().endswith("refused")


def test_the_tmpfs_is_capped(api, settings):
    settings.RUNNER_TMPFS = 8
    code = (
        "import os\nn = 0\ntry:\n    for i in range(100):\n        with open(f'f{i}', 'wb') as f:\n"
        "            f.write(b'x' * (1 << 20))\n        n += 1\nexcept OSError as e:\n    print(e.errno)\nprint(n)"
    )
    result = api.run("python", code)
    errno_line, count = result["stdout"].splitlines()
    assert errno_line == "28"  # ENOSPC
    assert int(count) < 8


def test_dev_shm_cannot_bypass_the_tmpfs_cap(api):
    result = api.run("bash", "head -c 4000000 /dev/zero > /dev/shm/big; echo $?; stat -c %s /dev/shm/big")
    status, size = result["stdout"].split()
    assert status != "0"
    assert int(size) <= 1 << 20


def test_a_file_may_not_pass_the_size_limit(api, settings):
    settings.RUNNER_FILE_SIZE = 1
    code = "try:\n    open('big', 'wb').write(b'x' * (2 << 20))\nexcept OSError as e:\n    print('EFBIG', e.errno)"
    assert api.run("python", code)["stdout"] == "EFBIG 27\n"


def test_open_files_are_limited(api):
    code = (
        "fs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\nexcept OSError as e:\n"
        "    print(e.errno, len(fs) + 3)"
    )
    assert api.run("python", code)["stdout"] == "24 256\n"


def test_processes_are_limited(api):
    code = (
        "import os, time\nn = 0\ntry:\n    for i in range(200):\n        if os.fork() == 0:\n"
        "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('stopped', e.errno)\n"
        "print(n < 64)"
    )
    result = api.run("python", code, timeout=3000)
    assert result["stdout"].splitlines() == ["stopped 11", "True"]


def test_a_fork_bomb_is_contained_and_the_service_still_answers(api):
    # The bomb's first shell returns at once; its children die with the sandbox.
    api.run("bash", ":(){ :|:& };:", timeout=2000)
    # The shell lives through a second of its own bomb. It forks once, to start the bomb
    # while nothing else runs, then waits without forking: with the process limit reached,
    # a fork (a `sleep`, or the bomb's second half) waits on bash's fork retries (1 s, then
    # 2 s...), and whether one got through before the timeout was a race.
    wait = "end=$(( ${EPOCHREALTIME/./} + 1000000 )); while (( ${EPOCHREALTIME/./} < end )); do :; done"
    result = api.run("bash", f"f() {{ f | f & }}; f & {wait}; echo survived", timeout=3000)
    assert result["stdout"] == "survived\n"
    assert api.run("python", "print('still here')")["stdout"] == "still here\n"


@pytest.mark.parametrize(
    "language, code",
    [
        (
            "bash",
            "setsid sleep 1000 &\nnohup sleep 1000 >/dev/null 2>&1 &\n(sleep 1000 &) ; disown -a; echo started",
        ),
        (
            "python",
            "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        import time\n        time.sleep(1000)\n    os._exit(0)\nprint('started')",
        ),
        (
            "javascript",
            "require('child_process').spawn('sleep', ['1000'], {detached: true, stdio: 'ignore'}).unref();\n"
            "console.log('started')",
        ),
    ],
)
def test_daemons_die_with_the_run(api, language, code):
    # The autouse fixture then proves no process of the sandbox is left on the host.
    result = api.run(language, code)
    assert result["stdout"] == "started\n"
    assert result["status"] == "ok"


def test_an_orphan_holding_stdout_does_not_hold_the_run(api):
    result = api.run("bash", "(sleep 1000; echo late) &\necho early", timeout=5000)
    assert result["status"] == "ok"
    assert result["stdout"] == "early\n"


def test_a_timeout_kills_daemons_too(api):
    code = "setsid bash -c 'while true; do sleep 0.1; done' &\nwhile true; do :; done"
    result = api.run("bash", code, timeout=700)
    assert result["status"] == "timeout"


def test_a_program_cannot_kill_its_reporter(api):
    result = api.run("bash", "kill -9 1 2>/dev/null; kill -9 -1 2>/dev/null; echo alive; exit 4")
    assert result["exitCode"] == 4 or result["signal"] == "SIGKILL"
    assert result["status"] == "error"


def test_code_is_placed_by_the_sandbox_not_the_host(api):
    # The main file lives on the run's own tmpfs, owned by the sandbox user: no host
    # directory is shared, so a planted symlink has nothing on the host to point the host at.
    code = (
        "import os\nst = os.lstat(__file__)\nprint(__file__, st.st_uid, os.path.islink(__file__))\n"
        "print([l.split()[4] for l in open('/proc/self/mountinfo') if l.split()[4] == '/tmp'])"
    )
    result = api.run("python", code)
    assert result["stdout"] == "/tmp/main.py 1000 False\n['/tmp']\n"
    mounts = api.run("bash", "grep ' /tmp ' /proc/self/mounts | cut -d' ' -f1,3")["stdout"]
    assert mounts == "tmpfs tmpfs\n"


def test_the_cpu_is_throttled_to_the_quota(api, settings):
    if not cgroups.support().has("cpu"):
        pytest.skip("no cpu cgroup controller on this host")
    settings.RUNNER_CPUS = 0.25
    code = (
        "import os\nwith open('/proc/self/stat') as f: pass\nimport time\nt = time.monotonic()\n"
        "while time.monotonic() - t < 0.6: pass\nprint(round(os.times().user + os.times().system, 2))"
    )
    used = float(api.run("python", code)["stdout"])
    assert used < 0.45  # a quarter of a core over 0.6 s is about 0.15 s of CPU


def test_sandbox_tools_dir_exists():
    assert os.access(os.path.join(django_settings.RUNNER_TOOLS_DIR, "sandbox-init"), os.X_OK)


def test_a_program_can_open_its_own_stdout_and_stderr_by_name(api):
    result = api.run("bash", "echo out > /dev/stdout; echo err > /dev/stderr; cat /dev/stdin", stdin="in\n")
    assert (result["stdout"], result["stderr"], result["exitCode"]) == ("out\nin\n", "err\n", 0)
    result = api.run("python", "print('to stderr', file=open('/dev/stderr', 'w'))")
    assert (result["stderr"], result["exitCode"]) == ("to stderr\n", 0)


def test_an_adopted_process_still_exiting_is_reaped_not_left_a_zombie():
    # An orphaned sandbox init leaves its cgroup a moment before it becomes a zombie: the
    # sweep after an OOM-killed bwrap must wait for it, not skip it as still running.
    uid = TEST_UID_BASE + 1500  # above every run and pool slot
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            threading.Event().wait(0.2)
        finally:
            os._exit(0)
    threading.Event().wait(0.05)  # it has taken its uid, and is not a zombie yet
    process.reap_orphans(uid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
