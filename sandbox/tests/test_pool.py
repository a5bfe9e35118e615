"""Pre-warmed sandboxes: a run handed to one behaves exactly as a run started cold."""

import asyncio
import subprocess
import time

import pytest

from engine.backends.local import STARTS
from sandbox.pool import POOL, hand_over

COMPARED = ["language", "exitCode", "stdout", "stderr", "timedOut", "truncated", "signal", "status"]


def run_both(api, settings, language, code, **body) -> tuple[dict, dict]:
    """The same run, cold and then warm; each checked to have taken its path."""
    results = []
    for size, path in ((0, "cold"), (2, "warm")):
        settings.RUNNER_POOL_SIZE = size
        if size:
            api.run("bash", "true")  # starts the pools for this configuration
            assert POOL.settle()
        before = STARTS[path]
        results.append(api.run(language, code, **body))
        assert STARTS[path] == before + 1
    return results[0], results[1]


@pytest.mark.parametrize(
    "language, code, body",
    [
        ("python", "import sys\nprint(sys.argv, __name__, __file__)\nsys.exit(3)", {"args": ["a", "b c"]}),
        ("python", "print(sorted(k for k in globals() if not k.startswith('__')))", {}),
        ("python", "import sys\nprint([m for m in ('atexit', 'gc', 'json') if m in sys.modules])", {}),
        ("python", "print(input()[::-1])\nimport sys\nprint(sys.stdin.read())", {"stdin": "abc\nrest"}),
        ("python", "def f():\n    raise ValueError('boom')\nf()", {}),
        # The pooled loader ends the process itself: what a program sees of shutdown is the same.
        ("python", "import sys\nsys.exit('bye')", {}),
        ("python", "import atexit\natexit.register(print, 'atexit ran')\nprint('main')", {}),
        (
            "python",
            "import threading, time\n"
            "def later():\n    time.sleep(0.2)\n    print('thread done')\n"
            "threading.Thread(target=later).start()\nprint('main done')",
            {},
        ),
        ("python", "class A:\n    def __del__(self):\n        print('finalized')\na = A()", {}),
        # A cycle is left for the last collection, which looks only at the run's own objects.
        ("python", "class A:\n    def __del__(self):\n        print('collected')\na = A()\na.me = a", {}),
        ("python", "import sys\nsys.stdout.write('no newline')\nraise SystemExit(None)", {}),
        ("python", "import os, sys\nsys.stdout.flush()\nos.close(1)\nprint('lost')", {}),
        (
            "python",
            "from lib.util import f\nprint(f())",
            {"files": {"lib/util.py": "def f(): return 42", "lib/__init__.py": ""}},
        ),
        (
            "javascript",
            "console.log(process.argv.slice(2), require.main === module)\nprocess.exit(4)",
            {"args": ["x"]},
        ),
        ("javascript", "console.log(Object.keys(require.cache), module.children.length)", {}),
        ("javascript", "import os from 'node:os';\nconsole.log(typeof os.cpus, import.meta.url)", {}),
        (
            "javascript",
            "console.log(require('./util.js').f())",
            {"files": {"util.js": "exports.f = () => 42"}},
        ),
        (
            "javascript",
            "process.stdin.on('data', (d) => process.stdout.write(d.toString().toUpperCase()))",
            {"stdin": "shout"},
        ),
        (
            "typescript",
            "import { f } from './util';\nconst x: number = await Promise.resolve(f());\nconsole.log(x, process.argv.slice(2))",
            {"files": {"util.ts": "export const f = (): number => 42"}, "args": ["t"]},
        ),
        ("typescript", "const a: number = 1;\n\nthrow new Error('line three');", {}),
        ("typescript", "console.log(typeof module, typeof require, process.argv.length)", {"args": ["a"]}),
        ("typescript", "exports.x = 1;\nconsole.log(typeof module, import.meta.url)", {}),
        (
            "typescript",
            "process.stdin.on('data', (d) => process.stdout.write(String(d).toUpperCase()));\nprocess.exitCode = 3;",
            {"stdin": "shout"},
        ),
        ("typescript", "Promise.reject(new Error('unhandled'));", {}),
        ("typescript", "const x: number = ;", {}),
        (
            "typescript",
            "class C { accessor n = 1 }\n{ using r = { [Symbol.dispose]() {} }; }\nconsole.log(new C().n)",
            {},
        ),
        (
            "bash",
            'echo "$0" "$@"; read -r line; echo "got $line"; exit 7',
            {"args": ["p q"], "stdin": "in\n"},
        ),
        ("bash", "trap '' PIPE; exec dd if=/dev/zero of=big bs=1M count=100", {}),
        ("bash", "env | sort | grep -v '^_=' ", {}),
        # A compiled language's waiting sandbox is told both command lines at the hand-over.
        (
            "c",
            '#include <stdio.h>\n#include "util.h"\nint main(int c, char **v) {\n'
            "  char line[64]; fgets(line, sizeof line, stdin);\n"
            '  printf("%s %d %d %s", v[1], twice(c), SHOUT, line); return 3; }',
            {
                "files": {"util.h": "int twice(int);", "lib/util.c": "int twice(int x) { return 2 * x; }"},
                "args": ["first arg"],
                "stdin": "typed\n",
                "compilerOptions": ["-DSHOUT=5", "-O0"],
            },
        ),
        ("c", "int main(void) { return nope; }", {}),
        ("c", "#include <stdio.h>\nint main(void) { int c; while ((c = getchar()) != EOF) putchar(c); }", {}),
        (
            "cpp",
            "#include <iostream>\nint main() { std::string s; std::cin >> s; std::cout << s.size(); }",
            {"stdin": "four"},
        ),
        (
            "go",
            'package main\n\nimport "os"\n\nfunc main() { println(len(os.Args)); os.Exit(5) }',
            {"args": ["a"]},
        ),
        ("rust", 'fn main() { panic!("at the disco"); }', {}),
        (
            "java",
            'public class Greeter { public static void main(String[] a) { assert a.length > 9 : "on"; } }',
            {"runArgs": ["-ea"]},
        ),
    ],
)
def test_a_warm_run_matches_a_cold_one(api, settings, language, code, body):
    cold, warm = run_both(api, settings, language, code, **body)
    assert {k: warm[k] for k in COMPARED} == {k: cold[k] for k in COMPARED}
    stage = ["stdout", "stderr", "exitCode", "signal", "status"]
    if cold["compile"] is None:
        assert warm["compile"] is None
    else:
        assert {k: warm["compile"][k] for k in stage} == {k: cold["compile"][k] for k in stage}


