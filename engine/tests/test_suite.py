"""A graded run's logic (engine.suite), through a fake backend whose "program" doubles its input:
compile once, a fresh run per case, order, parallelism, stopOnFailure, kills and refusals."""

from __future__ import annotations

import asyncio

import pytest

from engine.backend import Chunk, StageExit
from engine.errors import Busy
from engine.events import CaseFinished, Exited, Output, StageFinished, Started
from engine.spec import RunSpec, TestCase, Tests
from engine.suite import Suite
from sandbox import Limits, Outcome
from sandbox.built import Artifact, NotBuilt

EXIT_0 = Outcome(0, None, 2_000_000, False, cpu_ns=3_000_000, peak_bytes=1000)
PROGRAM = {".main": Artifact(b"\x7fELF", True)}


class Handle:
    """Plays one start: a compile (a build-only spec) or the program, which prints 2 * stdin."""

    warm = False

    def __init__(self, backend: Backend, spec: RunSpec):
        self.backend, self.spec = backend, spec
        self.queue: asyncio.Queue = asyncio.Queue()
        self.exit = EXIT_0
        self.killed = False
        self.task = asyncio.create_task(self._play())

    async def _play(self):
        if self.spec.build_only:
            self.queue.put_nowait(Chunk("stderr", b"warning: careful\n", "compile"))
            if self.backend.compile_fails:
                self.exit = Outcome(1, None, 1_000_000, False)
            for stream in ("stdout", "stderr"):
                self.queue.put_nowait(Chunk(stream, b"", "compile"))
            self.queue.put_nowait(StageExit("compile"))
            return
        self.backend.running += 1
        self.backend.most = max(self.backend.most, self.backend.running)
        try:
            n = int(self.spec.stdin or 0)
            await asyncio.sleep(self.backend.delays.get(n, 0.01))
            if n < 0:
                self.exit = Outcome(3, None, 1_000_000, False)
            self.queue.put_nowait(Chunk("stdout", f"{2 * n}\n".encode()))
            for stream in ("stdout", "stderr"):
                self.queue.put_nowait(Chunk(stream, b""))
            self.queue.put_nowait(StageExit("run"))
        finally:
            self.backend.running -= 1

    async def receive(self):
        return await self.queue.get()

    async def write_stdin(self, data):
        return True

    def close_stdin(self):
        pass

    def kill(self):
        if not self.task.done():
            self.task.cancel()
            self.killed = True
            stage = "compile" if self.spec.build_only else "run"
            for step in (Chunk("stdout", b"", stage), Chunk("stderr", b"", stage), StageExit(stage)):
                self.queue.put_nowait(step)

    def outcome(self, stage):
        return Outcome(None, 9, 1_000_000, False) if self.killed else self.exit

    async def built(self):
        if self.backend.not_built:
            raise NotBuilt("the compile made no .main")
        return PROGRAM

    async def close(self):
        self.task.cancel()


class Backend:
    def __init__(self, delays=None, compile_fails=False, not_built=False, busy_for=()):
        self.delays = delays or {}
        self.compile_fails = compile_fails
        self.not_built = not_built
        self.busy_for = set(busy_for)
        self.started: list[RunSpec] = []
        self.running = self.most = 0

    async def start(self, spec, *, interactive):
        if spec.stdin in self.busy_for:
            raise Busy()
        self.started.append(spec)
        return Handle(self, spec)


def graded(*stdins, compiled=False, expected=None, **options) -> RunSpec:
    cases = tuple(
        TestCase(f"case {n}", n, expected_output=(expected or {}).get(n, str(2 * int(n)))) for n in stdins
    )
    return RunSpec(
        "c" if compiled else "python",
        "code",
        compile_limits=Limits(timeout_ms=5000) if compiled else None,
        tests=Tests(cases, **options),
    )


async def events_of(suite: Suite) -> list:
    return [event async for event in suite.events()]


