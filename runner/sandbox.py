"""Isolation only: one fresh bubblewrap sandbox per run, supervised until nothing of it is left.

Knows nothing of Django, HTTP or the database. Every process this project
starts, sandboxed or not, is started by `spawn()` in this module.

The chain for one run, all exec'd in place so the server keeps one pid to watch:

    sandbox-launch (root: joins the run's cgroups, then drops to the slot's unprivileged
                    host uid for good: no groups, no capabilities, no_new_privs)
      -> bwrap (new user, pid, net, ipc, uts, mount and cgroup namespaces)
        -> sandbox-init (sets rlimits, reports the real wait status)
          -> the program
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import fcntl
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass, field

from . import cgroups, seccomp

log = logging.getLogger(__name__)

# --- The limits and fixed shape of every sandbox -------------------------------------
# Per-run limits arrive in a Limits; these defaults are the documented ones, and the
# constants below are what no request can change.
DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_MEMORY_MIB = 256
DEFAULT_PROCESSES = 64
DEFAULT_OUTPUT_BYTES = 1 << 20
DEFAULT_TMPFS_MIB = 64
DEFAULT_FILE_SIZE_MIB = 16
DEFAULT_OPEN_FILES = 256
DEFAULT_CPUS = 1.0

SANDBOX_UID = 1000  # the program's uid inside; the host sees the slot's uid
SANDBOX_HOSTNAME = "sandbox"
WORKDIR = "/tmp"  # one private tmpfs: the working directory, /tmp and $HOME at once
DEV_SHM_BYTES = 1 << 20  # /dev/shm is its own small tmpfs, so it can't bypass the /tmp cap
PIPE_BYTES = 1 << 20  # large pipes: Node's async writes reach the output cap, not the OOM killer
INIT_PATH = "/.sandbox-init"
# Only the runtime is visible, read-only. /usr/local is left out on purpose: on
# many hosts it holds unrelated tools and configuration. /etc/alternatives holds
# only the symlinks that commands such as awk resolve through.
RO_BINDS = ("/usr/bin", "/usr/lib", "/usr/lib64", "/usr/share/zoneinfo", "/etc/alternatives")
SYMLINKS = (("usr/bin", "/bin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("usr/bin", "/sbin"))
BASE_ENV = {"PATH": "/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": WORKDIR, "LANG": "C.UTF-8", "USER": "sandbox"}
# The environment of the launcher chain and of bwrap itself: nothing of the server's.
LAUNCH_ENV = {"PATH": "/usr/bin:/bin"}
EMPTY_WAIT_SECONDS = 5.0
ORPHAN_EXIT_SECONDS = 1.0  # an adopted init, once its sandbox is empty, is already exiting
BWRAP_EXIT_SECONDS = 2.0  # after its sandbox is killed, bwrap reaps the init and exits at once
PR_SET_CHILD_SUBREAPER = 36
RUN_CGROUP_PREFIX = "slot"  # a run's cgroup: <prefix><slot>-pid<maker's pid>-<random> (cgroups.name)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class SandboxError(Exception):
    """The sandbox could not be set up or torn down; never the program's fault."""


@dataclass(frozen=True)
class Limits:
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    memory_mib: int = DEFAULT_MEMORY_MIB
    processes: int = DEFAULT_PROCESSES
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    tmpfs_mib: int = DEFAULT_TMPFS_MIB
    file_size_mib: int = DEFAULT_FILE_SIZE_MIB
    open_files: int = DEFAULT_OPEN_FILES
    cpus: float = DEFAULT_CPUS


@dataclass(frozen=True)
class Host:
    """Where the host's pieces are; set once from the server's configuration."""

    tools_dir: str = "/opt/code-playground"
    uid_base: int = 61000
    cgroup_parent: str = "code-playground"
    bwrap: str = "/usr/bin/bwrap"

    @property
    def init(self) -> str:
        return os.path.join(self.tools_dir, "sandbox-init")

    @property
    def launcher(self) -> str:
        return os.path.join(self.tools_dir, "sandbox-launch")

    def uid(self, slot: int) -> int:
        return self.uid_base + slot


