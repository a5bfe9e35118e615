"""Python runs forked from a zygote: a pre-initialised interpreter that skips Python's start.

A zygote is a pooled sandbox (sandbox.pool) of every ordinary layer (its own uid, cgroup,
user, pid, net, IPC, UTS and cgroup namespaces, no network) whose program, runtimes/pool-loader.py
--zygote, has started Python once and then waits in runtimes/zygote.c. For each run the server
makes the run's own cgroup and pipes and sends the pipes to the zygote over its control socket
(its stdin, a SOCK_SEQPACKET socket). The zygote forks the run's first process and sends back
its pidfd; the server moves that process into the run's cgroup, and only then lets it go on.
All this is done before the run comes ("parked", in the pool's thread): the process enters fresh
mount, pid, IPC and cgroup namespaces, with a fresh tmpfs as its working directory, a fresh
/dev/shm and a fresh /proc (covered as every sandbox's is), and waits. When the run comes it
gets the run's limits and covers, drops every capability, installs the run's seccomp filter
(which denies every namespace and mount call), and becomes the program, as a pooled Python
sandbox would.

What holds runs apart:
  - one run at a time per zygote: a zygote is lent to one run and given back only once that
    run's cgroup is provably empty; it reaps every process of the run itself before it reads
    the next request. Runs at once use separate zygotes.
  - nothing of the zygote is reachable from a run: it is outside the run's pid namespace, not
    dumpable, and holds no fd of the run's but while it forks; the run keeps fds 0-2 only.
  - no run's data is in a zygote: it never runs user code, and each run is forked from it
    afresh. Its hash seed is shared by its runs: a zygote serves ZYGOTE_RUNS runs, or
    ZYGOTE_SECONDS, then it is replaced (SECURITY.md).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from dataclasses import replace

from . import cgroups, procfs, seccomp
from .box import Sandbox
from .process import Watched, memfd, write_all
from .spec import DEV_SHM_BYTES, BoxSpec, Host, Limits, SandboxError

log = logging.getLogger(__name__)

ZYGOTE_RUNS = 16  # runs one zygote serves before it is replaced
ZYGOTE_SECONDS = 60.0  # and the longest it serves
# A zygote that has not forked in this time is broken. (It forks in the pool's thread, never on an
# event loop; a new one answers once Python has started.)
ANSWER_SECONDS = 10.0
# The zygote's own processes (its sandbox-init and itself) run on the run's host uid too, and
# count against the program's RLIMIT_NPROC as bwrap and sandbox-init do in a sandbox of its own.
EXTRA_PROCESSES = 2


# In a zygote's argv: replaced by the number of the fd its runs' seccomp filter comes on.
FILTER_FD = "{filter-fd}"


class ZygoteError(SandboxError):
    """The zygote did not fork the run (it is discarded; the run starts another way)."""


class Zygote(Sandbox):
    """A zygote's sandbox, waiting in the pool or lent to one run, and its control socket."""

    def __init__(self, spec: BoxSpec, host: Host):
        super().__init__(spec, host)
        self.control: socket.socket | None = None
        self._output: int | None = None  # its own stdout: it says nothing there
        self.runs = 0  # runs forked (the parked one too)
        self.born = time.monotonic()
        self.parked: ZygoteRun | None = None  # its next run, forked and in its cgroup, waiting
        self.retired = False

    def _launch(self) -> None:
        super()._launch()
        control, self._output = self.take_pipes()
        self.control = socket.socket(fileno=control)

    def _program(self, fds: list[int]) -> tuple[BoxSpec, list[int]]:
        """It reads the filter of its runs from an fd named in its argv."""
        run_filter = memfd("seccomp-run", seccomp.bpf())
        fds.append(run_filter)
        return replace(self.spec, argv=[a.replace(FILTER_FD, str(run_filter)) for a in self.spec.argv]), [
            run_filter
        ]

    def _stdin(self) -> tuple[int, int]:
        """Its stdin is its control socket, both ways."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return theirs.detach(), ours.detach()

    def worn(self) -> bool:
        """It has served its share of runs (or of time): replace it rather than lend it again."""
        return self.runs >= ZYGOTE_RUNS or time.monotonic() - self.born > ZYGOTE_SECONDS

    def usable(self) -> bool:
        return (
            not self.destroyed
            and not self.retired
            and not self.worn()
            and self.process.returncode is None
            and not self.process.reap()
        )

    def retire(self) -> None:
        """Serve no more runs: it is replaced."""
        self.retired = True

    def park(self) -> None:
        """Fork its next run now, into a cgroup of its own, to wait for the run (blocking: the
        pool's thread calls it). Moving a process into a v1 memory cgroup can wait for an RCU
        grace period, many milliseconds, which no run should wait for (bench/NOTES.md)."""
        if self.parked is None:
            self.parked = ZygoteRun.prepare(self)

    def unpark(self) -> ZygoteRun | None:
        run, self.parked = self.parked, None
        return run

    def held_cgroups(self) -> set[str]:
        return super().held_cgroups() | (self.parked.held_cgroups() if self.parked else set())

    def discard(self) -> None:
        if self.parked is not None:
            self.unpark().discard()
        super().discard()

    def fork(self, fds: list[int]) -> int:
        """Hand it a run's fds; the pidfd of the run's first process. ZygoteError if it fails."""
        self.runs += 1
        try:
            socket.send_fds(self.control, [b"f"], fds)
            if not select.select([self.control], [], [], ANSWER_SECONDS)[0]:
                raise ZygoteError("the zygote did not answer")
            answer, got, _flags, _addr = socket.recv_fds(self.control, 16, 1)
        except OSError as e:
            raise ZygoteError(f"the zygote is gone: {e}") from e
        if answer != b"f" or len(got) != 1:
            for fd in got:
                os.close(fd)
            detail = self.setup_errors() or "no pidfd"
            raise ZygoteError(f"the zygote did not fork the run: {detail}")
        return got[0]

    def open_fds(self) -> int:
        parked = self.parked.open_fds() if self.parked else 0
        return super().open_fds() + (self.control is not None) + (self._output is not None) + parked

    def _close_fds(self) -> None:
        if self.control is not None:
            self.control.close()
        if self._output is not None:
            os.close(self._output)
        self.control = self._output = None
        super()._close_fds()


class Forked(Watched):
    """The run's first process, by its pidfd: not our child (the zygote's), so it is never reaped here.

    returncode: None while it runs; once it has exited, 125, which stands for its exit only where
    no status came (it failed before the program ran): the program's own comes on the status pipe.
    """

    def __init__(self, pidfd: int):
        super().__init__(host_pid(pidfd), pidfd)

    def _collect(self) -> int | None:
        # A pidfd is readable once its process has exited (closed: gone with its run).
        return 125 if self._pidfd is None or select.select([self._pidfd], [], [], 0)[0] else None


def host_pid(pidfd: int) -> int:
    """The pid a pidfd names, as this process's pid namespace numbers it."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                if pid > 0:
                    return pid
    raise ZygoteError("the run's first process is gone already")