async def test_each_case_is_a_fresh_run_judged_and_answered_in_the_order_given():
    backend = Backend(delays={1: 0.2})  # the first case finishes last
    suite = Suite(graded("1", "2", "3", expected={"3": "7"}), backend, parallel=3)
    events = await events_of(suite)
    assert isinstance(events[0], Started) and isinstance(events[-1], Exited)
    finished = [e.result.index for e in events if isinstance(e, CaseFinished)]
    assert finished[-1] == 0 and sorted(finished) == [0, 1, 2]  # as each was judged
    result = events[-1].result
    assert [c.status for c in result.tests] == ["passed", "passed", "wrong_answer"]
    assert result.tests[2].difference.model_dump() == {"line": 1, "expected": "7", "got": "6", "token": None}
    assert result.status == "failed" and result.summary.model_dump() == {
        "passed": 2, "failed": 1, "skipped": 0, "total": 3,
    }  # fmt: skip
    assert [s.stdin for s in backend.started] == ["1", "2", "3"]
    assert result.cpu_time == 9 and result.peak_memory == 1000
    assert suite.started == 3 and suite.spec.runs == 3


async def test_all_passing_is_ok_and_a_failing_exit_is_an_error():
    assert (await Suite(graded("1", "2"), Backend()).result()).status == "ok"
    result = await Suite(graded("-1"), Backend()).result()
    assert result.tests[0].status == "error" and result.tests[0].exit_code == 3


async def test_cases_run_at_once_up_to_parallel():
    backend = Backend(delays={n: 0.05 for n in range(8)})
    await Suite(graded(*map(str, range(8))), backend, parallel=3).result()
    assert backend.most == 3


async def test_a_compiled_language_builds_once_and_each_case_gets_the_program():
    backend = Backend()
    suite = Suite(graded("1", "2", compiled=True), backend, parallel=2)
    events = await events_of(suite)
    build, *cases = backend.started
    assert build.build_only and build.stdin == "" and build.tests is None
    assert [c.built for c in cases] == [PROGRAM, PROGRAM]
    assert all(not c.compiles and c.tests is None for c in cases)
    assert [e.data for e in events if isinstance(e, Output)] == ["warning: careful\n"]
    assert [e.result.status for e in events if isinstance(e, StageFinished)] == ["ok"]
    assert events[-1].result.status == "ok" and events[-1].result.compile.status == "ok"
    assert suite.started == 3 and suite.spec.runs == 3


@pytest.mark.parametrize("backend", [Backend(compile_fails=True), Backend(not_built=True)])
async def test_a_failed_compile_fails_every_case_and_nothing_runs(backend):
    suite = Suite(graded("1", "2", compiled=True), backend)
    events = await events_of(suite)
    assert len(backend.started) == 1
    assert [e.result.status for e in events if isinstance(e, CaseFinished)] == ["compile_error"] * 2
    result = events[-1].result
    assert result.status == "compile_error" and result.compile.status == "error"
    if backend.not_built:
        assert result.compile.stderr == "warning: careful\nthe compile made no .main\n"
    assert suite.started == 1


async def test_stop_on_failure_runs_one_at_a_time_and_skips_the_rest():
    backend = Backend()
    suite = Suite(graded("1", "2", "3", "4", expected={"2": "5"}, stop_on_failure=True), backend, parallel=4)
    result = await suite.result()
    assert [c.status for c in result.tests] == ["passed", "wrong_answer", "skipped", "skipped"]
    assert backend.most == 1 and len(backend.started) == 2 and suite.started == 2
    assert result.summary.skipped == 2


async def test_a_kill_ends_the_running_cases_and_skips_the_rest():
    backend = Backend(delays={n: 5.0 for n in range(6)})
    suite = Suite(graded(*map(str, range(6))), backend, parallel=2)
    task = asyncio.ensure_future(suite.result())
    await asyncio.sleep(0.1)
    suite.kill()
    result = await asyncio.wait_for(task, 2)
    assert result.status == "killed"
    assert [c.status for c in result.tests] == ["skipped"] * 6
    assert len(backend.started) == 2


async def test_a_case_that_finds_every_slot_busy_is_an_error_in_its_place():
    backend = Backend(busy_for={"2"})
    suite = Suite(graded("1", "2", "3"), backend)
    result = await suite.result()
    assert [c.status for c in result.tests] == ["passed", "error", "passed"]
    assert result.tests[1].error.startswith("not run: every execution slot")
    assert suite.started == 2  # the busy one is not charged
