"""Cgroups kept for reuse: handed on only empty, with every limit of the new sandbox, and
counting only the new sandbox's OOM kills."""

import os
import subprocess
import sys

import pytest

import sandbox
from conftest import TEST_CGROUP_PARENT, TEST_UID_BASE
from sandbox import cgroups

MIB = 1 << 20


@pytest.fixture
def support():
    found = cgroups.support()
    if not found.version:
        pytest.skip("no cgroups on this host")
    cgroups.remove_spares()
    yield found
    cgroups.remove_spares()


def make(support, **limits):
    wanted = {"memory_bytes": 64 * MIB, "pids": 16, "cpus": 0.5, "cpu_weight": cgroups.IDLE_CPU_WEIGHT}
    return cgroups.Cgroup.create(support, TEST_CGROUP_PARENT, cgroups.name("slot", 9), **{**wanted, **limits})


def join(group, pid: int) -> None:
    for procs in group.procs_files:
        with open(procs, "w") as f:
            f.write(str(pid))


def limits_of(group):
    """The limits as the kernel holds them: memory, pids, CPU quota and CPU weight."""

    def read(controller, v1_file, v2_file):
        d = group.dirs[""] if group.support.version == 2 else group.dirs[controller]
        with open(f"{d}/{v2_file if group.support.version == 2 else v1_file}") as f:
            return f.read().split()[0]

    return (
        int(read("memory", "memory.limit_in_bytes", "memory.max")),
        int(read("pids", "pids.max", "pids.max")),
        int(read("cpu", "cpu.cfs_quota_us", "cpu.max")),
        int(read("cpu", "cpu.shares", "cpu.weight")),
    )


def test_a_released_group_is_reused_with_every_limit_of_its_new_sandbox(support):
    first = make(support)
    dirs = dict(first.dirs)
    assert first.release()
    assert all(os.path.isdir(d) for d in dirs.values())  # kept, not removed

    second = make(support, memory_bytes=128 * MIB, pids=32, cpus=1.0, cpu_weight=cgroups.DEFAULT_CPU_WEIGHT)
    assert second.dirs == dirs
    default_weight = 100 if support.version == 2 else 1024
    assert limits_of(second) == (128 * MIB, 32, 100_000, default_weight)

    # And back down: the memory limit can be lowered on a group that holds nothing.
    assert second.release()
    third = make(support)
    assert third.dirs == dirs
    idle_weight = cgroups.IDLE_CPU_WEIGHT if support.version == 2 else 10  # v1: 1024 * 1 / 100
    assert limits_of(third) == (64 * MIB, 16, 50_000, idle_weight)
    assert third.release()


def test_a_group_that_still_holds_a_process_is_never_kept(support):
    group = make(support)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        join(group, sleeper.pid)
        assert not group.release()
        assert not set(group.dirs.values()) & cgroups.spare_dirs()
        other = make(support)
        assert other.dirs != group.dirs
        assert other.release()
    finally:
        sleeper.kill()
        sleeper.wait()
        group.kill()
        group.remove()


def test_a_group_still_charged_with_memory_is_removed_not_kept(support, monkeypatch):
    monkeypatch.setattr(cgroups, "SPARE_MAX_CHARGE_BYTES", -1)
    group = make(support)
    assert group.release()
    assert not any(os.path.exists(d) for d in group.dirs.values())
    assert not cgroups.spare_dirs()


def test_a_group_whose_kill_failed_midway_is_not_reused(support, monkeypatch):
    group = make(support)

    def fail(spare):
        raise OSError("no such process list")

    monkeypatch.setattr(group, "_kill_members", fail)
    with pytest.raises(OSError):
        group.kill()
    assert group.release()  # removed: it may still be frozen
    assert not any(os.path.exists(d) for d in group.dirs.values())


def test_no_more_than_the_spare_count_is_kept(support):
    groups = [make(support) for _ in range(cgroups.SPARE_GROUPS + 2)]
    for group in groups:
        assert group.release()
    assert len({d for d in cgroups.spare_dirs() if TEST_CGROUP_PARENT in d}) == cgroups.SPARE_GROUPS * len(
        groups[0].dirs
    )
    assert sum(os.path.isdir(next(iter(g.dirs.values()))) for g in groups) == cgroups.SPARE_GROUPS


async def test_a_reused_group_counts_only_its_new_sandboxs_oom_kills(support):
    if not support.has("memory"):
        pytest.skip("no memory controller")
    host = sandbox.Host(uid_base=TEST_UID_BASE, cgroup_parent=TEST_CGROUP_PARENT)
    limits = sandbox.Limits(memory_mib=32, timeout_ms=10_000)
    hog = sandbox.BoxSpec(argv=["/usr/bin/python3", "-c", "x = bytearray(200 << 20)"], limits=limits, slot=5)
    box = await sandbox.Sandbox.start(hog, host)
    await box.finished()
    assert box.oom_killed()
    dirs = dict(box.cgroup.dirs)
    await box.destroy()
    assert cgroups.spare_dirs() >= set(dirs.values())

    failing = sandbox.BoxSpec(argv=["/bin/sh", "-c", "exit 3"], limits=limits, slot=5)
    box = await sandbox.Sandbox.start(failing, host)
    await box.finished()
    assert box.cgroup.dirs == dirs  # the same group, reused
    assert box.exit_status().exit_code == 3
    assert not box.oom_killed()
    await box.destroy()


def test_the_spares_are_removed_when_the_process_exits(support):
    script = (
        "import sys; from sandbox import cgroups\n"
        f"support = cgroups.detect()\n"
        f"group = cgroups.Cgroup.create(support, {TEST_CGROUP_PARENT!r}, cgroups.name('slot', 1), "
        "memory_bytes=1 << 26, pids=8, cpus=1.0)\n"
        "assert group.release()\n"
        "print(*group.dirs.values())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    dirs = out.stdout.split()
    assert dirs
    assert not any(os.path.exists(d) for d in dirs)


def test_a_kill_on_cgroup_v1_never_stalls_the_event_loop_on_the_freezer(support, monkeypatch):
    """Freezing is asynchronous on v1: a kill waited up to a second for FROZEN, on the event
    loop, stalling every other request. It now waits a moment at most, and still kills."""
    if "freezer" not in support.mounts:
        pytest.skip("no v1 freezer here")
    group = make(support)
    child = subprocess.Popen(["sleep", "60"])
    try:
        join(group, child.pid)
        real_read = cgroups._read
        # A freezer that takes its time: it never says FROZEN.
        monkeypatch.setattr(
            cgroups, "_read", lambda p: "FREEZING\n" if p.endswith("freezer.state") else real_read(p)
        )
        import time

        started = time.monotonic()
        group.kill()
        assert time.monotonic() - started < 0.25
        assert child.wait(5) == -9
    finally:
        child.kill()
        child.wait()
    assert group.release()