class ZygoteRun(Sandbox):
    """One run forked from a zygote: to its caller, a taken pooled sandbox like any other.

    It has its own cgroup, pipes and status pipe, made as a cold sandbox's are, on its zygote's uid
    (its spec's slot), and its process is the run's first process (Forked). The zygote it came from
    is `zygote`, lent to it until the run is destroyed.
    """

    def __init__(self, spec: BoxSpec, host: Host, zygote: Zygote):
        super().__init__(spec, host)
        self.zygote = zygote

    @classmethod
    def prepare(cls, zygote: Zygote) -> ZygoteRun:
        """Fork a run's first process, in a cgroup of its own with the zygote's limits: it waits
        for begin(). Blocking."""
        spec = BoxSpec(argv=list(zygote.spec.argv), limits=zygote.spec.limits, slot=zygote.spec.slot)
        return cls.launch(spec, zygote.host, zygote=zygote)

    def _launch(self) -> None:
        self._make_cgroup(self.spec.limits)
        theirs: list[int] = []  # the run's ends of its pipes: the zygote's once sent, closed here
        try:
            status_w, in_r, out_w, err_w, setup_w = self._pipes(theirs, self.host.uid(self.spec.slot))
            go_r, self._go_fd = os.pipe2(os.O_CLOEXEC)
            theirs.append(go_r)
            self.started_ns = time.monotonic_ns()
            self.process = Forked(self.zygote.fork([in_r, out_w, err_w, status_w, go_r, setup_w]))
        finally:
            for fd in theirs:
                os.close(fd)
        self.cgroup.add(self.process.pid)
        # In its cgroup: it makes everything up to the program now, with the pool's limits.
        write_all(self._go_fd, self._request())

    def begin(self, limits: Limits) -> None:
        """The run is here: its limits on its cgroup, then its go-ahead, which is its request (its
        limits and its /proc's covers: runtimes/zygote.c). OSError if it can't be given them (it
        died while parked: its setup errors are logged)."""
        self.spec.limits = limits
        self.cgroup.set_limits(limits.memory_mib << 20, limits.processes, limits.cpus)
        go, self._go_fd = self._go_fd, None
        try:
            write_all(go, self._request())
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror}: {self.setup_errors() or 'it exited'}") from None
        finally:
            os.close(go)

    def _request(self) -> bytes:
        """The run's limits, then what covers its /proc: made for this run, as for any sandbox
        (sandbox.argv), in runtimes/zygote.c's words, framed by an 8-byte length."""
        lim = self.spec.limits
        data_limit = 0 if cgroups.support().has("memory") else lim.memory_mib << 20
        parts = [
            f"{lim.open_files} {lim.file_size_mib << 20} {lim.processes + EXTRA_PROCESSES} "
            f"{data_limit} {lim.tmpfs_mib << 20} {DEV_SHM_BYTES}\n".encode()
        ]
        for path, data in procfs.masks(lim).items():
            parts += [f"F {len(data)} {path}\n".encode(), data]
        parts += [f"D {path}\n".encode() for path in procfs.existing(procfs.EMPTY_DIRS)]
        body = b"".join(parts)
        return len(body).to_bytes(8, "big") + body

    def kill(self) -> None:
        """Kill every process of the run: its whole cgroup (nothing of the zygote is in it)."""
        self.killed = True
        self.ended_ns = self.ended_ns or time.monotonic_ns()
        if self._go_fd is not None:  # not let go yet: it exits at once
            os.close(self._go_fd)
            self._go_fd = None
        if self.cgroup_released or not self.cgroup:
            return
        try:
            self.cgroup.kill()
        except OSError as e:
            log.error("cgroup kill failed: %s", e)

    def _close_fds(self) -> None:
        if self.process:
            self.process.close()  # its pidfd: the zygote's child, never reaped here
        super()._close_fds()
