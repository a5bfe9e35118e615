"""Runs: one way to run code, as a stream of events, with every limit enforced here.

Doors (REST, websocket, later more) only speak: they turn these events into their
own messages. The executor knows no HTTP, no websocket and no host: it enforces the
output cap, the timeouts and the verdicts, and reaches sandboxes through a Backend.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator

from sandbox import Limits, Outcome, SandboxError
from sandbox.built import Artifact, NotBuilt

from .backend import Backend, Chunk, Handle
from .events import Event, Exited, Output, StageFinished, Started
from .results import RunResult, StageResult, signal_name
from .spec import RunSpec

log = logging.getLogger(__name__)

# After a kill, how long the pipes may take to reach EOF before we stop waiting.
DRAIN_SECONDS = 2.0
# While a killed run drains, the kill is repeated this often: a kill that came while the
# sandbox was still starting finds no program yet, and the next one finds it.
KILL_AGAIN_SECONDS = 0.05
# Input sent before the sandbox is up is held, up to this much; past it the sender waits
# until it has been written to the program (which is back-pressure: a door waiting here
# takes no more input from its client).
EARLY_STDIN_BYTES = 1 << 20


class Stage:
    """One stage's output, under its own cap, and how it ended."""

    def __init__(self, name: str, limits: Limits):
        self.name = name
        self.limits = limits
        self.out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in self.out}
        self.total = 0
        self.truncated = False
        self.ended_by: str | None = None  # timeout, output_limit or killed

    def take(self, stream: str, chunk: bytes) -> str:
        """The chunk's text, cut at the output cap (truncated is then set)."""
        room = self.limits.output_bytes - self.total
        if len(chunk) > room:
            chunk = chunk[: max(room, 0)]
            self.truncated = True
        self.total += len(chunk)
        text = self.decoders[stream].decode(chunk) if chunk else ""
        self.out[stream].append(text)
        return text

    def finish(self) -> list[tuple[str, str]]:
        """What the decoders still hold. A character cut by the output cap is dropped, not shown as U+FFFD."""
        left = []
        for stream, decoder in self.decoders.items():
            if text := decoder.decode(b"", final=not self.truncated):
                self.out[stream].append(text)
                left.append((stream, text))
        return left

    def verdict(self, outcome: Outcome) -> str:
        if self.ended_by:
            return self.ended_by
        if outcome.oom_killed:
            return "memory"
        return "ok" if outcome.exit_code == 0 else "error"

    def result(self, outcome: Outcome) -> StageResult:
        return StageResult(
            stdout="".join(self.out["stdout"]),
            stderr="".join(self.out["stderr"]),
            exit_code=outcome.exit_code,
            signal=signal_name(outcome.signal),
            status=self.verdict(outcome),
            duration=round(outcome.duration_ns / 1_000_000),
            truncated=self.truncated,
            cpu_time=None if outcome.cpu_ns is None else round(outcome.cpu_ns / 1_000_000),
            peak_memory=outcome.peak_bytes,
        )


