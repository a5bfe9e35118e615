"""The battery: hostile programs, each contained, the service still answering, nothing left behind.

A new case is one entry in CASES. Every case is checked three ways:
  1. the attack is contained: the result is what the entry expects;
  2. the service still answers correctly right after it;
  3. nothing is left on the host: no sandbox process or cgroup (the autouse fixture in
     conftest.py), no new entry in /tmp, no open fd in the server, no canary triggered.
Tokens like %TCP% in a program are replaced by the canaries' addresses.
"""

import os
import socket
import threading
import uuid

import pytest
from django.conf import settings as django_settings

from engine import languages
from engine.backends.local import STARTS
from sandbox.pool import POOL

from .battery import Case
from .hostile_compiled import CASES as COMPILED_CASES

SECRET = f"canary-secret-{uuid.uuid4().hex}"

# A Python prelude for raw system calls: sc(nr, ...) prints the errno, or "allowed".
SYSCALL = (
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    "def sc(nr, *args):\n"
    "    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])\n"
    "    return ctypes.get_errno() if r == -1 else 'allowed'\n"
)
EPERM, ENOSYS, EAFNOSUPPORT = "1", "38", "97"


def _host_fact(path: str, prefix: str = "") -> tuple[str, ...]:
    """A fact of this host a sandbox must not tell: the line of path that starts with prefix."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix) and line.strip():
                    return (line.split(":", 1)[1].strip() if prefix else line.strip(),)
    except OSError:
        pass
    return ()


HOST_CPU_MODEL = _host_fact("/proc/cpuinfo", "model name")
HOST_BOOT_ID = _host_fact("/proc/sys/kernel/random/boot_id")
HOST_CMDLINE = _host_fact("/proc/cmdline")
HOST_MEMORY = _host_fact("/proc/meminfo", "MemTotal")  # "24683664 kB"


def py_syscall(name, call, expected):
    return Case(name, "python", SYSCALL + f"print(sc({call}))", stdout=f"{expected}\n")


CASES = [
    # --- resources ---
    Case("fork bomb", "bash", ":(){ :|:& };:", status=("ok", "error", "timeout")),
    Case("fork bomb that waits", "bash", "f() { f | f & }; f; wait", status=("ok", "error", "timeout")),
    Case(
        "fork loop",
        "python",
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(10)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('stopped', e.errno, n < 64)",
        stdout="stopped 11 True\n",
        timeout=4000,
    ),
    Case(
        "thread storm",
        "python",
        "import threading, time\nts = []\ntry:\n    for _ in range(1000):\n        t = threading.Thread(target=time.sleep, args=(5,), daemon=True)\n        t.start()\n        ts.append(t)\nexcept RuntimeError as e:\n    print('stopped', len(ts) < 64)",
        stdout="stopped True\n",
        timeout=4000,
    ),
    Case(
        "worker thread storm",
        "javascript",
        "const { Worker } = require('worker_threads');\nfor (let i = 0; i < 200; i++) new Worker('setInterval(() => {}, 1000)', { eval: true });",
        status=("error", "memory", "timeout"),
    ),
    Case(
        "memory bomb: a Python list",
        "python",
        "x = []\nwhile True:\n    x.append(' ' * 10**6)",
        status="memory",
        signal="SIGKILL",
    ),
    Case(
        "memory bomb: one huge allocation",
        "python",
        "x = bytearray(8 * 1024**3)\nprint('allocated')",
        status=("memory", "error"),
        lacks=("allocated",),
    ),
    Case(
        "memory bomb: a Node Buffer",
        "javascript",
        "const b = Buffer.alloc(2 ** 31 - 1, 1);\nconsole.log('allocated', b.length)",
        status=("memory", "error"),
        lacks=("allocated",),
    ),
    Case(
        "memory bomb: Node arrays",
        "javascript",
        "const a = [];\nfor (;;) a.push(new Array(1e6).fill(1.5));",
        status=("memory", "error"),
        timeout=5000,
    ),
    Case(
        "memory bomb: tmpfs pages",
        "bash",
        "for i in $(seq 60); do head -c 15M /dev/zero > f$i || break; done; echo wrote",
        memory=32,
        status="memory",
        lacks=("wrote",),
    ),
    Case(
        "fill /tmp",
        "bash",
        "for i in $(seq 100); do head -c 10M /dev/zero > /tmp/f$i || break; done\ndf -k /tmp | tail -1 | awk '{print ($3 <= 65536)}'",
        contains=("No space left",),
        stdout="1\n",
    ),
    Case(
        "fill the working directory",
        "python",
        "i = 0\ntry:\n    while True:\n        open(f'f{i}', 'wb').write(b'x' * (4 << 20))\n        i += 1\nexcept OSError as e:\n    print(e.errno, i <= 16)",
        stdout="28 True\n",
    ),
    Case(
        "one huge file",
        "bash",
        "exec dd if=/dev/zero of=big bs=1M count=100",
        status="error",
        signal="SIGXFSZ",
    ),
    Case(
        "fd exhaustion",
        "python",
        "fs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\nexcept OSError as e:\n    print(e.errno, len(fs) < 256)",
        stdout="24 True\n",
    ),
    Case("endless stdout", "python", "while True:\n    print('spam' * 100)", status="output_limit"),
    Case("stderr flood", "bash", "yes flood >&2", status="output_limit"),
    Case(
        "one huge line",
        "javascript",
        "process.stdout.write('x'.repeat(1 << 22));",
        status="output_limit",
        lacks=("\n",),
    ),
    Case("invalid UTF-8 and NUL bytes", "bash", "printf 'a\\xff\\xfeb\\x00c'", stdout="a\ufffd\ufffdb\x00c"),
    Case("busy loop", "javascript", "for (;;) {}", status="timeout", timeout=800),
    Case(
        "spinning worker threads",
        "javascript",
        "const { Worker } = require('worker_threads');\nfor (let i = 0; i < 4; i++) new Worker('for (;;) {}', { eval: true });",
        status="timeout",
        timeout=1000,
    ),
    Case(
        "spinning threads",
        "python",
        "import threading\ndef spin():\n    while True:\n        pass\nfor _ in range(4):\n    threading.Thread(target=spin).start()",
        status="timeout",
        timeout=800,
    ),
    Case("sleeping forever", "bash", "sleep infinity", status="timeout", timeout=500),
    Case("waiting on stdin", "python", "input()", status="error", contains=("EOFError",)),
    Case("reading stdin in bash", "bash", 'read -r x; echo "got:$x:"', stdout="got::\n"),
    # --- escape from the run's lifetime ---
    Case("setsid daemon", "bash", "setsid bash -c 'sleep 1000' &\necho started", stdout="started\n"),
    Case("nohup daemon", "bash", "nohup sleep 1000 >/dev/null 2>&1 &\necho started", stdout="started\n"),
    Case("disowned job", "bash", "sleep 1000 &\ndisown\necho started", stdout="started\n"),
    Case(
        "double-fork daemon",
        "python",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\n    os._exit(0)\nprint('started')",
        stdout="started\n",
    ),
    Case(
        "detached Node child",
        "javascript",
        "require('child_process').spawn('sleep', ['1000'], { detached: true, stdio: 'ignore' }).unref();\nconsole.log('started')",
        stdout="started\n",
    ),
    Case(
        "orphan holding the stdout pipe",
        "bash",
        "(sleep 1000; echo late) &\necho early",
        stdout="early\n",
        timeout=5000,
    ),
    Case(
        "unreaped zombies",
        "python",
        "import os, time\nfor _ in range(40):\n    if os.fork() == 0:\n        os._exit(0)\ntime.sleep(0.3)\nprint('left zombies')",
        stdout="left zombies\n",
    ),
    Case("kill(-1)", "bash", "sleep 1000 &\nkill -9 -1\necho alive", stdout="alive\n"),
    Case(
        "killing the parent",
        "python",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('parent', os.getppid())",
        stdout="parent 1\n",
    ),
    Case(
        "a daemon outliving a timeout",
        "bash",
        "setsid bash -c 'while :; do sleep 0.1; done' &\nwhile :; do :; done",
        status="timeout",
        timeout=700,
    ),
    # --- host data ---
    Case("/etc/shadow", "python", "open('/etc/shadow')", status="error", contains=("FileNotFoundError",)),
    Case(
        "the project's files, settings and database",
        "python",
        "import os\nprint([os.path.exists(p) for p in ['%BASE%', '%BASE%/playground/settings.py', '%DB%', '/work', '/root']])",
        stdout="[False, False, False, False, False]\n",
    ),
    Case(
        "environ and every cmdline",
        "bash",
        "cat /proc/self/environ /proc/1/environ | tr '\\0' '\\n'\nfor f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done",
        lacks=("daphne", "pytest", "manage.py", "DJANGO_SETTINGS_MODULE"),
    ),
    Case(
        "other processes",
        "python",
        "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
        stdout="[1, 2]\n",
    ),
    Case(
        "inherited fds",
        "python",
        "import os\nleft = []\nfor fd in range(3, 4096):\n    try:\n        os.fstat(fd)\n        left.append(fd)\n    except OSError:\n        pass\nprint(left)",
        stdout="[]\n",
    ),
    Case(
        "writes outside the working directory",
        "bash",
        'for f in /x /usr/x /usr/bin/python3 /etc/x /proc/x /dev/x /var/x; do (echo > $f) 2>/dev/null && echo "wrote $f"; done; echo done',
        stdout="done\n",
    ),
    Case(
        "symlinks planted for the host",
        "bash",
        "for n in main.sh main.py main.js main.ts .main.mjs .main.cjs stdout stderr status result.json input; do ln -sf /etc/passwd $n 2>/dev/null; ln -sf /root/.ssh ${n}.d; done; ls -A | wc -l",
        stdout="22\n",
    ),
    Case(
        "hard links to runtime files",
        "bash",
        "ln /usr/bin/python3 py 2>&1; ln /opt/esbuild eb 2>&1; ls",
        contains=("Invalid cross-device link",),
        lacks=("py\n",),
    ),
    Case(
        "setuid binaries",
        "bash",
        "su root -c id </dev/null 2>&1; mount -t tmpfs x /tmp 2>&1; id -u; grep -c nosuid /proc/self/mounts",
        lacks=("uid=0",),
        contains=("1000\n",),
    ),
    Case(
        "/dev/mem, /dev/kmsg and disks",
        "bash",
        "ls /dev | tr '\\n' ' '; for d in /dev/mem /dev/kmem /dev/kmsg /dev/vda /dev/sda /dev/port; do [ -e $d ] && echo \"found $d\"; done; echo",
        stdout="core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero \n",
    ),
    # --- kernel surface ---
    Case("mount", "bash", "mkdir m; mount -t tmpfs none m 2>&1 || echo refused", contains=("refused",)),
    py_syscall("mount syscall", "165, 0, 0, 0, 0, 0", EPERM),
    Case("nested user namespace", "bash", "unshare -U true 2>&1 || echo refused", contains=("refused",)),
    py_syscall("unshare syscall", "272, 0x10000000", EPERM),
    py_syscall("clone with a namespace flag", "56, 0x40000000 | 17, 0, 0, 0, 0", EPERM),
    py_syscall("setns", "308, 0, 0", EPERM),
    # Linux AIO: a host-wide pool (fs.aio-max-nr) one run could fill for every process on the host.
    py_syscall("io_setup, the host's AIO pool", "206, 4096, 0", ENOSYS),
    Case(
        "io_setup sixteen times over",
        "python",
        SYSCALL + "ctx = ctypes.c_ulong(0)\nprint({sc(206, 4096, ctypes.addressof(ctx)) for _ in range(16)})",
        stdout="{38}\n",
    ),
    # inotify: every sandbox binds the same host inodes, so a watch would see other runs' opens.
    py_syscall("inotify_init1", "294, 0", ENOSYS),
    py_syscall("inotify_init", "253", ENOSYS),
    Case(
        "inotify on /usr/bin, from Python",
        "python",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.inotify_init1(0)\n"
        "print(fd, ctypes.get_errno())\nprint(libc.inotify_add_watch(fd, b'/usr/bin', 0xfff), ctypes.get_errno())",
        stdout="-1 38\n-1 38\n",
    ),
    Case(
        "fs.watch on /usr/bin",
        "javascript",
        "const fs = require('fs');\ntry { fs.watch('/usr/bin', () => {}); console.log('watching'); }\ncatch (e) { console.log(e.code); }",
        stdout="ENOSYS\n",
    ),
    # /proc: the host's facts and host-wide counters, masked with the run's own view.
    Case(
        "the host's uptime and load",
        "bash",
        "cat /proc/uptime /proc/loadavg",
        stdout="0.00 0.00\n0.00 0.00 0.00 1/1 1\n",
    ),
    Case(
        "forks, CPU time and interrupts since boot",
        "bash",
        "grep -E '^(cpu |intr|ctxt|processes|procs_running)' /proc/stat",
        stdout="cpu  0 0 0 0 0 0 0 0 0 0\nintr 0\nctxt 0\nprocesses 1\nprocs_running 1\n",
    ),
    Case(
        "the host's memory",
        "python",
        "print(open('/proc/meminfo').read(200))",
        contains=("MemTotal:       16777216 kB\nMemFree:        16777216 kB\n",),  # a neutral 16 GiB
        lacks=HOST_MEMORY,
    ),
    Case(
        "the host's CPU model",
        "bash",
        "grep -c '^model name.*: virtual CPU$' /proc/cpuinfo; grep -c '^processor' /proc/cpuinfo",
        stdout=f"{os.cpu_count()}\n{os.cpu_count()}\n",
        lacks=HOST_CPU_MODEL,
    ),
    Case(
        "the host's boot id and kernel command line",
        "bash",
        "cat /proc/sys/kernel/random/boot_id /proc/cmdline",
        lacks=HOST_BOOT_ID + HOST_CMDLINE,
    ),
    Case(
        "host-wide counts of open files, ptys and AIO contexts",
        "bash",
        "cut -f1 /proc/sys/fs/file-nr; cat /proc/sys/kernel/pty/nr /proc/sys/fs/aio-nr",
        stdout="0\n0\n0\n",
    ),
    Case(
        "the host's memory pressure, and its locks",
        "python",
        "import fcntl, os\nf = open('/usr/bin/env')\nfcntl.flock(f, fcntl.LOCK_SH)\n"
        "print(len(os.listdir('/proc/pressure')), repr(open('/proc/locks').read()))",
        stdout="0 ''\n",
    ),
    Case(
        "the tools directory's host path in mountinfo",
        "python",
        "print(open('/proc/self/mountinfo').read())",
        contains=(" /proc ",),
        lacks=("%TOOLS%",),
    ),
    Case(
        "the tools directory's host path in mountinfo, from Node",
        "javascript",
        "console.log(require('fs').readFileSync('/proc/self/mountinfo', 'utf8'))",
        contains=(" /proc ",),
        lacks=("%TOOLS%",),
    ),
    # ptys: every devpts draws on the host's kernel.pty.max.
    Case(
        "a pty from /dev/ptmx",
        "python",
        "import os\ntry:\n    os.openpty()\n    print('got one')\nexcept OSError as e:\n    print('none', e.errno in (2, 13))",
        stdout="none True\n",
    ),
    Case(
        "a pty from /dev/pts/ptmx",
        "python",
        "import os\ntry:\n    os.open('/dev/pts/ptmx', os.O_RDWR)\n    print('got one')\nexcept OSError as e:\n    print('none', e.errno)",
        stdout="none 2\n",
    ),
    Case("an empty /dev/pts", "bash", "ls -A /dev/pts | wc -l; ls -l /dev/ptmx | cut -c1", stdout="0\nl\n"),
    py_syscall("keyring: keyctl", "250, 0, 0", EPERM),
    py_syscall("keyring: add_key", "248, 0, 0, 0, 0, 0", EPERM),
    py_syscall("ptrace", "101, 16, 1, 0, 0", EPERM),
    py_syscall("process_vm_readv", "310, 1, 0, 0, 0, 0, 0", EPERM),
    py_syscall("bpf", "321, 0, 0, 0", EPERM),
    py_syscall("perf_event_open", "298, 0, 0, -1, -1, 0", EPERM),
    py_syscall("userfaultfd", "323, 0", EPERM),
    py_syscall("io_uring", "425, 1, 0", ENOSYS),
    py_syscall("clock_settime", "227, 0, 0", EPERM),
    py_syscall("settimeofday", "164, 0, 0", EPERM),
    py_syscall("chroot", "161, 0", EPERM),
    py_syscall("kexec_load", "246, 0, 0, 0, 0", EPERM),
    py_syscall("init_module", "175, 0, 0, 0", EPERM),
    py_syscall("reboot", "169, 0xfee1dead, 672274793, 0x4321fedc, 0", EPERM),
    py_syscall("TIOCSTI", "16, 0, 0x5412, 0", EPERM),
    Case(
        "clone3 falls back, threads still work",
        "python",
        SYSCALL
        + "import threading\nr = []\nt = threading.Thread(target=r.append, args=(1,))\nt.start(); t.join()\nprint(sc(435, 0, 0), r)",
        stdout=f"{ENOSYS} [1]\n",
    ),
    Case(
        "Node workers and file I/O under the filter",
        "javascript",
        "const { Worker } = require('worker_threads');\nconst fs = require('fs');\nfs.writeFileSync('a', 'data');\nfs.readFile('a', 'utf8', (e, d) => {\n  const w = new Worker('require(\"worker_threads\").parentPort.postMessage(6 * 7)', { eval: true });\n  w.on('message', (m) => { console.log(d, m); w.terminate(); });\n});",
        stdout="data 42\n",
    ),
    Case(
        "a 32-bit system call",
        "python",
        "import ctypes, mmap\ncode = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, getpid; int 0x80; ret\nm = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\nm.write(code)\nf = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))\nprint('before', flush=True)\nf()\nprint('survived')",
        status="error",
        signal=("SIGSYS", "SIGSEGV"),
        stdout="before\n",
    ),
    # --- network: every probe aims at loopback ---
    Case(
        "TCP to loopback services",
        "python",
        "import socket\nfor port in (%TCP%, 8000, 6379, 5432):\n    try:\n        socket.create_connection(('127.0.0.1', port), timeout=1)\n        print('connected', port)\n    except OSError as e:\n        print(e.errno)",
        stdout=f"{EAFNOSUPPORT}\n" * 4,
    ),
    Case(
        "UDP to loopback",
        "python",
        "import socket\ntry:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.sendto(b'x', ('127.0.0.1', %UDP%))\n    print('sent')\nexcept OSError as e:\n    print(e.errno)",
        stdout=f"{EAFNOSUPPORT}\n",
    ),
    Case(
        "IPv6 loopback",
        "python",
        "import socket\ntry:\n    socket.create_connection(('::1', %TCP%), timeout=1)\nexcept OSError as e:\n    print(e.errno)",
        stdout=f"{EAFNOSUPPORT}\n",
    ),
    Case(
        "raw, packet and netlink sockets",
        "python",
        "import socket\nfor fam, kind in ((socket.AF_INET, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW), (socket.AF_NETLINK, socket.SOCK_RAW)):\n    try:\n        socket.socket(fam, kind)\n        print('opened')\n    except OSError as e:\n        print(e.errno)",
        stdout=f"{EAFNOSUPPORT}\n" * 3,
    ),
    Case(
        "Node TCP to loopback",
        "javascript",
        "require('net').connect(%TCP%, '127.0.0.1').on('connect', () => console.log('connected')).on('error', (e) => console.log(e.code));",
        stdout="EAFNOSUPPORT\n",
    ),
    Case(
        "bash /dev/tcp",
        "bash",
        "echo hi > /dev/tcp/127.0.0.1/%TCP% 2>/dev/null && echo connected || echo refused",
        stdout="refused\n",
    ),
    Case(
        "host unix sockets",
        "python",
        "import socket\nfor path in ('/var/run/postgresql/.s.PGSQL.5432', '/run/mysqld/mysqld.sock', '\\0%ABSTRACT%'):\n    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect(path)\n        print('connected')\n    except OSError as e:\n        print(e.errno)",
        stdout="2\n2\n111\n",
    ),
    # --- TypeScript, through esbuild ---
    Case(
        "TypeScript busy loop",
        "typescript",
        "let n: number = 0;\nwhile (true) n++;",
        status="timeout",
        timeout=1000,
    ),
    Case(
        "TypeScript memory bomb",
        "typescript",
        "const a: number[][] = [];\nfor (;;) a.push(new Array(1e6).fill(2.5));",
        status=("memory", "error"),
        timeout=5000,
    ),
    Case(
        "TypeScript reads host files",
        "typescript",
        "import * as fs from 'fs';\nconsole.log(['/etc/shadow', '/root', '%BASE%'].map((p) => fs.existsSync(p)).join(' '));",
        stdout="false false false\n",
    ),
    Case(
        "TypeScript network",
        "typescript",
        "import * as net from 'net';\nnet.connect(%TCP%, '127.0.0.1').on('error', (e: NodeJS.ErrnoException) => console.log(e.code));",
        stdout="EAFNOSUPPORT\n",
    ),
    Case(
        "TypeScript child process daemon",
        "typescript",
        "import { spawn } from 'child_process';\nspawn('sleep', ['1000'], { detached: true, stdio: 'ignore' }).unref();\nconsole.log('started');",
        stdout="started\n",
    ),
    # --- Ruby, PHP, Lua and Perl: the same walls ---
    Case(
        "Ruby reads host files",
        "ruby",
        'puts ["/etc/shadow", "/root", "%BASE%"].map { |p| File.exist?(p) }.join(" ")',
        stdout="false false false\n",
    ),
    Case(
        "Ruby network",
        "ruby",
        'require "socket"\nbegin\n  TCPSocket.new("127.0.0.1", %TCP%)\n  puts "connected"\n'
        "rescue SystemCallError => e\n  puts e.class\nend",
        stdout="Errno::EAFNOSUPPORT\n",
    ),
    Case(
        "Ruby memory bomb",
        "ruby",
        'a = []\nloop { a << "x" * 10_000_000 }',
        status=("memory", "error"),
        timeout=5000,
    ),
    Case(
        "Ruby child process daemon",
        "ruby",
        'Process.detach(Process.spawn("sleep", "1000", pgroup: true))\nputs "started"',
        stdout="started\n",
    ),
    Case(
        "PHP reads host files",
        "php",
        '<?php echo implode(" ", array_map(fn($p) => file_exists($p) ? "true" : "false",'
        ' ["/etc/shadow", "/root", "%BASE%"])), "\\n";',
        stdout="false false false\n",
    ),
    Case(
        "PHP network",
        "php",
        '<?php $s = @fsockopen("127.0.0.1", %TCP%, $errno, $errstr, 1); echo $s ? "connected" : "refused", "\\n";',
        stdout="refused\n",
    ),
    Case(
        "PHP memory bomb",
        "php",
        '<?php ini_set("memory_limit", "-1"); $a = []; while (true) { $a[] = str_repeat("x", 10000000); }',
        status=("memory", "error"),
        timeout=5000,
    ),
    Case(
        "PHP shell daemon",
        "php",
        '<?php exec("sleep 1000 > /dev/null 2>&1 &"); echo "started\\n";',
        stdout="started\n",
    ),
    Case(
        "Lua reads host files",
        "lua",
        'for _, p in ipairs({"/etc/shadow", "/root", "%BASE%"}) do io.write(tostring(io.open(p) ~= nil), " ") end\nprint()',
        stdout="false false false \n",
    ),
    Case(
        "Lua network through a shell",
        "lua",
        "io.write(io.popen(\"bash -c 'exec 3<>/dev/tcp/127.0.0.1/%TCP% && echo connected || echo refused' 2>/dev/null\"):read('a'))",
        stdout="refused\n",
    ),
    Case(
        "Lua memory bomb",
        "lua",
        'local t = {}\nwhile true do t[#t + 1] = string.rep("x", 10000000) .. #t end',
        status=("memory", "error"),
        timeout=5000,
    ),
    Case(
        "Lua shell daemon",
        "lua",
        'os.execute("sleep 1000 &")\nprint("started")',
        stdout="started\n",
    ),
    Case(
        "Perl reads host files",
        "perl",
        'print join(" ", map { -e $_ ? "true" : "false" } ("/etc/shadow", "/root", "%BASE%")), "\\n";',
        stdout="false false false\n",
    ),
    Case(
        "Perl network",
        "perl",
        'use IO::Socket::INET;\nmy $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => %TCP%, Timeout => 1);'
        '\nprint $s ? "connected\\n" : "refused\\n";',
        stdout="refused\n",
    ),
    Case(
        "Perl memory bomb",
        "perl",
        'my @a;\npush @a, "x" x 10_000_000 while 1;',
        status=("memory", "error"),
        timeout=5000,
    ),
    Case("Perl fork bomb", "perl", "fork while 1;", status=("ok", "error", "timeout")),
    Case(
        "R reads host files",
        "r",
        'cat(file.exists(c("/etc/shadow", "/root", "%BASE%")), sep = " ")\ncat("\\n")',
        stdout="FALSE FALSE FALSE\n",
    ),
    Case(
        "R network",
        "r",
        'r <- tryCatch({ socketConnection("127.0.0.1", %TCP%, timeout = 1); "connected" },\n'
        '  error = function(e) "refused", warning = function(w) "refused")\ncat(r, "\\n", sep = "")',
        stdout="refused\n",
    ),
    Case(
        "R memory bomb",
        "r",
        "x <- list()\nrepeat x[[length(x) + 1]] <- numeric(1e7)",
        status=("memory", "error"),
        timeout=5000,
    ),
    Case(
        "R shell daemon",
        "r",
        'system("sleep 1000 > /dev/null 2>&1 &")\ncat("started\\n")',
        stdout="started\n",
    ),
    Case(
        "R fork bomb through the shell",
        "r",
        "system(\"bash -c ':(){ :|:& };:'\")",
        status=("ok", "error", "timeout"),
    ),
    # --- verdict integrity ---
    Case(
        "a fake result object",
        "python",
        "import json, sys\nprint(json.dumps({'status': 'ok', 'exitCode': 0, 'timedOut': False}))\nsys.exit(3)",
        status="error",
        contains=('"status": "ok"',),
    ),
    Case(
        "fake status words",
        "bash",
        "echo 'exit 0 1'; echo 'status: ok'; echo 'signal 0 0' >&2; exit 5",
        status="error",
    ),
    Case(
        "writing a fake verdict to the reporter",
        "bash",
        "for f in /proc/1/fd/*; do echo 'exit 0 1' > $f 2>/dev/null && echo \"wrote $f\"; done; kill -SEGV $$",
        status="error",
        signal="SIGSEGV",
        stdout="",
    ),
]
CASES += COMPILED_CASES  # the compilers (hostile_compiled.py)


class Canaries:
    """Loopback listeners and an abstract unix socket on the host: none may ever hear from a run."""

    def __init__(self):
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = f"playground-canary-{uuid.uuid4().hex}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen()
        self.heard: list[str] = []
        self.threads = [
            threading.Thread(target=self._watch, args=(s, kind), daemon=True)
            for s, kind in ((self.tcp, "tcp"), (self.udp, "udp"), (self.unix, "unix"))
        ]
        for t in self.threads:
            t.start()

    def _watch(self, sock, kind):
        try:
            if kind == "udp":
                sock.recvfrom(64)
            else:
                sock.accept()
            self.heard.append(kind)
        except OSError:
            pass

    def program(self, code: str) -> str:
        return (
            code.replace("%TCP%", str(self.tcp.getsockname()[1]))
            .replace("%UDP%", str(self.udp.getsockname()[1]))
            .replace("%ABSTRACT%", self.abstract_name)
            .replace("%BASE%", str(django_settings.BASE_DIR))
            .replace("%TOOLS%", str(django_settings.RUNNER_TOOLS_DIR))
            .replace("%DB%", str(django_settings.DATABASES["default"]["NAME"]))
        )

    def close(self):
        for s in (self.tcp, self.udp, self.unix):
            s.close()


@pytest.fixture(scope="module")
def canaries():
    os.environ["PLAYGROUND_CANARY"] = SECRET  # the server's environment holds a secret
    watch = Canaries()
    yield watch
    watch.close()
    del os.environ["PLAYGROUND_CANARY"]
    assert watch.heard == []


def open_fds() -> int:
    """The server's open fds, less those its waiting pre-warmed sandboxes hold."""
    POOL.settle()
    return len(os.listdir("/proc/self/fd")) - POOL.held_fds()