@pytest.mark.parametrize(
    "language, code, body",
    [
        ("python", "while True: pass", {"timeout": 400}),
        ("python", "x = bytearray(200 * 1024 * 1024)", {"memory": 64}),
        ("javascript", "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));", {"memory": 96}),
        ("python", "while True:\n    print('y' * 99)", {}),
        (
            "python",
            "fs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\nexcept OSError as e:\n    print(e.errno)",
            {},
        ),
        (
            "python",
            "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time; time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(e.errno, n < 64)",
            {"timeout": 3000},
        ),
        ("bash", "head -c 20M /dev/zero > big; echo $?", {}),
        ("c", "int main(void) { for (;;); }", {"timeout": 400}),
        (
            "c",
            "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) memset(malloc(1 << 20), 1, 1 << 20); }",
            {"memory": 64},
        ),
        # The compile's own limits, set at the hand-over: a template that takes too long to
        # expand, and javac given less time than it takes.
        (
            "cpp",
            "template<int N> struct F { enum { v = F<N-1>::v + F<N-2>::v }; };\n"
            "template<> struct F<0> { enum { v = 0 }; }; template<> struct F<1> { enum { v = 1 }; };\n"
            "int main() { return F<200000>::v; }",
            {"compileTimeout": 500},
        ),
        ("java", "public class Main { public static void main(String[] a) {} }", {"compileTimeout": 100}),
    ],
)
def test_every_limit_holds_in_a_warm_sandbox(api, settings, language, code, body):
    cold, warm = run_both(api, settings, language, code, **body)
    if language in ("cpp", "java"):  # the compile's own limits
        assert warm["compile"]["status"] == cold["compile"]["status"] != "ok", (cold, warm)
    assert (warm["status"], warm["stdout"][:200], warm["signal"]) == (
        cold["status"],
        cold["stdout"][:200],
        cold["signal"],
    )