class Run:
    """One execution: iterate events() to drive it; kill(), write_stdin() and close_stdin() steer it."""

    def __init__(self, spec: RunSpec, backend: Backend, *, interactive: bool = False):
        self.id = uuid.uuid4()
        self.spec = spec
        self.backend = backend
        self.interactive = interactive
        self.handle: Handle | None = None
        self._stages = [] if spec.build_only else [Stage("run", spec.limits)]
        if spec.compiles:
            self._stages.insert(0, Stage("compile", spec.compile_limits))
        self.built: dict[str, Artifact] | None = None  # a build-only run's, once it has built
        self._current = self._stages[0]
        self._ended_by: str | None = None  # the client's kill, whichever stage it comes in
        # Input sent before the sandbox is up waits here, in order.
        self._early_stdin: deque[bytes] = deque()
        self._early_bytes = 0
        self._early_eof = False
        self._early_written = asyncio.Event()  # set once the early input is written, or the run is over
        self._flushing = False
        self._flush_task: asyncio.Task | None = None
        self._waiting: asyncio.Timeout | None = None  # the time the supervisor waits for the next event

    @property
    def started(self) -> int:
        """How many sandboxes it started: 1 once the backend gave it one, else 0."""
        return int(self.handle is not None)

    @property
    def warm(self) -> bool:
        return bool(self.handle and self.handle.warm)

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
                    if isinstance(event, Exited) and not answer.done():  # (done: cancelled by the caller)
                        answer.set_result(event.result)
                        # The caller goes on at the loop's next turn: the teardown, which the rest of
                        # the run starts, waits behind its answer.
                        await asyncio.sleep(0)
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
            # Not shielded (a shield costs the answer a turn of the loop): a caller that goes away
            # cancels the answer, which drive() then leaves be.
            return await answer
        except asyncio.CancelledError:
            self.kill()  # the caller went away: end the run; drive() still tears it down
            raise

    def kill(self) -> None:
        if self._ended_by is None:
            self._ended_by = "killed"
        self._end(self._current, "killed")

    async def write_stdin(self, data: bytes) -> bool:
        """Send input to the program; False once it no longer reads it."""
        if self.handle is None or self._flushing:
            if self._early_written.is_set():
                return False  # the run is over
            self._early_stdin.append(data)
            self._early_bytes += len(data)
            if self._early_bytes > EARLY_STDIN_BYTES:
                await self._early_written.wait()
            return not self._early_eof
        return await self.handle.write_stdin(data)

    def close_stdin(self) -> None:
        if self.handle is None or self._flushing:
            self._early_eof = True
        else:
            self.handle.close_stdin()

    async def _flush_early_stdin(self) -> None:
        # Later input queues behind this until it is all written, so order holds.
        try:
            while self._early_stdin:
                await self.handle.write_stdin(self._early_stdin.popleft())
        finally:
            self._early_stdin.clear()
            self._early_written.set()
        self._flushing = False
        if self._early_eof:
            self.handle.close_stdin()

    def _end(self, stage: Stage, reason: str) -> None:
        if stage.ended_by is None:
            stage.ended_by = reason
            if self.handle:
                self.handle.kill()
            waiting = self._waiting
            if waiting is not None and not waiting.expired():
                # Wake the supervisor now, not at its next event: it drains, and kills again.
                waiting.reschedule(asyncio.get_running_loop().time())

    async def events(self) -> AsyncIterator[Event]:
        try:
            self.handle = await self.backend.start(self.spec, interactive=self.interactive)
        except BaseException:
            self._early_written.set()  # it never starts: a sender waiting on its input goes on
            raise
        try:
            if self._ended_by:  # killed while starting
                self.handle.kill()
            if self._early_stdin or self._early_eof:
                self._flushing = True  # from here, later input queues behind the early input
                self._flush_task = asyncio.create_task(self._flush_early_stdin())
            yield Started(self.id)
            compiled: StageResult | None = None
            for stage in self._stages:
                self._current = stage
                if self._ended_by:
                    stage.ended_by = self._ended_by
                async for event in self._supervise(stage):
                    yield event
                outcome = self.handle.outcome(stage.name)
                if outcome.setup_error and not stage.ended_by:
                    raise SandboxError(outcome.setup_error)
                if stage.name != "run":
                    compiled = stage.result(outcome)
                    if self.spec.build_only and compiled.status == "ok":
                        compiled = await self._take_built(compiled)
                    yield StageFinished(stage.name, compiled)
                    if compiled.status != "ok":
                        yield Exited(self._compile_failed(compiled))
                        return
                    if self.spec.build_only:
                        yield Exited(
                            RunResult.without_run(self.id, self.spec.language, "ok", compile=compiled)
                        )
                else:
                    yield Exited(self._result(stage, outcome, compiled))
        finally:
            if self._flush_task is not None and not self._flush_task.done():
                self._flush_task.cancel()  # its program is gone: what it was writing is dropped
            self._early_written.set()  # (a task cancelled before it ran would never set it)
            # close() finishes its work even when cancelled meanwhile.
            await self.handle.close()

    async def _supervise(self, stage: Stage) -> AsyncIterator[Output]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stage.limits.timeout_ms / 1000
        draining = False
        open_streams, exited = 2, False
        while open_streams or not exited:
            if stage.ended_by and not draining:
                # Killed: the tree dies at once; give its pipes a moment to reach EOF.
                draining = True
                deadline = loop.time() + DRAIN_SECONDS
            wait = deadline - loop.time()
            if draining:
                wait = min(wait, KILL_AGAIN_SECONDS)
            # Cancelling a wait for the handle's next event loses nothing (the Handle protocol).
            # The wait is the supervisor's own (no task of its own): an event that is in already
            # comes without a turn of the loop.
            event = None
            self._waiting = asyncio.timeout(max(0.0, wait))
            try:
                async with self._waiting:
                    event = await self.handle.receive()
            except TimeoutError:
                pass  # the time is up, or _end() woke it
            finally:
                self._waiting = None
            if event is None:
                if stage.ended_by is None:
                    self._end(stage, "timeout")
                elif draining and loop.time() >= deadline:
                    log.error("run %s: output pipes still open %ss after the kill", self.id, DRAIN_SECONDS)
                    break
                elif draining:
                    self.handle.kill()
                continue
            if not isinstance(event, Chunk):
                # The program exited: the sandbox's init then ends whatever is left in it, so
                # strays holding the pipes die and both reach EOF.
                exited = True
            elif not event.data:
                open_streams -= 1
            else:
                text = stage.take(event.stream, event.data)
                if stage.truncated:
                    self._end(stage, "output_limit")
                if text:
                    yield Output(event.stream, text, stage.name)
        for stream, text in stage.finish():
            yield Output(stream, text, stage.name)

    async def _take_built(self, compiled: StageResult) -> StageResult:
        """What the compile built, for the test cases' runs; a compile that built nothing usable
        (no program, a link where it should be, too much) fails, saying why on its stderr."""
        try:
            self.built = await self.handle.built()
            return compiled
        except NotBuilt as e:
            stderr = compiled.stderr + ("\n" if compiled.stderr[-1:] not in ("", "\n") else "") + f"{e}\n"
            return compiled.model_copy(update={"stderr": stderr, "status": "error"})

    def _result(self, stage: Stage, outcome: Outcome, compiled: StageResult | None) -> RunResult:
        run = stage.result(outcome)
        return RunResult(
            id=self.id,
            language=self.spec.language,
            exit_code=run.exit_code,
            stdout=run.stdout,
            stderr=run.stderr,
            duration=run.duration,
            timed_out=run.status == "timeout",
            truncated=run.truncated,
            signal=run.signal,
            status=run.status,
            cpu_time=run.cpu_time,
            peak_memory=run.peak_memory,
            compile=compiled,
        )

    def _compile_failed(self, compiled: StageResult) -> RunResult:
        """Nothing ran: the run's own fields are empty, and the status says why."""
        status = "killed" if compiled.status == "killed" else "compile_error"
        return RunResult.without_run(self.id, self.spec.language, status, compile=compiled)


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
