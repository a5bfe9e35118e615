"""Runs: one way to run code, as a stream of events, with every limit enforced here.

Doors (REST, websocket, later more) only speak: they turn these events into
their own messages. This module knows no HTTP and no websocket.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import logging
import signal as signals
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from . import conf, languages, pool, sandbox
from . import isolation as isolation_probe
from .pool import POOL
from .schemas import RunResult, RunSpec

log = logging.getLogger(__name__)

READ_CHUNK = 65536
# After a kill, how long the pipes may take to reach EOF before we stop waiting.
DRAIN_SECONDS = 2.0


class Busy(Exception):
    """Every slot is taken and the wait queue is full (or the wait ran out)."""

    retry_after = 1


class Unavailable(Exception):
    """Isolation can't be set up on this host, so nothing runs."""


@dataclass(frozen=True)
class Started:
    id: uuid.UUID


@dataclass(frozen=True)
class Output:
    stream: str  # "stdout" or "stderr"
    data: str


@dataclass(frozen=True)
class Exited:
    result: RunResult


Event = Started | Output | Exited
# How runs started: from a pre-warmed sandbox, or cold. Read by /healthz and the tests.
STARTS: collections.Counter[str] = collections.Counter()


class Slots:
    """Execution slots and a bounded wait queue, shared by every door and every event loop."""

    def __init__(self, size: int, queue: int, wait_seconds: float):
        self.size = size
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._free = list(range(size - 1, -1, -1))
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()

    @property
    def in_use(self) -> int:
        return self.size - len(self._free)

    async def acquire(self) -> int:
        with self._lock:
            if self._free:
                return self._free.pop()
            if len(self._waiters) >= self.queue:
                raise Busy()
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as e:
            with self._lock:
                try:
                    self._waiters.remove((loop, fut))
                except ValueError:
                    pass
            fut.cancel()
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed a slot just as we gave up
            if isinstance(e, asyncio.TimeoutError):
                raise Busy() from None
            raise

    def release(self, slot: int) -> None:
        with self._lock:
            while self._waiters:
                loop, fut = self._waiters.popleft()
                if not fut.done():
                    loop.call_soon_threadsafe(self._hand_over, fut, slot)
                    return
            self._free.append(slot)

    def _hand_over(self, fut: asyncio.Future, slot: int) -> None:
        if fut.done():
            self.release(slot)
        else:
            fut.set_result(slot)


_slots: tuple[conf.RunnerConfig, Slots] | None = None
_slots_lock = threading.Lock()


def slots() -> Slots:
    global _slots
    config = conf.get()
    with _slots_lock:
        if _slots is None or _slots[0] is not config:
            _slots = (config, Slots(config.concurrency, config.queue_size, config.queue_wait_seconds))
        return _slots[1]


_isolation: dict[sandbox.Host, list[isolation_probe.Layer]] = {}


def isolation_failure(layers: list[isolation_probe.Layer]) -> str | None:
    broken = [f"{layer.name}: {layer.detail}" for layer in layers if layer.required and not layer.on]
    return "; ".join(broken) or None


async def isolation() -> list[isolation_probe.Layer]:
    """Check the sandbox once per process (and host configuration); every run depends on the verdict."""
    host = conf.get().host
    if host not in _isolation:
        layers = await isolation_probe.check(host)
        failure = isolation_failure(layers)
        if failure:
            log.error("isolation is not available, so no code will run: %s", failure)
        _isolation[host] = layers
    return _isolation[host]


async def ensure_isolation() -> None:
    failure = isolation_failure(await isolation())
    if failure:
        raise Unavailable(f"code execution is disabled: the sandbox can't isolate on this host ({failure})")


