"""One way in for every door: admit, run, record, release and refund, in that order, once.

A door validates its request (runner.validation), identifies its client
(runner.fairuse.identify), and then only translates: the REST door awaits
`Submission.result()`, the websocket forwards `Submission.events()`. Neither admits,
stores or refunds by itself, so every door charges and refunds credits the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from engine.errors import Busy, Unavailable
from engine.events import Event, Exited
from engine.executor import Run
from engine.results import RunResult
from engine.spec import RunSpec
from engine.suite import Suite
from sandbox import SandboxError

from . import conf, fairuse, metrics
from .errors import Refused
from .recorder import RECORDER

log = logging.getLogger("runner.runs")
# The runs admitted and not yet released, for a server that stops: it waits for them, then
# kills what is left (playground.server).
ACTIVE: set[Submission] = set()
_accepting = True


def stop_accepting() -> None:
    """From now on every submit is refused (unavailable): the server is stopping."""
    global _accepting
    _accepting = False


async def wait_idle(seconds: float) -> bool:
    """Wait until no run is in flight, for at most `seconds`; whether none is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while ACTIVE and loop.time() < deadline:  # noqa: ASYNC110 (a handful of polls, once, at stop)
        await asyncio.sleep(0.05)
    return not ACTIVE


def kill_all() -> int:
    for submission in list(ACTIVE):
        submission.kill()
    return len(ACTIVE)


async def submit(
    client: fairuse.Client, spec: RunSpec, *, interactive: bool = False, widen: bool = True
) -> Submission:
    """Admit a run for this client (Refused: rate_limited or no_credits); drive it with the result.

    A run with test cases is a run per case and one for the compile, to the rate and the credits;
    its cases run at once on as many of the client's places as are free (at least one), unless
    widen is False (a batch's runs share the client's places among themselves)."""
    try:
        if not _accepting:
            raise Refused("unavailable", "the server is stopping; try again shortly", retry_after=1,
                          headers={"Retry-After": "1"})  # fmt: skip
        admitted = await fairuse.admit(client, spec.runs)
    except Refused as e:
        metrics.REFUSALS.labels(e.code).inc()
        raise
    if widen and spec.tests is not None and not spec.tests.stop_on_failure:
        try:
            await admitted.widen(min(len(spec.tests.cases), client.concurrency))
        except Refused:
            pass  # the store stopped answering: the cases run one at a time
    return Submission(admitted, spec, interactive)


class Submission:
    """An admitted run: drive it once, with result() or events(); steer it with the rest."""

    def __init__(self, admitted: fairuse.Pass, spec: RunSpec, interactive: bool):
        self.admitted = admitted
        self.spec = spec
        if spec.tests is not None:
            self.run = Suite(spec, conf.backend(), parallel=admitted.places)
        else:
            self.run = Run(spec, conf.backend(), interactive=interactive)
        # What an interactive client sent: counted against its budget, and kept for the record
        # up to what a record keeps (RUNNER_STORED_LIMIT).
        self._stdin: list[str] = []
        self._stdin_kept = 0
        self._stdin_sent = 0
        ACTIVE.add(self)

    @property
    def id(self):
        return self.run.id

    @property
    def headers(self) -> dict[str, str]:
        """The client's rate limit after this run, for doors that speak HTTP."""
        return self.admitted.headers()

    async def result(self) -> RunResult:
        """Run to the end, store the run, and return its result (the sandbox is torn down after)."""
        try:
            result = await self._refunding(self.run.result())
        except SandboxError:
            metrics.SANDBOX_FAILURES.inc()
            raise
        finally:
            await self._release()
        await self._record(result)
        return result

    async def events(self) -> AsyncIterator[Event]:
        """The run's events as they happen; the run is stored before its Exited event is yielded."""
        stream = self.run.events()
        try:
            try:
                first = await self._refunding(anext(stream))
            except StopAsyncIteration:
                return
            yield first
            async for event in stream:
                if isinstance(event, Exited):
                    await self._record(event.result)
                yield event
        except SandboxError:
            metrics.SANDBOX_FAILURES.inc()
            raise
        finally:
            try:
                await stream.aclose()  # the sandbox is gone before the client's place is given back
            finally:
                await self._release()

    async def _release(self) -> None:
        ACTIVE.discard(self)
        # What never started costs nothing: a run refused as busy, one that can't run here, a
        # graded run's skipped cases.
        await self.admitted.refund(self.admitted.runs - self.run.started)
        await self.admitted.release()

    async def write_stdin(self, data: str) -> bool:
        """Send input to the program (False once it no longer reads it); waits while the program
        has not read what it was sent before. Refused (too_large) past the run's stdin budget,
        and the run is then killed."""
        raw = data.encode()
        config = conf.get()
        self._stdin_sent += len(raw)
        if self._stdin_sent > config.stdin_limit_bytes:
            self.kill()
            raise Refused(
                "too_large",
                f"stdin is over this run's limit of {config.stdin_limit_bytes} bytes; the run is killed",
                field="data",
            )
        if self._stdin_kept <= config.stored_limit_bytes:
            self._stdin.append(data)
            self._stdin_kept += len(raw)
        return await self.run.write_stdin(raw)

    def close_stdin(self) -> None:
        self.run.close_stdin()

    def kill(self) -> None:
        self.run.kill()

    async def _refunding(self, awaitable):
        """Await the run's start, counting a run refused as busy or that can't run at all (its
        credit is given back at release, as every run's that never started)."""
        try:
            return await awaitable
        except (Busy, Unavailable) as e:
            metrics.REFUSALS.labels("busy" if isinstance(e, Busy) else "unavailable").inc()
            raise

    async def _record(self, result: RunResult) -> None:
        spec = self.spec
        if self._stdin:
            spec = replace(spec, stdin="".join(self._stdin))
        await RECORDER.record(spec, result)
        metrics.ran(result)
        # Written once the answer is out (the rest of this turn of the loop writes it).
        asyncio.get_running_loop().call_soon(self._log, result)

    def _log(self, result: RunResult) -> None:
        """One line a run: who, what, how it ended and what it used; never its code, input or output."""
        client = self.admitted.client
        fields = {
            "run": str(result.id),
            "language": result.language,
            "status": result.status,
            "duration_ms": result.duration,
            "cpu_ms": result.cpu_time,
            "peak_memory": result.peak_memory,
            "client": f"key {client.key.prefix}" if client.key else client.address,
        }
        text = " ".join(f"{k}={v}" for k, v in fields.items() if k != "run")
        log.info("run %s %s", result.id, text, extra={"fields": fields})