def check(case: Case, result: dict, tokens=lambda text: text) -> None:
    statuses = case.status if isinstance(case.status, tuple) else (case.status,)
    assert result["status"] in statuses, result
    if case.stdout is not None:
        assert result["stdout"] == case.stdout, result
    compiled = result["compile"] or {"stdout": "", "stderr": ""}
    both = result["stdout"] + result["stderr"] + compiled["stdout"] + compiled["stderr"]
    for text in case.contains:
        assert tokens(text) in both, result
    for text in case.lacks:
        assert tokens(text) not in both, result
    if case.compile_status:
        verdicts = case.compile_status if isinstance(case.compile_status, tuple) else (case.compile_status,)
        assert result["compile"]["status"] in verdicts, result
    if case.signal:
        signals = case.signal if isinstance(case.signal, tuple) else (case.signal,)
        assert result["signal"] in signals, result


def test_the_battery_has_at_least_50_cases_in_every_language():
    assert len(CASES) >= 50
    # Every language in the registry (languages/) has cases: a new one must bring its own.
    assert {c.language for c in CASES} == set(languages.names())
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(params=["cold", "warm"])
def start(request, settings):
    """A sandbox started cold, or a pre-warmed one."""
    settings.RUNNER_POOL_SIZE = 0 if request.param == "cold" else 2
    return request.param