class Run:
    """One execution: iterate events() to drive it; kill(), write_stdin() and close_stdin() steer it."""

    def __init__(self, spec: RunSpec, *, interactive: bool = False):
        self.id = uuid.uuid4()
        self.spec = spec
        self.interactive = interactive
        self.box: sandbox.Sandbox | None = None
        self._ended_by: str | None = None
        self._out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in self._out}
        self._total = 0
        self._truncated = False
        # Input sent before the sandbox is up waits here, in order.
        self._early_stdin: deque[bytes] = deque()
        self._early_eof = False
        self._flushing = False
        self._flush_task: asyncio.Task | None = None

    async def result(self) -> RunResult:
        """Drive the run to its end and return the result (the REST door's way).

        The result is returned as soon as the program's exit and output are known. The run
        is driven by a task of its own, which goes on to tear the sandbox down and release
        its slot after the answer has gone; if the caller goes away first, the run is killed.
        """
        answer = asyncio.get_running_loop().create_future()

        async def drive() -> None:
            try:
                async for event in self.events():
                    if isinstance(event, Exited):
                        answer.set_result(event.result)
                if not answer.done():
                    raise RuntimeError("a run ended without a result")
            except BaseException as e:
                if answer.done():
                    raise  # after the answer: _in_background logs it
                if isinstance(e, asyncio.CancelledError):
                    answer.cancel()
                    raise
                answer.set_exception(e)

        _in_background(drive())
        try:
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            self.kill()  # the caller went away: end the run; drive() still tears it down
            raise

    def kill(self) -> None:
        self._end("killed")

    async def write_stdin(self, data: bytes) -> bool:
        """Send input to the program; False once it no longer reads it."""
        if self.box is None or self._flushing:
            self._early_stdin.append(data)
            return not self._early_eof
        return await self.box.write_stdin(data)

    def close_stdin(self) -> None:
        if self.box is None or self._flushing:
            self._early_eof = True
        else:
            self.box.close_stdin()

    async def _flush_early_stdin(self) -> None:
        # Later input queues behind this until it is all written, so order holds.
        while self._early_stdin:
            await self.box.write_stdin(self._early_stdin.popleft())
        self._flushing = False
        if self._early_eof:
            self.box.close_stdin()

    def _end(self, reason: str) -> None:
        if self._ended_by is None:
            self._ended_by = reason
            if self.box:
                self.box.kill()

    async def events(self) -> AsyncIterator[Event]:
        await ensure_isolation()
        config = conf.get()
        shared = slots()
        slot = await shared.acquire()
        try:
            warm = await self._warm_box(config)
            self.box = warm or await self._cold_box(config, slot)
            STARTS["warm" if warm else "cold"] += 1
            if self._ended_by:  # killed while starting
                self.box.kill()
            if self._early_stdin or self._early_eof:
                self._flushing = True  # from here, later input queues behind the early input
                self._flush_task = asyncio.create_task(self._flush_early_stdin())
            yield Started(self.id)
            async for event in self._supervise():
                yield event
            yield Exited(self._result())
        finally:
            try:
                if self.box:
                    # destroy() finishes its work even when cancelled meanwhile.
                    await self.box.destroy()
            finally:
                shared.release(slot)

    async def _cold_box(self, config: conf.RunnerConfig, slot: int) -> sandbox.Sandbox:
        lang = self.spec.language
        box_spec = sandbox.BoxSpec(
            argv=lang.argv(list(self.spec.args)),
            env=dict(lang.env),
            files=self.spec.sources(),
            binds=lang.binds(config.host.tools_dir),
            limits=self.spec.limits,
            slot=slot,
        )
        stdin = None if self.interactive else self.spec.stdin.encode()
        return await sandbox.Sandbox.start(box_spec, config.host, stdin=stdin)

    async def _warm_box(self, config: conf.RunnerConfig) -> sandbox.Sandbox | None:
        """Hand the run to a pre-warmed sandbox, if its language's pool has one."""
        POOL.ensure(config)  # with size 0 too: it also sweeps what a crashed server left
        if not config.pool_size:
            return None
        box = POOL.take(self.spec.language.name, config)
        if box is None:
            return None
        try:
            if self.spec.limits.memory_mib != config.defaults.memory_mib and box.cgroup:
                box.cgroup.set_memory(self.spec.limits.memory_mib << 20)
            handover = pool.handover(self.spec.sources(), list(self.spec.args))
            if self.interactive:
                await box.attach(None)
                await box.write_stdin(handover)
            else:
                await box.attach(handover + self.spec.stdin.encode())
        except OSError:
            # Already using more memory than this run may: start cold instead.
            await box.destroy()
            return None
        box.handed_ns = time.monotonic_ns()
        return box

    async def _supervise(self) -> AsyncIterator[Output]:
        box = self.box
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(name: str, reader: asyncio.StreamReader) -> None:
            while True:
                chunk = await reader.read(READ_CHUNK)
                queue.put_nowait((name, chunk))
                if not chunk:
                    return

        async def waiter() -> None:
            await box.finished()
            queue.put_nowait(("exit", b""))

        tasks = [
            asyncio.create_task(pump("stdout", box.stdout)),
            asyncio.create_task(pump("stderr", box.stderr)),
            asyncio.create_task(waiter()),
        ]
        deadline = loop.time() + self.spec.limits.timeout_ms / 1000
        draining = False
        open_streams, exited = 2, False
        try:
            while open_streams or not exited:
                if self._ended_by and not draining:
                    # Killed: the tree dies at once; give its pipes a moment to reach EOF.
                    draining = True
                    deadline = loop.time() + DRAIN_SECONDS
                try:
                    name, chunk = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    if self._ended_by is None:
                        self._end("timeout")
                        continue
                    log.error("run %s: output pipes still open %ss after the kill", self.id, DRAIN_SECONDS)
                    break
                if name == "exit":
                    # sandbox-init reported and exits: the kernel kills whatever is left in its
                    # pid namespace, so strays holding the pipes die and both reach EOF.
                    exited = True
                elif not chunk:
                    open_streams -= 1
                elif text := self._take(name, chunk):
                    yield Output(name, text)
        finally:
            for task in tasks:
                task.cancel()
        for name, decoder in self._decoders.items():
            # A character cut by the output cap is dropped rather than shown as U+FFFD.
            if text := decoder.decode(b"", final=not self._truncated):
                self._out[name].append(text)
                yield Output(name, text)

    def _take(self, name: str, chunk: bytes) -> str:
        room = self.spec.limits.output_bytes - self._total
        if len(chunk) > room:
            chunk = chunk[: max(room, 0)]
            self._truncated = True
            self._end("output_limit")
        self._total += len(chunk)
        text = self._decoders[name].decode(chunk) if chunk else ""
        self._out[name].append(text)
        return text

    def _result(self) -> RunResult:
        box = self.box
        status = box.exit_status()
        if status is None:
            # sandbox-init never reported: we killed the tree, or the sandbox never started.
            setup = box.setup_errors()
            if self._ended_by is None and setup:
                raise sandbox.SandboxError(setup)
            code = box.process.returncode if box.process else None
            signum = signals.SIGKILL if self._ended_by or code is None or code < 0 else code - 128
            exit_code, signum = (None, signum) if signum > 0 else (code, None)
            duration_ns = box.ended_ns - box.started_ns
        else:
            exit_code, signum, duration_ns = status.exit_code, status.signal, status.duration_ns
        if box.handed_ns:  # a pre-warmed sandbox's own clock started while it waited
            duration_ns = box.ended_ns - box.handed_ns
        if self._ended_by:
            verdict = self._ended_by
        elif (signum or exit_code) and box.oom_killed():  # the cgroup is read only for a failed run
            verdict = "memory"
        else:
            verdict = "ok" if exit_code == 0 else "error"
        return RunResult(
            id=self.id,
            language=self.spec.language.name,
            exit_code=exit_code,
            stdout="".join(self._out["stdout"]),
            stderr="".join(self._out["stderr"]),
            duration=round(duration_ns / 1_000_000),
            timed_out=verdict == "timeout",
            truncated=self._truncated,
            signal=_signal_name(signum),
            status=verdict,
        )


_background: set[asyncio.Task] = set()


def _in_background(coro) -> None:
    """Run coro to its end on this loop, holding the task so it is not collected midway."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_finished_in_background)


def _finished_in_background(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("a run's teardown failed", exc_info=task.exception())


def _signal_name(signum: int | None) -> str | None:
    if not signum:
        return None
    try:
        return signals.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def runtimes() -> list[dict]:
    return languages.runtimes(conf.get().host.tools_dir)
