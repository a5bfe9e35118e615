"""The executor's logic, through a fake backend: no root, no bubblewrap, no Django.

The fake plays a script of chunks and exits, and records what the executor asked of
it, so the output cap, the timeouts, the verdicts and the stages are checked alone.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from engine.backend import Chunk, StageExit
from engine.errors import Busy
from engine.events import Exited, Output, StageFinished, Started
from engine.executor import Run
from engine.spec import RunSpec
from sandbox import Limits, Outcome, SandboxError

EXIT_0 = Outcome(0, None, 5_000_000, False)


class FakeHandle:
    def __init__(self, script, outcomes):
        self.warm = False
        self.queue: asyncio.Queue = asyncio.Queue()
        self.outcomes = outcomes
        self.killed = 0
        self.closed = 0
        self.stdin: list[bytes] = []
        self.stdin_closed = False
        self._player = asyncio.create_task(self._play(script))

    async def _play(self, script):
        for step in script:
            if isinstance(step, float):
                await asyncio.sleep(step)  # the program takes its time
            elif step == "hang":
                await asyncio.Event().wait()  # until killed
            else:
                self.queue.put_nowait(step)

    async def receive(self):
        return await self.queue.get()

    async def write_stdin(self, data):
        self.stdin.append(data)
        return True

    def close_stdin(self):
        self.stdin_closed = True

    def kill(self):
        self.killed += 1
        if not self._player.done():
            self._player.cancel()
            # Killed: the streams end and the program exits at once.
            for step in (Chunk("stdout", b""), Chunk("stderr", b""), StageExit("run")):
                self.queue.put_nowait(step)

    def outcome(self, stage):
        if self.killed:
            return Outcome(None, signal.SIGKILL, 1_000_000, False)
        return self.outcomes[stage]

    async def close(self):
        self.closed += 1
        self._player.cancel()


class FakeBackend:
    def __init__(self, script=(), outcomes=None, refuse=None):
        self.script = script
        self.outcomes = outcomes or {"run": EXIT_0}
        self.refuse = refuse
        self.handle: FakeHandle | None = None

    async def start(self, spec, *, interactive):
        if self.refuse:
            raise self.refuse
        self.handle = FakeHandle(self.script, self.outcomes)
        return self.handle


def ends(stage="run"):
    return [Chunk("stdout", b"", stage), Chunk("stderr", b"", stage), StageExit(stage)]


def spec(**limits) -> RunSpec:
    return RunSpec("python", "print(1)", limits=Limits(**limits))


async def events(run):
    return [event async for event in run.events()]


async def test_it_streams_output_and_answers_the_result():
    backend = FakeBackend([Chunk("stdout", b"hi\n"), Chunk("stderr", b"warn\n"), *ends()])
    got = await events(Run(spec(), backend))
    assert isinstance(got[0], Started)
    assert [(e.stream, e.data) for e in got if isinstance(e, Output)] == [
        ("stdout", "hi\n"),
        ("stderr", "warn\n"),
    ]
    result = got[-1].result
    assert (result.stdout, result.stderr, result.status, result.exit_code, result.duration) == (
        "hi\n", "warn\n", "ok", 0, 5,
    )  # fmt: skip
    assert result.compile is None
    assert backend.handle.closed == 1


async def test_it_cuts_output_at_the_cap_and_kills_the_run():
    backend = FakeBackend([Chunk("stdout", b"x" * 10), "hang"])
    result = (await events(Run(spec(output_bytes=4), backend)))[-1].result
    assert (result.stdout, result.truncated, result.status) == ("xxxx", True, "output_limit")
    assert backend.handle.killed == 1


async def test_a_character_cut_by_the_cap_is_dropped_not_replaced():
    backend = FakeBackend([Chunk("stdout", "aé".encode()), "hang"])
    result = (await events(Run(spec(output_bytes=2), backend)))[-1].result
    assert result.stdout == "a"


async def test_it_times_out_a_program_that_runs_too_long():
    backend = FakeBackend(["hang"])
    result = (await events(Run(spec(timeout_ms=50), backend)))[-1].result
    assert (result.status, result.timed_out, result.signal) == ("timeout", True, "SIGKILL")


async def test_a_killed_run_says_killed():
    backend = FakeBackend(["hang"])
    run = Run(spec(), backend)

    async def kill_soon():
        await asyncio.sleep(0.05)
        run.kill()

    killer = asyncio.create_task(kill_soon())
    result = (await events(run))[-1].result
    await killer
    assert (result.status, result.timed_out) == ("killed", False)


async def test_a_kill_before_the_sandbox_is_up_still_kills_it():
    backend = FakeBackend(["hang"])
    run = Run(spec(), backend)
    run.kill()
    result = (await events(run))[-1].result
    assert result.status == "killed" and backend.handle.killed >= 1


@pytest.mark.parametrize(
    "outcome, status",
    [
        (Outcome(3, None, 1, False), "error"),
        (Outcome(None, signal.SIGSEGV, 1, False), "error"),
        (Outcome(None, signal.SIGKILL, 1, True), "memory"),
    ],
)
async def test_the_verdict_follows_the_outcome(outcome, status):
    result = (await events(Run(spec(), FakeBackend(ends(), {"run": outcome}))))[-1].result
    assert result.status == status


async def test_a_setup_failure_is_the_sandboxs_fault_not_the_programs():
    backend = FakeBackend(ends(), {"run": Outcome(1, None, 1, False, "bwrap: no permission")})
    with pytest.raises(SandboxError, match="no permission"):
        await events(Run(spec(), backend))
    assert backend.handle.closed == 1


async def test_input_sent_before_the_sandbox_is_up_arrives_in_order():
    backend = FakeBackend([0.05, *ends()])
    run = Run(spec(), backend, interactive=True)
    await run.write_stdin(b"a")
    await run.write_stdin(b"b")
    run.close_stdin()
    await events(run)
    assert backend.handle.stdin == [b"a", b"b"] and backend.handle.stdin_closed


async def test_a_refusal_to_start_reaches_the_caller():
    with pytest.raises(Busy):
        await events(Run(spec(), FakeBackend(refuse=Busy())))


async def test_result_returns_before_the_teardown_and_the_teardown_still_happens():
    backend = FakeBackend([Chunk("stdout", b"1\n"), *ends()])
    result = await Run(spec(), backend).result()
    assert result.stdout == "1\n"
    for _ in range(100):
        if backend.handle.closed:
            break
        await asyncio.sleep(0.01)
    assert backend.handle.closed == 1


async def test_a_stage_s_exit_may_come_before_its_streams_end():
    backend = FakeBackend(
        [
            Chunk("stdout", b"a"),
            StageExit("run"),
            Chunk("stdout", b"b\n"),
            Chunk("stdout", b""),
            Chunk("stderr", b""),
        ]
    )
    result = await Run(spec(), backend).result()
    assert (result.status, result.stdout) == ("ok", "ab\n")


async def test_the_caller_is_answered_before_the_teardown_begins():
    """The teardown's first steps (a cgroup write, the wait for bwrap) come after the caller's
    answer, not between the result and it."""
    backend = FakeBackend([Chunk("stdout", b"1\n"), *ends()])
    result = await Run(spec(), backend).result()
    assert result.stdout == "1\n" and backend.handle.closed == 0
    for _ in range(100):
        if backend.handle.closed:
            break
        await asyncio.sleep(0.01)
    assert backend.handle.closed == 1


def compiled_spec(**compile_limits) -> RunSpec:
    return RunSpec("c", "int main(){}", limits=Limits(), compile_limits=Limits(**compile_limits))


async def test_a_compile_stage_streams_its_own_output_then_the_run():
    script = [
        Chunk("stderr", b"warning: x\n", "compile"),
        *ends("compile"),
        Chunk("stdout", b"ran\n"),
        *ends(),
    ]
    outcomes = {"compile": Outcome(0, None, 2_000_000, False), "run": EXIT_0}
    got = await events(Run(compiled_spec(), FakeBackend(script, outcomes)))
    outputs = [(e.stage, e.stream, e.data) for e in got if isinstance(e, Output)]
    assert outputs == [("compile", "stderr", "warning: x\n"), ("run", "stdout", "ran\n")]
    finished = [e for e in got if isinstance(e, StageFinished)]
    assert [(f.stage, f.result.status, f.result.duration) for f in finished] == [("compile", "ok", 2)]
    result = got[-1].result
    assert (result.status, result.stdout, result.compile.stderr) == ("ok", "ran\n", "warning: x\n")


async def test_a_failed_compile_runs_nothing_and_says_compile_error():
    script = [Chunk("stderr", b"main.c:1: error\n", "compile"), *ends("compile"), Chunk("stdout", b"never")]
    outcomes = {"compile": Outcome(1, None, 1, False), "run": EXIT_0}
    got = await events(Run(compiled_spec(), FakeBackend(script, outcomes)))
    assert isinstance(got[-1], Exited)
    result = got[-1].result
    assert (result.status, result.stdout, result.exit_code) == ("compile_error", "", None)
    assert (result.compile.status, result.compile.exit_code) == ("error", 1)
    assert "never" not in "".join(e.data for e in got if isinstance(e, Output))


async def test_the_compile_has_its_own_timeout_not_the_runs():
    script = [0.15, *ends("compile"), *ends()]
    outcomes = {"compile": Outcome(0, None, 150_000_000, False), "run": EXIT_0}
    run = Run(RunSpec("c", "", limits=Limits(timeout_ms=50), compile_limits=Limits(timeout_ms=1000)),
              FakeBackend(script, outcomes))  # fmt: skip
    result = (await events(run))[-1].result
    assert (result.compile.status, result.status) == ("ok", "ok")
    slow = Run(compiled_spec(timeout_ms=50), FakeBackend(["hang"], outcomes))
    result = (await events(slow))[-1].result
    assert (result.compile.status, result.status) == ("timeout", "compile_error")


def test_a_spec_travels_as_json_and_comes_back_the_same():
    import json

    original = RunSpec(
        "python", "x", "in", ("a",), {"f.py": "y"}, Limits(timeout_ms=5), Limits(memory_mib=512)
    )
    assert RunSpec.from_json(json.loads(json.dumps(original.to_json()))) == original


class MissedKillHandle(FakeHandle):
    """The race of a kill that comes while the sandbox starts: the first kill finds nothing."""

    def kill(self):
        self.killed += 1
        if self.killed > 1:
            super().kill()


async def test_a_kill_that_finds_no_program_yet_is_repeated_until_one_lands():
    backend = FakeBackend(["hang"])
    backend_start = backend.start

    async def start(spec, *, interactive):
        handle = await backend_start(spec, interactive=interactive)
        handle.__class__ = MissedKillHandle
        return handle

    backend.start = start
    run = Run(spec(), backend)
    run.kill()
    result = await asyncio.wait_for(events(run), 1)
    assert result[-1].result.status == "killed" and backend.handle.killed >= 2