# Each case runs in a sandbox started cold, in a pre-warmed one where its language has them,
# and forked from a zygote where its language has them (Python: sandbox/zygote.py).
RUNS = [
    (start, case)
    for start in ("cold", "warm", "zygote")
    for case in CASES
    if start == "cold"
    or (start == "warm" and languages.get(case.language).pooled)
    or (start == "zygote" and languages.get(case.language).run.zygote)
]


@pytest.mark.parametrize("way, case", RUNS, ids=[f"{way}-{case.name}" for way, case in RUNS])
def test_a_hostile_program_is_contained(api, canaries, settings, way, case):
    settings.RUNNER_POOL_SIZE = 0 if way == "cold" else 2
    settings.RUNNER_ZYGOTE = way == "zygote"
    api.run("bash", "true")  # warm: the first run of a test opens what later runs reuse
    lang = languages.get(case.language)
    if lang.build:
        api.run(lang.name, lang.example)  # and its build service, which every later run shares
    fds, tmp = open_fds(), set(os.listdir("/tmp"))
    limits = {"timeout": case.timeout, **({"memory": case.memory} if case.memory else {})}
    if case.compile_timeout:
        limits["compileTimeout"] = case.compile_timeout
    starts = STARTS[way]
    result = api.run(case.language, canaries.program(case.code), stdin=case.stdin, **limits)
    assert STARTS[way] == starts + 1  # it really took the path it is named for
    check(case, result, canaries.program)
    compiled = result["compile"] or {"stdout": "", "stderr": ""}
    assert SECRET not in result["stdout"] + result["stderr"] + compiled["stdout"] + compiled["stderr"]
    assert api.run("python", "print(6 * 7)")["stdout"] == "42\n"
    assert canaries.heard == []
    assert open_fds() == fds
    assert set(os.listdir("/tmp")) - tmp == set()


