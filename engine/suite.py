"""A graded run: one compile, then each test case in a fresh sandbox of its own, judged.

For a compiled language the program is built once, by a build-only run whose sandbox hands
back what the compile made (sandbox.built); each case then runs with those files placed
read-only, so no case sees another's files. Interpreted languages' cases are ordinary runs.
Cases run at once up to `parallel`, and are answered in the order given; with stop_on_failure
they run one at a time, in order, so that exactly the cases after the first failure are
skipped. Each case's verdict is an event (CaseFinished) as soon as it is known.

Every sandbox is started through the executor's Run, so the limits, output caps, verdicts
and the backend seam are the same as for any run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from sandbox import SandboxError

from . import grading
from .backend import Backend
from .errors import Busy
from .events import CaseFinished, Event, Exited, Output, StageFinished, Started
from .executor import Run
from .results import CaseResult, Mismatch, RunResult, StageResult, Summary
from .spec import RunSpec, TestCase

log = logging.getLogger(__name__)


class Suite:
    """A run with test cases: drive it with events() or result(); kill() ends every case."""

    interactive = False

    def __init__(self, spec: RunSpec, backend: Backend, *, parallel: int = 1):
        assert spec.tests is not None and spec.tests.cases
        self.id = uuid.uuid4()
        self.spec = spec
        self.tests = spec.tests
        self.backend = backend
        self.parallel = 1 if spec.tests.stop_on_failure else max(1, parallel)
        self.started = 0  # sandboxes started: the build's and each case's (the rest are refunded)
        self.killed = False
        self._runs: set[Run] = set()
        self._span: list[int] = []  # (first start, last end) of the cases, by the server's clock

    async def write_stdin(self, data: bytes) -> bool:
        return False  # each case's input is its own

    def close_stdin(self) -> None:
        pass

    def kill(self) -> None:
        self.killed = True
        for run in list(self._runs):
            run.kill()

    async def result(self) -> RunResult:
        async for event in self.events():
            if isinstance(event, Exited):
                return event.result
        raise RuntimeError("a graded run ended without a result")

    async def events(self) -> AsyncIterator[Event]:
        yield Started(self.id)
        compiled: StageResult | None = None
        built = None
        if self.spec.compiles:
            build = Run(replace(self.spec, build_only=True, stdin="", tests=None), self.backend)
            async for event in self._build(build):
                yield event
                if isinstance(event, StageFinished):
                    compiled = event.result
            if compiled is None or compiled.status != "ok" or build.built is None:
                unbuilt = self._unbuilt(compiled)
                for case in unbuilt.tests:
                    yield CaseFinished(case)
                yield Exited(unbuilt)
                return
            built = build.built
        results: list[CaseResult | None] = [None] * len(self.tests.cases)
        finished: asyncio.Queue[CaseResult | BaseException] = asyncio.Queue()
        places = asyncio.Semaphore(self.parallel)
        stop = asyncio.Event()

        async def one(index: int, case: TestCase) -> None:
            try:
                async with places:
                    if stop.is_set() or self.killed:
                        why = "killed by its client" if self.killed else None
                        result = CaseResult(index=index, name=case.name, status="skipped", error=why)
                    else:
                        result = await self._case(index, case, built)
            except Exception as e:  # (Unavailable: the host can't run anything, nor the next case)
                finished.put_nowait(e)
                return
            if result.status != "passed" and self.tests.stop_on_failure:
                stop.set()
            finished.put_nowait(result)

        tasks = [asyncio.ensure_future(one(i, case)) for i, case in enumerate(self.tests.cases)]
        try:
            for _ in tasks:
                result = await finished.get()
                if isinstance(result, BaseException):
                    self.kill()
                    raise result
                results[result.index] = result
                yield CaseFinished(result)
        finally:
            for task in tasks:
                task.cancel()  # only when the caller went away: the cases' runs are killed
            await asyncio.gather(*tasks, return_exceptions=True)
        yield Exited(self._graded(results, compiled))

    async def _build(self, build: Run) -> AsyncIterator[Event]:
        """The build-only run's compile output and its end; its Started and Exited stay inside."""
        self._runs.add(build)
        try:
            if self.killed:
                build.kill()
            async for event in build.events():
                if isinstance(event, Started):
                    self.started += 1
                elif isinstance(event, Output | StageFinished):
                    yield event
        finally:
            self._runs.discard(build)

    async def _case(self, index: int, case: TestCase, built) -> CaseResult:
        spec = replace(
            self.spec,
            stdin=case.stdin,
            args=self.spec.args if case.args is None else case.args,
            limits=case.limits or self.spec.limits,
            built=built,
            tests=None,
        )
        run = Run(spec, self.backend)
        self._runs.add(run)
        if self.killed:
            run.kill()
        begun = time.monotonic_ns()
        try:
            got = await run.result()
        except Busy:
            why = "not run: every execution slot stayed busy and the queue was full"
            return CaseResult(index=index, name=case.name, status="error", error=why)
        except SandboxError as e:
            log.error("test case %d of run %s: sandbox failure: %s", index, self.id, e)
            self.started += 1
            return CaseResult(index=index, name=case.name, status="error", error=f"the sandbox failed: {e}")
        finally:
            self._runs.discard(run)
        self.started += 1
        self._span = [min(self._span[:1] or [begun]), time.monotonic_ns()]
        if got.status == "killed" and self.killed:
            verdict, difference = "skipped", None
        else:
            verdict, difference = grading.judge(
                got.status, got.stdout, case.expected_output, self.tests.compare, self.tests.tolerance
            )
        return CaseResult(
            index=index,
            name=case.name,
            status=verdict,
            stdout=got.stdout,
            stderr=got.stderr,
            exit_code=got.exit_code,
            signal=got.signal,
            duration=got.duration,
            truncated=got.truncated,
            cpu_time=got.cpu_time,
            peak_memory=got.peak_memory,
            difference=Mismatch(**difference.to_wire()) if difference else None,
            error="killed by its client" if verdict == "skipped" else None,
        )

    def _unbuilt(self, compiled: StageResult | None) -> RunResult:
        """The compile failed (or was killed): no case runs."""
        killed = self.killed or (compiled is not None and compiled.status == "killed")
        verdict = "skipped" if killed else "compile_error"
        cases = [
            CaseResult(index=i, name=case.name, status=verdict) for i, case in enumerate(self.tests.cases)
        ]
        return self._summed(cases, compiled, "killed" if killed else "compile_error")

    def _graded(self, cases: list[CaseResult], compiled: StageResult | None) -> RunResult:
        passed = all(case.status == "passed" for case in cases)
        return self._summed(cases, compiled, "killed" if self.killed else "ok" if passed else "failed")

    def _summed(self, cases: list[CaseResult], compiled: StageResult | None, status: str) -> RunResult:
        ran = [case for case in cases if case.cpu_time is not None]
        return RunResult.without_run(
            self.id,
            self.spec.language,
            status,
            duration=round((self._span[1] - self._span[0]) / 1_000_000) if self._span else 0,
            cpu_time=sum(case.cpu_time for case in ran) if ran else None,
            peak_memory=max((case.peak_memory or 0 for case in ran), default=None) if ran else None,
            compile=compiled,
            tests=cases,
            summary=Summary.of([case.status for case in cases]),
        )
