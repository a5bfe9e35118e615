"""Process plumbing: the one seam that starts processes, pidfd waits, orphans, pipes and /proc scans.

Every process this project starts, sandboxed or not, is started by `spawn()` here.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator

from .spec import LAUNCH_ENV, PIPE_BYTES

log = logging.getLogger(__name__)

ORPHAN_EXIT_SECONDS = 1.0  # an adopted init, once its sandbox is empty, is already exiting
PR_SET_CHILD_SUBREAPER = 36
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class Watched:
    """A process awaited through a pidfd on whichever event loop asks.

    asyncio's own child watcher starts a thread per process; a pidfd needs none,
    and works from any loop (the tests run several). A subclass says how its exit
    code is collected (_collect).
    """

    def __init__(self, pid: int, pidfd: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd: int | None = pidfd
        self._exited: asyncio.Future | None = None
        self._watched_by: asyncio.AbstractEventLoop | None = None

    def _collect(self) -> int | None:
        """Its exit code once it has exited, else None."""
        raise NotImplementedError

    def reap(self) -> bool:
        """Collect the exit status if the process has exited; True once it has."""
        if self.returncode is None:
            code = self._collect()
            if code is None:
                return False
            self.returncode = code
            self.close()
            if self._exited is not None and not self._exited.done():
                self._exited.set_result(code)
        return True

    def kill(self) -> None:
        """SIGKILL it, by its pidfd: never another process that got its pid."""
        if self.returncode is None and self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        if self.reap():
            return self.returncode
        # Shielded: one waiter giving up must not cancel the others' wait.
        return await asyncio.shield(self.exited())

    def exited(self) -> asyncio.Future:
        """A future done once the process has exited, watched from now on the running loop (if it
        still runs): to add a callback to or wait on, never to cancel (wait() shields it)."""
        if self._exited is None:
            loop = asyncio.get_running_loop()
            self._exited = loop.create_future()
            if self.returncode is not None:
                self._exited.set_result(self.returncode)
            else:
                self._watched_by = loop
                loop.add_reader(self._pidfd, self.reap)
        return self._exited

    def close(self) -> None:
        """Close the pidfd (it is then watched no more)."""
        if self._watched_by is not None:
            # Unwatched before the fd is closed: a later fd with the same number must
            # not inherit this registration.
            self._watched_by.remove_reader(self._pidfd)
            self._watched_by = None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class Child(Watched):
    """A process we started, reaped here."""

    def __init__(self, popen: subprocess.Popen):
        super().__init__(popen.pid, os.pidfd_open(popen.pid))
        self.popen = popen

    def _collect(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: it is gone, its code unknown
            pid, status = self.pid, 0x7F00
        if pid == 0:
            return None
        code = os.waitstatus_to_exitcode(status)
        self.popen.returncode = code  # so Popen never waits for it again
        return code


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


def processes() -> Iterator[tuple[int, int]]:
    """(pid, host uid) of every process on the host: the one /proc scan."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                yield int(name), os.stat(f"/proc/{name}").st_uid
            except FileNotFoundError:
                pass


def started(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def uid_pids(uid: int) -> list[int]:
    """Processes owned by a host uid: how a host without cgroups proves a slot is empty."""
    return [pid for pid, owner in processes() if owner == uid]


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def reap_orphans(uid: int) -> None:
    """Reap the processes of a sandbox's uid that were adopted by this process.

    Called once the sandbox is empty. A process leaves its cgroup a moment before it
    becomes a zombie, so an adopted one may still be exiting: each is waited for briefly.
    """
    me = os.getpid()
    for pid in uid_pids(uid):
        if parent_pid(pid) == me:
            _reap_exiting(pid)


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


def pipe(size: int = PIPE_BYTES) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, size)
    except OSError:
        pass  # stays at the kernel default; only slower to fill
    return r, w


def pipe_size(fd: int) -> int:
    return fcntl.fcntl(fd, F_GETPIPE_SZ)


def memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name.replace("/", "_"), os.MFD_CLOEXEC)
    write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def read_available(fd: int) -> bytes:
    """What a pipe holds now, without waiting for more."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    except BlockingIOError:
        pass
    return data


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class PipeReader(asyncio.StreamReader):
    """A pipe's read end on the loop, which can leave what is written in the pipe for a while."""

    async def hold(self, seconds: float) -> None:
        """Read nothing for `seconds`: what the program writes meanwhile waits in the pipe (which
        blocks the program once it is full), and the next read takes it all at once."""
        transport = self._transport
        if transport is None or self._paused or self._eof or transport.is_closing():
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if not transport.is_closing():
                transport.resume_reading()


async def reader(fd: int) -> PipeReader:
    loop = asyncio.get_running_loop()
    stream = PipeReader(limit=PIPE_BYTES, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    return stream