@dataclass
class BoxSpec:
    """What one sandbox runs: argv and env inside, files placed in WORKDIR, extra read-only binds."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    binds: tuple[tuple[str, str], ...] = ()
    limits: Limits = field(default_factory=Limits)
    slot: int = 0
    cgroup_prefix: str = RUN_CGROUP_PREFIX
    cpu_weight: int = cgroups.DEFAULT_CPU_WEIGHT  # against other sandboxes, when CPUs are contended


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    signal: int | None
    duration_ns: int | None  # the program's own wall time, as measured inside


def bwrap_argv(
    spec: BoxSpec,
    host: Host,
    file_fds: dict[str, int],
    status_fd: int,
    seccomp_fd: int,
    out_fd: int,
    err_fd: int,
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
    for path in RO_BINDS:
        argv += ["--ro-bind-try", path, path]
    for target, link in SYMLINKS:
        argv += ["--symlink", target, link]
    argv += ["--ro-bind", host.init, INIT_PATH]
    for source, dest in spec.binds:
        argv += ["--ro-bind", source, dest]
    argv += [
        "--proc", "/proc",
        # A writable /dev tmpfs would have no size cap: give /dev/shm its own, then freeze /dev.
        "--dev", "/dev",
        "--size", str(DEV_SHM_BYTES), "--tmpfs", "/dev/shm",
        "--remount-ro", "/dev",
        "--size", str(lim.tmpfs_mib << 20), "--perms", "1777", "--tmpfs", WORKDIR,
    ]  # fmt: skip
    # The code arrives through file descriptors that bwrap copies into the fresh
    # tmpfs: the host never writes into a directory the program controls.
    made: set[str] = set()
    for name, fd in file_fds.items():
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                argv += ["--dir", f"{WORKDIR}/{d}"]
        argv += ["--file", str(fd), f"{WORKDIR}/{name}"]
    argv += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in {**BASE_ENV, **spec.env}.items():
        argv += ["--setenv", key, value]
    # Without a memory cgroup, RLIMIT_DATA is the fallback memory limit (0 = unset).
    data_limit = 0 if cgroup_support().has("memory") else lim.memory_mib << 20
    argv += [
        "--", INIT_PATH, str(status_fd), str(out_fd), str(err_fd),
        str(lim.open_files), str(lim.file_size_mib << 20), str(lim.processes), str(data_limit),
        "--", *spec.argv,
    ]  # fmt: skip
    return argv


_support: cgroups.Support | None = None


def cgroup_support() -> cgroups.Support:
    global _support
    if _support is None:
        _support = cgroups.detect()
    return _support


class Child:
    """A process we started, awaited through a pidfd on whichever event loop asks.

    asyncio's own child watcher starts a thread per process; a pidfd needs none,
    and works from any loop (the tests run several).
    """

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(self.pid)
        self._exited: asyncio.Future | None = None
        self._watched_by: asyncio.AbstractEventLoop | None = None

    def _reap(self) -> bool:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: it is gone, its code unknown
                pid, status = self.pid, 0x7F00
            if pid == 0:
                return False
            self.returncode = os.waitstatus_to_exitcode(status)
            self.popen.returncode = self.returncode  # so Popen never waits for it again
            if self._watched_by is not None:
                # Unwatched before the fd is closed: a later fd with the same number must
                # not inherit this registration.
                self._watched_by.remove_reader(self._pidfd)
                self._watched_by = None
            if self._exited is not None and not self._exited.done():
                self._exited.set_result(self.returncode)
            os.close(self._pidfd)
        return True

    async def wait(self) -> int:
        if self._reap():
            return self.returncode
        if self._exited is None:
            loop = asyncio.get_running_loop()
            self._exited = loop.create_future()
            self._watched_by = loop
            loop.add_reader(self._pidfd, self._reap)
        # Shielded: one waiter giving up must not cancel the others' wait.
        return await asyncio.shield(self._exited)


_subreaper = False


def become_subreaper() -> None:
    """Orphans of our sandboxes come to us, not to the host's init, which may never reap them.

    bwrap's outer process reaps the sandbox's init, unless the kernel kills bwrap first
    (the OOM killer can pick it: it is in the run's memory cgroup). Then the init would be
    orphaned; as a subreaper, the server adopts it and reap_orphans() collects it.
    """
    global _subreaper
    if not _subreaper:
        _subreaper = True
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def reap_orphans(uid: int) -> None:
    """Reap the processes of a sandbox's uid that were adopted by this process.

    Called once the sandbox is empty. A process leaves its cgroup a moment before it
    becomes a zombie, so an adopted one may still be exiting: each is waited for briefly.
    """
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        if parent == me:
            _reap_exiting(int(name))


def _reap_exiting(pid: int) -> None:
    deadline = time.monotonic() + ORPHAN_EXIT_SECONDS
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                log.error("an orphan %s of a finished sandbox did not exit", pid)
                return
            time.sleep(0.001)
    except ChildProcessError:
        pass  # reaped by someone else


def spawn(argv: list[str], **kwargs) -> Child:
    """The one seam through which this project starts processes."""
    become_subreaper()
    kwargs.setdefault("env", dict(LAUNCH_ENV))
    kwargs.setdefault("cwd", "/")
    return Child(subprocess.Popen(argv, close_fds=True, **kwargs))


def run_tool(argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run a trusted host tool (a version probe), synchronously, with a clean environment."""
    return subprocess.run(
        argv, env=dict(LAUNCH_ENV), capture_output=True, timeout=timeout, close_fds=True, check=False
    )


def _pipe(size: int = PIPE_BYTES) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, size)
    except OSError:
        pass  # stays at the kernel default; only slower to fill
    return r, w


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name.replace("/", "_"), os.MFD_CLOEXEC)
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_available(fd: int) -> bytes:
    """What a pipe holds now, without waiting for more."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    except BlockingIOError:
        pass
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=PIPE_BYTES, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    return reader


class Sandbox:
    """A running sandbox: read its output, feed its stdin, wait for it, kill it, destroy it."""

    def __init__(self, spec: BoxSpec, host: Host):
        self.spec = spec
        self.host = host
        self.cgroup: cgroups.Cgroup | None = None
        self.process: Child | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self.started_ns = 0
        self.handed_ns = 0  # when a pre-warmed sandbox was handed its run
        self.ended_ns = 0
        self._stdin_fd: int | None = None
        self._stdin_writer: asyncio.StreamWriter | None = None
        self._status_fd: int | None = None
        self._setup_fd: int | None = None
        self._status: ExitStatus | None = None
        self._feeder: asyncio.Task | None = None
        self._out_fd: int | None = None
        self._err_fd: int | None = None
        self.destroyed = False
        self.cgroup_released = False  # kept as a spare or removed: no longer this sandbox's
        self.oom_kills = 0

    @classmethod
    async def start(cls, spec: BoxSpec, host: Host, stdin: bytes | None = b"") -> Sandbox:
        """Start the program. stdin=None keeps stdin open for write_stdin()/close_stdin()."""
        box = cls.launch(spec, host)
        try:
            await box.attach(stdin)
        except BaseException:
            await box.destroy()
            raise
        return box

    @classmethod
    def launch(cls, spec: BoxSpec, host: Host) -> Sandbox:
        """Start the sandbox without an event loop: its pipes are attached to one later, by attach()."""
        box = cls(spec, host)
        _track(box)
        try:
            box._launch()
        except BaseException:
            box.discard()
            raise
        return box

    def _launch(self) -> None:
        lim = self.spec.limits
        support = cgroup_support()
        join: list[str] = []
        if support.version:
            try:
                self.cgroup = cgroups.Cgroup.create(
                    support,
                    self.host.cgroup_parent,
                    cgroups.name(self.spec.cgroup_prefix, self.spec.slot),
                    memory_bytes=lim.memory_mib << 20,
                    pids=lim.processes,
                    cpus=lim.cpus,
                    cpu_weight=self.spec.cpu_weight,
                )
            except OSError as e:
                raise SandboxError(f"cannot create the run's cgroup: {e}") from e
            join = self.cgroup.procs_files

        fds: list[int] = []
        try:
            try:
                filter_fd = _memfd("seccomp", seccomp.bpf())
            except seccomp.Unavailable as e:
                raise SandboxError(str(e)) from e
            fds.append(filter_fd)
            file_fds = {name: _memfd(name, data) for name, data in self.spec.files.items()}
            fds += file_fds.values()
            status_r, status_w = os.pipe2(os.O_CLOEXEC)
            fds.append(status_w)
            self._status_fd = status_r
            in_r, in_w = _pipe()
            fds.append(in_r)
            self._stdin_fd = in_w
            self._out_fd, out_w = _pipe()
            fds.append(out_w)
            self._err_fd, err_w = _pipe()
            fds.append(err_w)
            # bwrap's own stdout and stderr (and sandbox-init's) carry only setup errors;
            # the program's output pipes reach sandbox-init as extra fds.
            self._setup_fd, setup_w = os.pipe2(os.O_CLOEXEC)
            fds.append(setup_w)
            uid = self.host.uid(self.spec.slot)
            # The program's own pipes belong to its uid, so that it can open them again by
            # name (`echo hi > /dev/stderr`, open('/dev/stdout')), as on any terminal.
            for fd in (in_r, out_w, err_w):
                os.fchown(fd, uid, uid)
            argv = [
                self.host.launcher, str(uid), *join, "--",
                *bwrap_argv(self.spec, self.host, file_fds, status_w, filter_fd, out_w, err_w),
            ]  # fmt: skip
            self.started_ns = time.monotonic_ns()
            self.process = spawn(
                argv,
                stdin=in_r,
                stdout=setup_w,
                stderr=setup_w,
                pass_fds=[status_w, filter_fd, out_w, err_w, *file_fds.values()],
                start_new_session=True,
            )
        finally:
            for fd in fds:
                os.close(fd)

    async def attach(self, stdin: bytes | None) -> None:
        """Connect the output pipes to the running loop, and give the program its input.

        stdin=None keeps stdin open for write_stdin()/close_stdin(); bytes are all of it.
        """
        self.stdout = await _reader(self._out_fd)
        self.stderr = await _reader(self._err_fd)
        self._out_fd = self._err_fd = None
        if stdin is None:
            return
        if len(stdin) <= fcntl.fcntl(self._stdin_fd, F_GETPIPE_SZ):
            # It fits in the pipe: write it all now and close, so EOF follows it.
            _write_all(self._stdin_fd, stdin)
            self.close_stdin()
        else:
            self._feeder = asyncio.create_task(self._feed(stdin))

    async def _feed(self, data: bytes) -> None:
        await self.write_stdin(data)
        self.close_stdin()

    async def _open_stdin_writer(self) -> None:
        loop = asyncio.get_running_loop()
        fd, self._stdin_fd = self._stdin_fd, None
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(fd, "wb", buffering=0)
        )
        self._stdin_writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write_stdin(self, data: bytes) -> bool:
        """Send bytes to the program; False once it no longer reads stdin."""
        if self._stdin_writer is None and self._stdin_fd is not None:
            await self._open_stdin_writer()
        writer = self._stdin_writer
        if writer is None or writer.is_closing():
            return False
        try:
            writer.write(data)
            await writer.drain()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def close_stdin(self) -> None:
        if self._stdin_fd is not None:
            os.close(self._stdin_fd)
            self._stdin_fd = None
        if self._stdin_writer is not None:
            self._stdin_writer.close()

    async def wait(self) -> int:
        """Wait for bwrap to exit: the program is done, though stray processes may still be dying."""
        code = await self.process.wait()
        self.ended_ns = self.ended_ns or time.monotonic_ns()
        return code

    async def finished(self) -> None:
        """Wait until the program has exited: its status is reported, or the sandbox is gone.

        The status arrives as the program exits, a millisecond or so before bwrap has
        torn the namespaces down and exited itself.
        """
        if self.exit_status() is None and self._status_fd is not None:
            loop = asyncio.get_running_loop()
            reported = loop.create_future()

            def readable():
                if not reported.done():
                    reported.set_result(None)

            loop.add_reader(self._status_fd, readable)
            exited = asyncio.ensure_future(self.process.wait())
            try:
                await asyncio.wait([reported, exited], return_when=asyncio.FIRST_COMPLETED)
            finally:
                loop.remove_reader(self._status_fd)
                exited.cancel()
            if self.exit_status() is None:
                # The status pipe ended without a status: bwrap is gone. Collect its exit code.
                await self.process.wait()
        self.ended_ns = self.ended_ns or time.monotonic_ns()

    def setup_errors(self) -> str:
        """What bwrap or sandbox-init said on failing to set the sandbox up (never the program's output)."""
        data = _read_available(self._setup_fd) if self._setup_fd is not None else b""
        return data.decode(errors="replace").strip()

    def exit_status(self) -> ExitStatus | None:
        """The program's real wait status, as reported from inside; None if it never got that far."""
        if self._status is None and self._status_fd is not None:
            data = _read_available(self._status_fd)
            m = re.fullmatch(rb"(exit|signal) (\d+) (\d+)\n", data)
            if m:
                kind, number, ns = m.group(1), int(m.group(2)), int(m.group(3))
                if kind == b"exit":
                    self._status = ExitStatus(number, None, ns)
                else:
                    self._status = ExitStatus(None, number, ns)
        return self._status

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this sandbox for exceeding the memory limit."""
        if self.cgroup and not self.destroyed:
            self.oom_kills = self.cgroup.oom_kills()
        return self.oom_kills > 0

    def kill(self) -> None:
        """Kill the program's whole process tree now; bwrap then reaps it and exits."""
        self.ended_ns = self.ended_ns or time.monotonic_ns()
        outer = self.process.pid if self.process and self.process.returncode is None else None
        if self.cgroup_released:
            return  # destroyed already: nothing of it is left, and its group may be another's
        if self.cgroup:
            try:
                self.cgroup.kill(spare=outer)
            except OSError as e:
                log.error("cgroup kill failed: %s", e)
        else:
            for pid in uid_pids(self.host.uid(self.spec.slot)):
                if pid != outer:
                    cgroups.kill_pid(pid)

    async def destroy(self) -> None:
        """Kill everything, wait until the sandbox is provably empty, remove its cgroup."""
        if self.destroyed:
            return
        self.destroyed = True
        try:
            self._yield_cpu()
            if self.exit_status() is None:
                # Still running. (Once the program's status is in, sandbox-init has exited,
                # which kills everything left in its pid namespace: nothing to kill.)
                self.kill()
            try:
                await self._gone()
            except asyncio.CancelledError:
                # Cancelled, as when its event loop closes: finish the same work without the loop.
                self._gone_blocking()
                self._settle_accounts()
                raise
            self._settle_accounts()
        finally:
            if self._feeder:
                self._feeder.cancel()
            self._release()

    def _yield_cpu(self) -> None:
        """What is left of a finished sandbox dies at the lowest CPU weight, behind live runs."""
        if self.cgroup:
            try:
                self.cgroup.set_cpu_weight(cgroups.IDLE_CPU_WEIGHT)
            except OSError:
                pass  # only a priority: the teardown goes on regardless

    def discard(self) -> None:
        """destroy(), without an event loop: for sandboxes that never ran a program (the pool's)."""
        if self.destroyed:
            return
        self.destroyed = True
        self._teardown_blocking()

    def _teardown_blocking(self) -> None:
        try:
            self.kill()
            self._gone_blocking()
            self._settle_accounts()
        finally:
            self._release()

    async def _gone(self) -> None:
        """Wait for bwrap to exit and the cgroup to empty, killing what is left."""
        if self.process:
            try:
                await asyncio.wait_for(self.process.wait(), BWRAP_EXIT_SECONDS)
            except TimeoutError:
                log.error("bwrap %s did not exit after its sandbox was killed", self.process.pid)
                cgroups.kill_pid(self.process.pid)
                await self.process.wait()
        self.exit_status()
        deadline = time.monotonic() + EMPTY_WAIT_SECONDS
        # Polled: cgroup v1 offers no event for "empty", and strays die within milliseconds.
        while self._kill_stragglers(deadline):  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    def _gone_blocking(self) -> None:
        """_gone(), blocking the calling thread instead of awaiting."""
        if self.process:
            deadline = time.monotonic() + BWRAP_EXIT_SECONDS
            while self.process.returncode is None and not self.process._reap():
                if time.monotonic() > deadline:
                    cgroups.kill_pid(self.process.pid)
                    deadline = time.monotonic() + BWRAP_EXIT_SECONDS
                time.sleep(0.001)
        self.exit_status()
        deadline = time.monotonic() + EMPTY_WAIT_SECONDS
        while self._kill_stragglers(deadline):
            time.sleep(0.001)

    def _kill_stragglers(self, deadline: float) -> bool:
        """Kill what is left of the sandbox; False once nothing is (past the deadline, SandboxError)."""
        left = self.cgroup.pids() if self.cgroup else uid_pids(self.host.uid(self.spec.slot))
        if not left:
            return False
        if time.monotonic() > deadline:
            raise SandboxError(f"processes {left} of the sandbox survived {EMPTY_WAIT_SECONDS}s")
        if self.cgroup:
            self.cgroup.kill()
        else:
            for pid in left:
                cgroups.kill_pid(pid)
        return True

    def _settle_accounts(self) -> None:
        """Once the sandbox is empty: collect an orphaned init, and read the OOM count."""
        if self.process and self.process.returncode is not None and self.process.returncode < 0:
            reap_orphans(self.host.uid(self.spec.slot))  # bwrap itself was killed: see become_subreaper
        if self.cgroup:
            self.oom_kills = self.cgroup.oom_kills()

    def _release(self) -> None:
        # The fds go last: a sandbox whose fds are closed has nothing left at all.
        _unfinished.discard(self)
        try:
            if self.cgroup:
                self.cgroup_released = self.cgroup.release()
        finally:
            self._close_fds()

    def open_fds(self) -> int:
        fds = [self._stdin_fd, self._status_fd, self._setup_fd, self._out_fd, self._err_fd]
        return sum(fd is not None for fd in fds) + bool(self.process and self.process.returncode is None)

    def _close_fds(self) -> None:
        self.close_stdin()
        for name in ("_status_fd", "_setup_fd", "_out_fd", "_err_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


# Sandboxes not yet released. A run's sandbox is torn down just after its answer, by the
# event loop; if the server stops in between, the loop is gone, and this finishes the job.
_unfinished: set[Sandbox] = set()
_at_exit = False


def _track(box: Sandbox) -> None:
    global _at_exit
    if not _at_exit:
        _at_exit = True
        atexit.register(_finish_unfinished)
    _unfinished.add(box)


def _finish_unfinished() -> None:
    for box in list(_unfinished):
        try:
            box._teardown_blocking()  # whether or not a destroy() began: its loop is gone
        except Exception as e:  # at exit, each sandbox gets its chance
            log.error("a sandbox could not be torn down at exit: %s", e)


def uid_pids(uid: int) -> list[int]:
    """Processes owned by a host uid: how a host without cgroups proves a slot is empty."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except FileNotFoundError:
                pass
    return pids
