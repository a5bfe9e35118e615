"""The bubblewrap command line: every isolation flag of every sandbox, built in one function."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from . import cgroups, procfs
from .process import memfd
from .spec import (
    BASE_ENV,
    COPY_TOOLS_BYTES,
    DEV_SHM_BYTES,
    INIT_PATH,
    RO_BINDS,
    SANDBOX_HOSTNAME,
    SANDBOX_UID,
    SYMLINKS,
    WORKDIR,
    BoxSpec,
    Host,
    Limits,
    SandboxError,
)

ZYGOTE_PROC = "/dev/pts"  # a zygote's uncovered procfs; an empty directory in every other sandbox
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("/proc/kcore", "core"),
    ("pts/ptmx", "ptmx"),
)


@dataclass
class Tools:
    """What a sandbox gets besides its own files, as fds bwrap reads: tools and /proc masks."""

    copies: dict[str, int] = field(default_factory=dict)  # path inside -> fd of the tool to copy there
    binds: list[tuple[str, str]] = field(default_factory=list)  # (host path, path inside), bound
    proc: dict[str, int] = field(default_factory=dict)  # /proc path -> fd of what it reads there

    def fds(self) -> list[int]:
        return [*self.copies.values(), *self.proc.values()]


@dataclass(frozen=True)
class CompileFds:
    """A compile stage's fds, as sandbox-init gets them: its output pipes, and the go-ahead's read end."""

    stdout: int
    stderr: int
    go: int

    def output(self) -> tuple[int, int]:
        return (self.stdout, self.stderr)

    def fds(self) -> list[int]:
        return [self.stdout, self.stderr, self.go]


def open_tools(spec: BoxSpec, host: Host, fds: list[int]) -> Tools:
    """The tools to copy in or bind, and the /proc masks, as fds (added to fds: closed after the start)."""
    tools = Tools()
    for source, dest in ((host.init, INIT_PATH), *spec.binds):
        try:
            fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise SandboxError(f"cannot open the tool {source}: {e}") from e
        found = os.fstat(fd)
        if stat.S_ISREG(found.st_mode) and found.st_size <= COPY_TOOLS_BYTES:
            fds.append(fd)
            tools.copies[dest] = fd
        else:
            os.close(fd)
            tools.binds.append((source, dest))
    # One fd each: bwrap reads a --ro-bind-data fd to its end, then closes it.
    # (A zygote has no /proc of its own: each of its runs gets one, with the masks, from it.)
    for path, data in procfs.masks(spec.limits).items() if not spec.zygote else ():
        tools.proc[path] = memfd(path.rsplit("/", 1)[-1], data)
        fds.append(tools.proc[path])
    return tools


def bwrap_argv(
    spec: BoxSpec,
    host: Host,
    file_fds: dict[str, int],
    status_fd: int,
    seccomp_fd: int,
    out_fd: int,
    err_fd: int,
    tools: Tools,
    build: CompileFds | None = None,
) -> list[str]:
    """Every isolation flag, in one place."""
    lim = spec.limits
    argv = [
        host.bwrap,
        "--seccomp", str(seccomp_fd),
        # --unshare-user must be explicit: --disable-userns needs it, and
        # --unshare-all would only *try* a user namespace.
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
        "--unshare-uts", "--unshare-cgroup",
        "--disable-userns", "--die-with-parent", "--new-session",
        # sandbox-init is pid 1 itself: bwrap's own init would report to bwrap early
        # and be left for the host's init to reap.
        "--as-pid-1",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--hostname", SANDBOX_HOSTNAME,
    ]  # fmt: skip
    if spec.zygote:
        argv += ["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP"]
    for path in RO_BINDS:
        argv += ["--ro-bind-try", path, path]
    for target, link in SYMLINKS:
        argv += ["--symlink", target, link]
    # The tools are copied in from fds where they are small: a bind would show the tools
    # directory's host path in /proc/self/mountinfo. A large one is bound.
    for dest, fd in tools.copies.items():
        argv += ["--perms", "0555", "--file", str(fd), dest]
    for source, dest in tools.binds:
        argv += ["--ro-bind", source, dest]
    for path in spec.hide:
        if os.path.isdir(path):
            argv += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
    if spec.zygote:
        # A zygote's runs mount their own /proc, /tmp and /dev/shm (runtimes/zygote.c), each on
        # an empty directory here, so that each is the only mount there, as in any sandbox.
        argv += ["--dir", "/proc"]
    else:
        argv += ["--proc", "/proc"]
        # The host's counters and facts in /proc, masked (sandbox.procfs).
        for dest, fd in tools.proc.items():
            argv += ["--ro-bind-data", str(fd), dest]
        for dest in procfs.existing(procfs.EMPTY_DIRS):
            argv += ["--size", "4096", "--tmpfs", dest, "--remount-ro", dest]
    # /dev as bwrap's --dev makes it, less the devpts: no ptys, as every devpts draws on the
    # host's kernel.pty.max (bwrap's sets no max=), so one run could take every pty on the host.
    # /dev/pts is an empty directory. A writable /dev tmpfs would have no size cap: /dev/shm
    # gets its own, then /dev is frozen.
    argv += ["--tmpfs", "/dev"]
    for device in DEVICES:
        argv += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
    for target, link in DEV_SYMLINKS:
        argv += ["--symlink", target, f"/dev/{link}"]
    argv += ["--dir", "/dev/pts"]
    if spec.zygote:
        # The kernel lets a run's init mount a fresh /proc only where a procfs is mounted whole,
        # with nothing over any of its files: this one, which each run covers (runtimes/zygote.c).
        argv += [
            "--proc", ZYGOTE_PROC, "--dir", "/dev/shm", "--remount-ro", "/dev",
            "--perms", "1777", "--dir", WORKDIR,
        ]  # fmt: skip
    else:
        argv += [
            "--size", str(DEV_SHM_BYTES), "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev",
            "--size", str(lim.tmpfs_mib << 20), "--perms", "1777", "--tmpfs", WORKDIR,
        ]  # fmt: skip
    # The code arrives through file descriptors that bwrap copies into the fresh
    # tmpfs: the host never writes into a directory the program controls.
    # What an earlier compile built is placed read-only, a program 0555.
    made: set[str] = set()
    for name, fd in file_fds.items():
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                argv += ["--dir", f"{WORKDIR}/{d}"]
        if name in spec.built:
            argv += ["--perms", "0555" if spec.built[name].executable else "0444"]
        argv += ["--file", str(fd), f"{WORKDIR}/{name}"]
    argv += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in {**BASE_ENV, **spec.env}.items():
        argv += ["--setenv", key, value]
    # A zygote's rlimits stay the host's: each of its runs sets its own, lower (runtimes/zygote.c).
    rlimits = ["0", "0", "0", "0"] if spec.zygote else _rlimits(lim)
    argv += ["--", INIT_PATH, str(status_fd), str(out_fd), str(err_fd), *rlimits]
    if build is not None:
        compile_lim = spec.compile_limits or lim
        argv += [
            "+compile-stdin" if spec.compile_stdin else "+compile",
            str(build.stdout),
            str(build.stderr),
            str(build.go),
        ]
        argv += [*_rlimits(compile_lim)[2:], str(len(spec.compile)), *spec.compile]
    argv += ["--", *spec.argv]
    return argv


def _rlimits(lim: Limits) -> list[str]:
    """sandbox-init's NOFILE FSIZE NPROC DATA. Without a memory cgroup, RLIMIT_DATA is the
    fallback memory limit (0 = unset)."""
    data_limit = 0 if cgroups.support().has("memory") else lim.memory_mib << 20
    return [str(lim.open_files), str(lim.file_size_mib << 20), str(lim.processes), str(data_limit)]


def launcher_argv(host: Host, uid: int, join: list[str], bwrap: list[str]) -> list[str]:
    """sandbox-launch joins the run's cgroups as root, then drops to the slot's uid and execs bwrap."""
    return [host.launcher, str(uid), *join, "--", *bwrap]