@pytest.mark.parametrize("zygote", [False, True], ids=["pooled", "zygote"])
def test_no_two_live_sandboxes_share_a_host_uid(api, settings, monkeypatch, zygote):
    """Pooled sandboxes wait for hours; the pool's uids wrap around. A uid is never handed out
    again while a sandbox on it lives: the kernel counts inotify instances, epoll watches and
    pipe buffers per host uid, and without cgroups a teardown kills by uid. (A zygote's runs are
    on its uid, one at a time: they are the zygote's, not sandboxes of their own.)"""
    from collections import Counter

    from sandbox import pool, unfinished
    from sandbox.zygote import ZygoteRun

    monkeypatch.setattr(pool, "POOL_UIDS", 32)  # room for every pool (28 sandboxes), and little more
    settings.RUNNER_POOL_SIZE = 2
    settings.RUNNER_ZYGOTE = zygote
    api.run("bash", "true")
    for i in range(30):  # the Python pool turns over (each run, or each zygote's 16); the others wait
        assert api.run("python", f"print({i})")["stdout"] == f"{i}\n"
        POOL.settle()
        boxes = [box for box in list(unfinished._boxes) if not isinstance(box, ZygoteRun)]
        shared = {uid: n for uid, n in Counter(box.host.uid(box.spec.slot) for box in boxes).items() if n > 1}
        assert shared == {}, f"after run {i}: uids held by more than one sandbox: {shared}"


def test_a_record_keeps_only_the_start_of_a_large_output(api, client, start):
    """A run may print a megabyte; its stored record keeps RUNNER_STORED_LIMIT of each stream,
    and says which it cut. The answer itself has it all."""
    result = api.run("python", "import sys\nprint('z' * 200000)\nprint('e' * 10, file=sys.stderr)")
    assert result["stdout"] == "z" * 200000 + "\n"
    stored = client.get(f"/api/executions/{result['id']}").json()
    assert stored["stdout"] == "z" * (64 << 10)
    assert stored["stderr"] == "e" * 10 + "\n"
    assert stored["storedTruncated"] == ["stdout"]
