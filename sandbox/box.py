"""One sandbox's lifecycle: start it, feed and read it, wait for it, kill it, prove it empty.

The chain for one run, all exec'd in place so the server keeps one pid to watch:

    sandbox-launch (root: joins the run's cgroups, then drops to the slot's unprivileged
                    host uid for good: no groups, no capabilities, no_new_privs)
      -> bwrap (new user, pid, net, ipc, uts, mount and cgroup namespaces)
        -> sandbox-init (sets rlimits, reports the real wait status)
          -> the compiler, for a compiled language, then
          -> the program
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal as signals
import time

from . import cgroups, seccomp, teardown, unfinished
from .argv import CompileFds, bwrap_argv, launcher_argv, open_tools
from .process import (
    Child,
    PipeReader,
    kill_pid,
    memfd,
    pipe,
    read_available,
    reader,
    reap_orphans,
    spawn,
    uid_pids,
)
from .spec import BoxSpec, ExitStatus, Host, Limits, Outcome, SandboxError
from .status import StatusPipe
from .stdin import StdinPipe
from .usage import Meter

log = logging.getLogger(__name__)


class Sandbox:
    """A running sandbox: read its output, feed its stdin, wait for it, kill it, destroy it."""

    def __init__(self, spec: BoxSpec, host: Host):
        self.spec = spec
        self.host = host
        self.cgroup: cgroups.Cgroup | None = None
        self.process: Child | None = None
        self.stdout: PipeReader | None = None
        self.stderr: PipeReader | None = None
        self.started_ns = 0
        self.handed_ns = 0  # when a pre-warmed sandbox was handed its run
        self.compiled_ns = 0  # when a compile stage's status came in
        self.run_started_ns = 0  # when the run stage was let go, after a compile
        self.ended_ns = 0
        self.stdin: StdinPipe | None = None
        self.status: StatusPipe | None = None
        self._setup_fd: int | None = None
        # A compile stage's output pipes, and the pipe that tells sandbox-init to go on to the run.
        self.compile_stdout: PipeReader | None = None
        self.compile_stderr: PipeReader | None = None
        self._compile_fds: list[int | None] = [None, None]
        self._go_fd: int | None = None
        self._oom_before_run = 0  # the cgroup's OOM kills when the run stage began
        self._over_limit = False  # the compile left more memory in use than the run may have
        self._out_fd: int | None = None
        self._err_fd: int | None = None
        self.destroyed = False
        self.cgroup_released = False  # kept as a spare or removed: no longer this sandbox's
        self.oom_kills = 0
        self.killed = False  # kill() was called: an unreported end is our SIGKILL
        self.meter: Meter | None = None  # the run's CPU time and peak memory, from its cgroup

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
    def launch(cls, spec: BoxSpec, host: Host, **fields) -> Sandbox:
        """Start it without an event loop (attach() connects its pipes); fields: a subclass's own."""
        box = cls(spec, host, **fields)
        unfinished.track(box)
        try:
            box._launch()
        except BaseException:
            box.discard()
            raise
        return box

    def _launch(self) -> None:
        # The cgroup starts with the first stage's limits: the compile's, if there is one.
        lim = self.spec.compile_limits if self.spec.compile else self.spec.limits
        join: list[str] = []
        if cgroups.support().version:
            self._make_cgroup(lim)
            join = self.cgroup.procs_files

        fds: list[int] = []
        try:
            try:
                filter_fd = memfd("seccomp", seccomp.bpf(zygote=self.spec.zygote))
                fds.append(filter_fd)
                spec, extra = self._program(fds)
            except seccomp.Unavailable as e:
                raise SandboxError(str(e)) from e
            placed = {**self.spec.files, **{name: made.data for name, made in self.spec.built.items()}}
            file_fds = {name: memfd(name, data) for name, data in placed.items()}
            fds += file_fds.values()
            build = None
            uid = self.host.uid(self.spec.slot)
            if self.spec.compile:
                self._compile_fds[0], c_out = pipe()
                self._compile_fds[1], c_err = pipe()
                go_r, self._go_fd = os.pipe2(os.O_CLOEXEC)
                fds += [c_out, c_err, go_r]
                build = CompileFds(c_out, c_err, go_r)
                for fd in build.output():
                    os.fchown(fd, uid, uid)
            # bwrap's own stdout and stderr (and sandbox-init's) carry only setup errors;
            # the program's output pipes reach sandbox-init as extra fds.
            status_w, in_r, out_w, err_w, setup_w = self._pipes(fds, uid)
            tools = open_tools(self.spec, self.host, fds)
            bwrap = bwrap_argv(spec, self.host, file_fds, status_w, filter_fd, out_w, err_w, tools, build)
            argv = launcher_argv(self.host, uid, join, bwrap)
            self.started_ns = time.monotonic_ns()
            self.process = spawn(
                argv,
                stdin=in_r,
                stdout=setup_w,
                stderr=setup_w,
                pass_fds=[status_w, filter_fd, out_w, err_w, *file_fds.values(), *tools.fds(), *extra]
                + (build.fds() if build else []),
                start_new_session=True,
            )
        finally:
            for fd in fds:
                os.close(fd)

    def _make_cgroup(self, lim: Limits) -> None:
        """The sandbox's cgroup, with these limits, and its meter started."""
        name = cgroups.name(self.spec.cgroup_prefix, self.spec.slot)
        limits = {"memory_bytes": lim.memory_mib << 20, "pids": lim.processes, "cpus": lim.cpus}
        try:
            self.cgroup = cgroups.Cgroup.create(
                cgroups.support(), self.host.cgroup_parent, name, cpu_weight=self.spec.cpu_weight, **limits
            )
        except OSError as e:
            raise SandboxError(f"cannot create the run's cgroup: {e}") from e
        self.meter = Meter(self.cgroup)
        self.meter.start()

    def _pipes(self, fds: list[int], uid: int) -> tuple[int, int, int, int, int]:
        """Its status, stdin, stdout, stderr and setup errors' pipes: their far ends, added to fds. The
        program's own are its uid's, so that it can open them again by name (`echo hi > /dev/stderr`)."""
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        fds.append(status_w)
        self.status = StatusPipe(status_r)
        in_r, in_w = self._stdin()
        fds.append(in_r)
        self.stdin = StdinPipe(in_w)
        self._out_fd, out_w = pipe()
        fds.append(out_w)
        self._err_fd, err_w = pipe()
        fds.append(err_w)
        self._setup_fd, setup_w = os.pipe2(os.O_CLOEXEC)
        fds.append(setup_w)
        for fd in (in_r, out_w, err_w):
            os.fchown(fd, uid, uid)
        return status_w, in_r, out_w, err_w, setup_w

    def _program(self, fds: list[int]) -> tuple[BoxSpec, list[int]]:
        """The spec bwrap is given, and fds its program gets besides (added to fds: a zygote's)."""
        return self.spec, []

    def _stdin(self) -> tuple[int, int]:
        """The program's stdin: its end, and ours."""
        return pipe()

    async def attach(self, stdin: bytes | None) -> None:
        """Give the program its input (None keeps stdin open for write_stdin()/close_stdin(); bytes
        are all of it), then connect the output pipes to the running loop."""
        if stdin is not None:
            self.stdin.fill(stdin)
        await self.connect()

    async def connect(self) -> None:
        """Connect the output pipes to the running loop. Each takes a turn of the loop: what the
        program writes meanwhile waits in its pipe."""
        self.stdout = await reader(self._out_fd)
        self.stderr = await reader(self._err_fd)
        self._out_fd = self._err_fd = None
        if self._compile_fds[0] is not None:
            self.compile_stdout = await reader(self._compile_fds[0])
            self.compile_stderr = await reader(self._compile_fds[1])
            self._compile_fds = [None, None]

    def take_pipes(self) -> tuple[int, int]:
        """The program's stdin (write end) and stdout (read end) as blocking fds, for a caller
        that speaks with it directly (sandbox.service) instead of through attach(); the caller
        closes them."""
        into, self.stdin.fd = self.stdin.fd, None
        out, self._out_fd = self._out_fd, None
        return into, out

    async def write_stdin(self, data: bytes) -> bool:
        """Send bytes to the program; False once it no longer reads stdin."""
        return await self.stdin.write(data)

    def close_stdin(self) -> None:
        if self.stdin:
            self.stdin.close()

    async def wait(self) -> int:
        """Wait for bwrap to exit: the program is done, though stray processes may still be dying."""
        code = await self.process.wait()
        self.ended_ns = self.ended_ns or time.monotonic_ns()
        return code

    async def finished(self, stage: str = "run") -> None:
        """Wait until the stage's program has exited: its status is reported, or the sandbox is gone.

        The status arrives as the program exits, a millisecond or so before bwrap has
        torn the namespaces down and exited itself.
        """
        if self.status.get(stage) is None:
            await self.status.wait(stage, self.process.exited())
            if self.status.get(stage) is None:
                # The status pipe ended without it: bwrap is gone. Collect its exit code.
                await self.process.wait()
        if stage == "run":
            self.ended_ns = self.ended_ns or time.monotonic_ns()
        else:
            self.compiled_ns = self.compiled_ns or time.monotonic_ns()

    def end_compile(self, go: bool = True) -> Outcome:
        """The compile stage's outcome, once it has exited; if it succeeded, go on to the run
        (unless go is False: what it built is then taken out with sandbox.built.take_from()).

        Before the run starts, the cgroup gets the run's own limits (its memory and process
        count, lower than the compile's) and the accounting starts again, so that the run's
        CPU time, peak memory and OOM verdict are its own.
        """
        outcome = self._outcome(self.status.get("compile"), compile=True)
        if outcome.failed or outcome.setup_error or self.killed or not go:
            return outcome
        try:
            self.set_limits(self.spec.limits)
        except OSError:
            # What the compile left in the tmpfs is more than the run's memory: it can't start.
            self._over_limit = True
            self.kill()
            return outcome
        if self.cgroup:
            self._oom_before_run = self.cgroup.oom_kills()
        self.start_accounting()
        go, self._go_fd = self._go_fd, None
        self.run_started_ns = time.monotonic_ns()
        try:
            os.write(go, b"g")
        except OSError:
            pass  # the sandbox is gone already: the run's outcome says so
        finally:
            os.close(go)
        return outcome

    def setup_errors(self) -> str:
        """What bwrap or sandbox-init said on failing to set the sandbox up (never the program's output)."""
        data = read_available(self._setup_fd) if self._setup_fd is not None else b""
        return data.decode(errors="replace").strip()

    def exit_status(self) -> ExitStatus | None:
        """The program's real wait status, as reported from inside; None if it never got that far."""
        return self.status.get("run") if self.status else None

    def outcome(self) -> Outcome:
        """How the program ended, once it has (see _outcome)."""
        return self._outcome(self.exit_status())

    def _outcome(self, status: ExitStatus | None, compile: bool = False) -> Outcome:
        """How a stage's program ended: the real status from inside, or what bwrap says.

        sandbox-init reports the program's wait status. When it never did, the tree was
        killed (by kill(), or the kernel), or the sandbox never started: bwrap's own exit
        code then stands for the program's (128+n for a signal), and its setup errors are
        returned. The cgroup is read for an OOM kill only when the program failed.
        """
        setup = None
        if status is None:
            code = self.process.returncode if self.process else None
            signum = signals.SIGKILL if self.killed or code is None or code < 0 else code - 128
            exit_code, signum = (None, int(signum)) if signum > 0 else (code, None)
            setup = None if self.killed else (self.setup_errors() or None)
        else:
            exit_code, signum, duration_ns = status.exit_code, status.signal, status.duration_ns
        # sandbox-init's clock is the stage's own, except where there is none, and for a pre-warmed
        # sandbox's first stage, whose program started while it waited.
        if status is None or (self.handed_ns and (compile or not self.spec.compile)):
            duration_ns = self._span(compile)
        oom = bool(signum or exit_code) and (self.oom_killed() > (0 if compile else self._oom_before_run))
        oom = oom or (self._over_limit and not compile)
        usage = self.meter.read() if self.meter and not self.destroyed else None
        return Outcome(
            exit_code, signum, duration_ns, oom, setup, usage and usage.cpu_ns, usage and usage.peak_bytes
        )

    def _span(self, compile: bool) -> int:
        """A stage's wall time by the server's clock: from the hand-over (or the start), or for a
        run after a compile from its go-ahead, to the stage's end (or now)."""
        now = time.monotonic_ns()
        begun = self.handed_ns or self.started_ns
        if compile:
            return (self.compiled_ns or self.ended_ns or now) - begun
        return (self.ended_ns or now) - (self.run_started_ns or begun)

    def start_accounting(self) -> None:
        """The run starts here (a pre-warmed sandbox's hand-over): count its CPU and memory from now."""
        if self.meter:
            self.meter.start()

    def set_limits(self, limits: Limits, compile: Limits | None = None) -> None:
        """Give a started sandbox a run's own limits (its memory and processes); OSError if it can't.
        With a compile stage still to run, the cgroup takes the compile's now and end_compile() the run's."""
        now = compile or limits
        if self.cgroup:
            self.cgroup.set_limits(now.memory_mib << 20, now.processes, now.cpus)
        self.spec.limits = limits
        if compile is not None:
            self.spec.compile_limits = compile

    def oom_killed(self) -> int:
        """How many times the kernel killed a process of this sandbox for exceeding the memory limit."""
        if self.cgroup and not self.destroyed:
            self.oom_kills = self.cgroup.oom_kills()
        return self.oom_kills

    def kill(self) -> None:
        """Kill the program's whole process tree now; bwrap then reaps it and exits."""
        self.killed = True
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
                    kill_pid(pid)

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
                await teardown.gone(self)
            except asyncio.CancelledError:
                # Cancelled, as when its event loop closes: finish the same work without the loop.
                teardown.gone_blocking(self)
                self._settle_accounts()
                raise
            self._settle_accounts()
        finally:
            if self.stdin:
                self.stdin.cancel()
            self._release()

    def held_cgroups(self) -> set[str]:
        """The directories of its cgroup (a zygote's: and its parked run's)."""
        return set(self.cgroup.dirs.values()) if self.cgroup else set()

    def restore_cpu_weight(self) -> None:
        """A pooled sandbox that waited at the idle weight gets the normal one for its run."""
        if self.cgroup:
            self.cgroup.set_cpu_weight(cgroups.DEFAULT_CPU_WEIGHT)

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
            teardown.gone_blocking(self)
            self._settle_accounts()
        finally:
            self._release()

    def _settle_accounts(self) -> None:
        """Once the sandbox is empty: collect an orphaned init, and read the OOM count."""
        if self.process and self.process.returncode is not None and self.process.returncode < 0:
            reap_orphans(self.host.uid(self.spec.slot))  # bwrap itself was killed: see become_subreaper
        if self.cgroup:
            self.oom_kills = self.cgroup.oom_kills()

    def _release(self) -> None:
        # The fds go last: a sandbox whose fds are closed has nothing left at all.
        unfinished.done(self)
        if self.meter:
            self.meter.close()
        try:
            if self.cgroup:
                self.cgroup_released = self.cgroup.release()
        finally:
            self._close_fds()

    def open_fds(self) -> int:
        fds = [
            self.stdin and self.stdin.fd,
            self.status and self.status.fd,
            self._setup_fd,
            self._out_fd,
            self._err_fd,
        ]
        fds += [*self._compile_fds, self._go_fd]
        held = sum(fd is not None for fd in fds) + bool(self.process and self.process.returncode is None)
        return held + (self.meter.open_fds() if self.meter else 0)

    def _close_fds(self) -> None:
        self.close_stdin()
        if self.status:
            self.status.close()
        for fd in [self._setup_fd, self._out_fd, self._err_fd, self._go_fd, *self._compile_fds]:
            if fd is not None:
                os.close(fd)
        self._setup_fd = self._out_fd = self._err_fd = self._go_fd = None
        self._compile_fds = [None, None]