# How a Node program ends: runtimes/node-preload.cjs ends one that ends by itself as
# process.exit() does, after the "exit" event. Each program's stdout, exit code and report
# are compared with the same program under plain node, outside any sandbox.
NODE_ENDINGS = [
    ("console.log(1)", ""),
    (
        "process.on('exit', (c) => { console.log('exit', c); process.exitCode = 5; });\nconsole.log('main')",
        "",
    ),
    ("process.on('exit', (c) => console.log('exit', c));\nthrow new Error('boom')", "Error: boom"),
    ("process.on('exit', () => { process.exitCode = 2; });\nthrow new Error('boom')", "Error: boom"),
    ("Promise.reject(new Error('rejected'))", "Error: rejected"),
    (
        "let n = 0;\nprocess.on('beforeExit', () => { if (n++ < 2) setTimeout(() => console.log('again', n), 1); })",
        "",
    ),
    ("process.emit('exit', 0);\nconsole.log('still here')", ""),
    (
        "process.on('uncaughtException', (e) => console.log('caught', e.message));\n"
        "process.on('exit', (c) => console.log('exit', c));\nsetTimeout(() => { throw new Error('x'); }, 1)",
        "",
    ),
    (
        "const { Worker } = require('worker_threads');\n"
        "new Worker(\"require('worker_threads').parentPort.postMessage(1)\", { eval: true })\n"
        "  .on('message', (m) => console.log('got', m)).on('exit', (c) => console.log('worker exit', c))",
        "",
    ),
    ("process.exitCode = 3;\nprocess.stdout.write('x'.repeat(300000))", ""),
    ("import fs from 'node:fs';\nconsole.log((await fs.promises.readFile('main.js', 'utf8')).length)", ""),
    ("await new Promise(() => {})", ""),  # exit code 13
]


