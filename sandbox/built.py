"""What a compile left in a sandbox's working directory, taken out to run again elsewhere.

Test cases compile once: the compile stage's sandbox builds the program, the server takes the
built files out, and each case then runs in a fresh sandbox of its own with them placed
read-only (sandbox.argv). The files are read by the server through the sandbox's own root
(/proc/<init>/root), after the compile has ended and sandbox-init has killed all it left:
nothing of the user's runs in the sandbox while it is read, and the go-ahead to the run
stage never comes.

The working directory is the user's, so what is there is hostile: every component is opened
without following a link, only regular files and directories are taken (a link, a FIFO or a
socket is refused), and the count, depth and size of what is taken are capped.
"""

from __future__ import annotations

import os
import signal
import stat
from dataclasses import dataclass

from .process import processes
from .spec import WORKDIR, SandboxError

MAX_FILES = 4096
MAX_DEPTH = 16
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True)
class Artifact:
    """A built file: its bytes, and whether it is a program (placed 0555, else 0444)."""

    data: bytes
    executable: bool = False


class NotBuilt(Exception):
    """The compile did not leave what the language's file says it builds, or left something
    that is refused (a link, a FIFO, too much): the user's doing, never the sandbox's."""


def take_from(box, paths: tuple[str, ...], max_bytes: int) -> dict[str, Artifact]:
    """What a Sandbox's compile built, at these paths of its working directory, once the compile
    has ended (Sandbox.end_compile(go=False)): NotBuilt if it is missing or refused."""
    outer = box.process.pid
    candidates = box.cgroup.pids() if box.cgroup else [pid for pid, _ in processes()]
    pid = init_pid(outer, candidates)
    if pid is None or box.killed:
        raise SandboxError("the sandbox ended before what it built could be taken out")
    try:
        return take(pid, outer, paths, max_bytes)
    except OSError as e:
        raise SandboxError(f"cannot take out what the compile built: {e}") from e


def init_pid(outer: int, candidates: list[int]) -> int | None:
    """sandbox-init's host pid: the child of bwrap (outer) among the candidates."""
    for pid in candidates:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == outer:
                    return pid
        except (OSError, IndexError, ValueError):
            continue
    return None


def take(pid: int, outer: int, paths: tuple[str, ...], max_bytes: int) -> dict[str, Artifact]:
    """The files at these paths (relative to the working directory; a directory is taken whole)
    from the sandbox whose init is `pid`, the child of bwrap `outer`. NotBuilt if one is missing
    or refused, or all of them are over max_bytes. OSError if the sandbox is gone."""
    pidfd = os.pidfd_open(pid)
    try:
        # The pidfd holds the process: if it is still alive after the open, the pid named it
        # (and not a process that reused the number) at the check and at the open.
        if not _child_of(pid, outer):
            raise ProcessLookupError(f"process {pid} is not the sandbox's init")
        root = os.open(f"/proc/{pid}/root{WORKDIR}", _OPEN | os.O_DIRECTORY)
        try:
            signal.pidfd_send_signal(pidfd, 0)
            taken = _Taking(max_bytes)
            for path in paths:
                taken.path(root, path)
            return taken.files
        finally:
            os.close(root)
    finally:
        os.close(pidfd)


def _child_of(pid: int, outer: int) -> bool:
    return init_pid(outer, [pid]) == pid


class _Taking:
    def __init__(self, max_bytes: int):
        self.left = max_bytes
        self.files: dict[str, Artifact] = {}

    def path(self, root: int, path: str) -> None:
        parts = path.split("/")
        fd = os.dup(root)
        for i, part in enumerate(parts):  # (each step closes the fd it starts from, even failing)
            fd = self._step(fd, part, path, directory=i < len(parts) - 1)
        try:
            self._take(fd, path, 0)
        finally:
            os.close(fd)

    def _step(self, at: int, name: str, path: str, directory: bool = False) -> int:
        """Open name under the directory fd `at` (closing it), never through a link."""
        try:
            return os.open(name, _OPEN | (os.O_DIRECTORY if directory else 0), dir_fd=at)
        except FileNotFoundError:
            raise NotBuilt(f"the compile made no {path}") from None
        except OSError as e:  # ELOOP: a link; ENOTDIR: not a directory
            raise NotBuilt(f"{path} is not a regular file or directory ({e.strerror})") from None
        finally:
            os.close(at)

    def _take(self, fd: int, path: str, depth: int) -> None:
        found = os.fstat(fd)
        if stat.S_ISDIR(found.st_mode):
            if depth >= MAX_DEPTH:
                raise NotBuilt(f"{path} is nested deeper than {MAX_DEPTH} directories")
            for name in sorted(os.listdir(fd)):
                child = self._step(os.dup(fd), name, f"{path}/{name}")
                try:
                    self._take(child, f"{path}/{name}", depth + 1)
                finally:
                    os.close(child)
            return
        if not stat.S_ISREG(found.st_mode):
            raise NotBuilt(f"{path} is not a regular file or directory")
        if len(self.files) >= MAX_FILES:
            raise NotBuilt(f"the compile made more than {MAX_FILES} files")
        if found.st_size > self.left:
            raise NotBuilt(f"what the compile made is over {self.left >> 20} MiB")
        data = _read(fd, found.st_size)
        self.left -= len(data)
        self.files[path] = Artifact(data, bool(found.st_mode & 0o111))


def _read(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
