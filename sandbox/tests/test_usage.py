"""CPU time and peak memory in every result: the run's own, cold and pre-warmed, in reused cgroups too."""

import os
import threading

import pytest

from engine.backends.local import STARTS
from sandbox import cgroups
from sandbox.pool import POOL

MIB = 1 << 20
SPIN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end:\n    pass"
TOUCH = "b = bytearray(150 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1"


@pytest.fixture(params=["cold", "warm"])
def start(request, settings, api):
    if not cgroups.support().has("memory"):
        pytest.skip("no memory cgroup on this host")
    settings.RUNNER_POOL_SIZE = 0 if request.param == "cold" else 2
    api.run("bash", "true")
    assert POOL.settle()
    return request.param


def run(api, start, language, code, **body):
    if start == "warm":
        assert POOL.settle()  # runs back to back would otherwise outpace the refills, and start cold
    before = STARTS[start]
    result = api.run(language, code, **body)
    assert STARTS[start] == before + 1
    return result


def test_a_program_that_spins_for_400_ms_shows_about_400(api, start):
    result = run(api, start, "python", SPIN)
    assert result["status"] == "ok"
    assert 380 <= result["cpuTime"] <= 700, result


def test_a_program_that_touches_150_mib_shows_at_least_that(api, start):
    result = run(api, start, "python", TOUCH, memory=512)
    assert result["status"] == "ok"
    assert result["peakMemory"] >= 150 * MIB, result


def test_echo_shows_a_few_milliseconds_and_a_few_mib(api, start):
    for _ in range(3):  # the second and third run reuse the first's cgroup, and its peak
        result = run(api, start, "bash", "echo hi")
        assert result["stdout"] == "hi\n"
        assert 0 <= result["cpuTime"] <= 30, result
        assert 0 < result["peakMemory"] <= 16 * MIB, result


def test_a_run_in_a_reused_cgroup_does_not_inherit_its_predecessors_peak(api, start):
    run(api, start, "python", TOUCH, memory=512)
    after = run(api, start, "bash", "echo hi")
    assert after["peakMemory"] <= 16 * MIB, after


TYPESCRIPT_CPU: dict[str, int] = {}


def test_a_pooled_interpreters_start_is_not_the_runs(api, start):
    """A TypeScript sandbox starts Node and esbuild's service, tens of CPU milliseconds: a cold
    run pays for them, a pre-warmed one did before its run and is not charged (cold runs first)."""
    TYPESCRIPT_CPU[start] = run(api, start, "typescript", "console.log(1)")["cpuTime"]
    if start == "warm":
        assert TYPESCRIPT_CPU["warm"] < TYPESCRIPT_CPU["cold"], TYPESCRIPT_CPU


def test_usage_is_stored_with_the_execution(api, start):
    result = run(api, start, "python", SPIN)
    stored = api.client.get(f"/api/executions/{result['id']}").json()
    assert (stored["cpuTime"], stored["peakMemory"]) == (result["cpuTime"], result["peakMemory"])


ACCOUNTING_FILES = ("cpuacct.usage", "memory.max_usage_in_bytes", "cpu.stat", "memory.peak")


def test_a_pre_warmed_run_is_accounted_through_files_its_sandbox_opened_while_it_waited(
    api, settings, monkeypatch
):
    """Opening a cgroup file at the hand-over and again for the answer cost each run a quarter of a
    millisecond: a waiting sandbox's meter opens them at its launch, in the pool's thread, and the
    run reads and resets them through those fds."""
    if not cgroups.support().has("memory"):
        pytest.skip("no memory cgroup on this host")
    settings.RUNNER_POOL_SIZE = 2
    api.run("bash", "true")
    assert POOL.settle()
    opened = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        if threading.current_thread().name != "sandbox-pool" and str(path).endswith(ACCOUNTING_FILES):
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    before = STARTS["warm"]
    result = api.run("bash", "echo hi")
    assert STARTS["warm"] == before + 1 and result["stdout"] == "hi\n"
    assert result["cpuTime"] is not None and 0 < result["peakMemory"] <= 16 * MIB, result
    assert opened == []