@pytest.mark.parametrize("code, report", NODE_ENDINGS)
def test_a_node_program_ends_as_under_plain_node(api, settings, tmp_path, code, report):
    (tmp_path / "main.js").write_text(code)
    plain = subprocess.run(
        ["/usr/bin/node", "--experimental-detect-module", "main.js"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30,
    )  # fmt: skip
    assert report in plain.stderr and (report or plain.stderr == "")
    for result in run_both(api, settings, "javascript", code):
        assert (result["stdout"], result["exitCode"]) == (plain.stdout, plain.returncode)
        assert report in result["stderr"] and (report or result["stderr"] == ""), result["stderr"]


def test_a_warm_sandbox_serves_one_run_only(api, settings):
    settings.RUNNER_POOL_SIZE = 1
    api.run("bash", "true")
    assert POOL.settle()
    api.run("bash", "echo left > /tmp/mark")
    assert POOL.settle()
    second = api.run("bash", "ls /tmp; echo $$")
    assert "mark" not in second["stdout"]
    assert STARTS["warm"] >= 2


def test_idle_time_is_not_run_time(api, settings):
    settings.RUNNER_POOL_SIZE = 1
    api.run("bash", "true")
    assert POOL.settle()
    time.sleep(1.5)  # the sandbox waits, but its clock starts at hand-over
    before = STARTS["warm"]
    result = api.run("python", "import time\ntime.sleep(0.3)\nprint('done')", timeout=1000)
    assert STARTS["warm"] == before + 1
    assert result["status"] == "ok" and result["stdout"] == "done\n"
    assert 250 <= result["duration"] < 1000


def test_a_compiled_languages_idle_time_is_neither_its_compile_time_nor_its_run_time(api, settings):
    settings.RUNNER_POOL_SIZE = 1
    api.run("bash", "true")
    assert POOL.settle()
    time.sleep(2.5)  # the sandbox waits with both stages' pool-exec; the clocks start at hand-over
    before = STARTS["warm"]
    code = '#include <unistd.h>\n#include <stdio.h>\nint main(void) { usleep(300000); puts("done"); }'
    result = api.run("c", code, timeout=2000)
    assert STARTS["warm"] == before + 1
    assert result["status"] == "ok" and result["stdout"] == "done\n"
    assert 250 <= result["duration"] < 2000
    assert 0 < result["compile"]["duration"] < 2500


def test_an_empty_pool_means_a_cold_start_never_a_refusal(api, settings):
    settings.RUNNER_POOL_SIZE = 1
    api.run("bash", "true")
    assert POOL.settle()
    before = dict(STARTS)
    results = [api.run("python", "print(1)") for _ in range(3)]  # faster than the pool refills
    assert all(r["stdout"] == "1\n" for r in results)
    assert STARTS["warm"] + STARTS["cold"] == before["warm"] + before["cold"] + 3


def test_a_waiting_sandbox_yields_the_cpu_and_a_taken_one_gets_it_back(api, settings):
    from sandbox import cgroups

    support = cgroups.support()
    if not support.has("cpu"):
        pytest.skip("no cpu controller on this host")
    settings.RUNNER_POOL_SIZE = 1
    settings.RUNNER_ZYGOTE = False  # (a zygote is lent to a run, and keeps its weight after)
    api.run("bash", "true")
    assert POOL.settle()

    def weight(box) -> int:
        if support.version == 2:
            return int(open(f"{box.cgroup.dirs['']}/cpu.weight").read())
        return int(open(f"{box.cgroup.dirs['cpu']}/cpu.shares").read())

    from runner import conf

    box = POOL.take("python", conf.backend().pool)
    try:
        # Handed its run: back to the default weight (v1 shows it as 1024 shares).
        asyncio.run(hand_over(box, {"main.py": b"pass"}, [], b""))
        assert weight(box) in (cgroups.DEFAULT_CPU_WEIGHT, 1024)
        assert POOL.settle()
        waiting = POOL._boxes["python"][0]
        assert weight(waiting) * 50 <= weight(box)  # 1 against 100, or 10 shares against 1024
    finally:
        box.discard()


def test_size_zero_turns_the_pool_off(api, settings):
    settings.RUNNER_POOL_SIZE = 0
    before = STARTS["warm"]
    assert api.run("python", "print(2)")["stdout"] == "2\n"
    assert STARTS["warm"] == before


def test_the_sweep_removes_the_empty_cgroups_an_earlier_server_of_ours_left(monkeypatch):
    """Also the empty ones it kept for reuse; but not those of a server still running."""
    import os

    from runner import conf
    from sandbox import cgroups, pool

    support = cgroups.support()
    if not support.version:
        pytest.skip("no cgroups on this host")
    made = []
    for mount in support.mounts.values():
        parent = os.path.join(mount, conf.get().host.cgroup_parent)
        names = (
            "slot7-deadbeef0001",  # made before the maker's pid was in the name
            "pool107-deadbeef0002",
            "other-deadbeef0003",
            f"slot8-pid{os.getppid()}-00000004",  # a live process's
            "pool9-pid999999999-00000005",  # no such process
            f"slot10-pid{os.getpid()}-00000006",  # an earlier process's that had this pid
        )
        for name in names:
            os.makedirs(os.path.join(parent, name), exist_ok=True)
            made.append(os.path.join(parent, name))
    # And a spare this process keeps for reuse, made (as any group here) with this pid.
    spare = cgroups.Cgroup.create(
        support,
        conf.get().host.cgroup_parent,
        cgroups.name("slot", 11),
        memory_bytes=1 << 26,
        pids=8,
        cpus=1.0,
    )
    assert spare.release()
    monkeypatch.setattr(pool, "SWEEP_AGE_SECONDS", -1)  # as if they were made long ago
    try:
        pool.sweep(conf.get().host)
        left = {os.path.basename(path) for path in made if os.path.isdir(path)}
        # Only what a server of ours makes is swept, and only once that server is gone.
        assert left == {"other-deadbeef0003", f"slot8-pid{os.getppid()}-00000004"}
        assert all(os.path.isdir(d) for d in spare.dirs.values())
    finally:
        for path in made:
            if os.path.isdir(path):
                os.rmdir(path)
        cgroups.remove_spares()


def test_the_sweep_knows_a_dead_maker_by_its_pid_and_start_time_not_by_age():
    """A server restarted at once (Restart=always) finds its killed predecessor's newest groups:
    they go now, not after an age; a live server's stay, even one that reuses a dead one's pid."""
    import os
    import subprocess

    from runner import conf
    from sandbox import cgroups, pool, process

    support = cgroups.support()
    if not support.version:
        pytest.skip("no cgroups on this host")
    child = subprocess.Popen(["true"])
    child.wait()
    dead = f"pid{child.pid}.{process.started(os.getpid())}"  # that pid runs nothing now
    live = f"pid{os.getppid()}.{process.started(os.getppid())}"
    reused = f"pid{os.getppid()}.{process.started(os.getppid()) + 1}"  # the pid, but not the process
    names = {
        f"slot3-{dead}-0000aaaa": False,
        f"pool104-{reused}-0000bbbb": False,
        f"slot4-{live}-0000cccc": True,
    }
    made = []
    for mount in support.mounts.values():
        parent = os.path.join(mount, conf.get().host.cgroup_parent)
        for name in names:
            os.makedirs(os.path.join(parent, name), exist_ok=True)  # just made: young
            made.append(os.path.join(parent, name))
    try:
        pool.sweep(conf.get().host)
        left = {os.path.basename(path) for path in made if os.path.isdir(path)}
        assert left == {name for name, kept in names.items() if kept}
    finally:
        for path in made:
            if os.path.isdir(path):
                os.rmdir(path)


def test_a_refill_waits_for_a_quiet_moment_while_two_still_wait(api, settings, monkeypatch):
    """A launch holds the server's GIL a while: while two sandboxes still wait (the next two runs
    are served), it waits until none has been taken for a moment, so as not to land on the next
    run of a client sending runs back to back; with fewer waiting, it comes at once."""
    from runner import conf
    from sandbox import pool

    settings.RUNNER_POOL_SIZE = 3
    api.run("bash", "true")
    assert POOL.settle()
    monkeypatch.setattr(pool, "REFILL_QUIET_SECONDS", 2.0)
    monkeypatch.setattr(pool, "REFILL_WAIT_MAX_SECONDS", 5.0)
    config = conf.backend().pool
    taken = []
    try:
        taken.append(POOL.take("bash", config))
        time.sleep(0.8)
        assert len(POOL.idle("bash")) == 2  # not refilled yet: no quiet moment so far
        assert POOL.settle(timeout=10)  # then it is
        assert len(POOL.idle("bash")) == 3

        taken += [POOL.take("bash", config), POOL.take("bash", config)]
        assert all(taken) and len(POOL.idle("bash")) == 1
        time.sleep(0.8)
        assert len(POOL.idle("bash")) == 2  # one at once; the third waits for a quiet moment
        assert POOL.settle(timeout=10)
    finally:
        for box in taken:
            if box:
                box.discard()


def test_a_stream_of_takes_does_not_put_off_a_pool_s_refill(api, settings):
    """A pool short of sandboxes refills 10 ms after it came to be so, however often sandboxes are
    taken meanwhile, of it or of other languages' pools."""
    from runner import conf

    settings.RUNNER_POOL_SIZE = 2
    api.run("bash", "true")
    assert POOL.settle()
    config = conf.backend().pool
    taken = [POOL.take("bash", config)]
    try:
        # Runs of other languages, and of Bash, one every 4 ms for a second: each takes a sandbox.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for name in ("lua", "perl", "bash"):
                taken.append(POOL.take(name, config))
                time.sleep(0.004)
        assert sum(box is not None for box in taken) > 6  # refilled meanwhile, not only at the end
    finally:
        for box in taken:
            if box:
                box.discard()


def test_each_refill_comes_a_moment_after_the_take_that_left_its_pool_short(api, settings, monkeypatch):
    """The moment a pool came to be short is forgotten once it is full again: the next take's
    refill waits its delay too, rather than launching at once, in the middle of the run that took
    the sandbox."""
    from runner import conf
    from sandbox import pool

    settings.RUNNER_POOL_SIZE = 2
    api.run("bash", "true")
    assert POOL.settle()
    monkeypatch.setattr(pool, "REFILL_DELAY_SECONDS", 0.6)
    config = conf.backend().pool
    taken = []
    try:
        for _ in range(2):
            time.sleep(0.7)  # (launches are REFILL_DELAY_SECONDS apart)
            taken.append(POOL.take("bash", config))
            time.sleep(0.3)
            assert len(POOL.idle("bash")) == 1  # not refilled yet
            assert POOL.settle(timeout=10)
            assert len(POOL.idle("bash")) == 2
    finally:
        for box in taken:
            if box:
                box.discard()


def test_a_take_s_wake_puts_the_pool_s_look_off_until_its_refill_is_due(api, settings, monkeypatch):
    """Woken by a take, the pool's thread goes back to waiting at once, until the take's refill may be
    due: its whole look (which pools want what, whether to launch) would hold the GIL between the run's
    take and its hand-over, only to find it has to wait."""
    from runner import conf
    from sandbox import pool

    settings.RUNNER_POOL_SIZE = 2
    api.run("bash", "true")
    assert POOL.settle()
    config = conf.backend().pool
    looks = []
    look = POOL._refill_pause
    monkeypatch.setattr(POOL, "_refill_pause", lambda *args: (looks.append(time.monotonic()), look(*args))[1])
    taken_at = time.monotonic()
    box = POOL.take("bash", config)
    try:
        assert POOL.settle()
        assert looks and looks[0] - taken_at >= pool.REFILL_DELAY_SECONDS
        assert len(POOL.idle("bash")) == 2
    finally:
        if box:
            box.discard()
