import os

import pytest

from conftest import TEST_CGROUP_PARENT, TEST_UID_BASE
from runner import cgroups, sandbox
from runner.pool import POOL, POOL_UID_OFFSET, POOL_UIDS


def sandbox_leftovers() -> list[str]:
    """Whatever a run could leave on the host: processes of the sandbox uids, run cgroups."""
    found = []
    POOL.settle()  # a sandbox being launched into the pool is not a leftover
    # Run slots' uids, and the pre-warmed sandboxes' uids but those waiting in the pool.
    idle = POOL.idle_uids()
    uids = set(range(TEST_UID_BASE - 1, TEST_UID_BASE + 64))
    uids |= set(range(TEST_UID_BASE + POOL_UID_OFFSET, TEST_UID_BASE + POOL_UID_OFFSET + POOL_UIDS)) - idle
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid in uids:
                    with open(f"/proc/{pid}/status") as f:
                        fields = dict(line.split(":", 1) for line in f if ":" in line)
                    state = ", ".join(
                        f"{k}={fields[k].strip()}" for k in ("Name", "State", "PPid") if k in fields
                    )
                    found.append(f"process {pid} ({state})")
            except FileNotFoundError:
                pass
    support = sandbox.cgroup_support()
    for base in support.mounts.values():
        parent = os.path.join(base, TEST_CGROUP_PARENT)
        if os.path.isdir(parent):
            # Expected: the groups of the waiting sandboxes, and the empty ones kept for reuse.
            kept = POOL.idle_cgroups() | cgroups.spare_dirs()
            found += [
                f"cgroup {parent}/{d}"
                for d in os.listdir(parent)
                if os.path.isdir(f"{parent}/{d}") and f"{parent}/{d}" not in kept
            ]
            found += [
                f"spare cgroup {d} not empty"
                for d in cgroups.spare_dirs()
                if d.startswith(parent) and members(d)
            ]
    return found


def members(group: str) -> list[int]:
    try:
        with open(f"{group}/cgroup.procs") as f:
            return [int(pid) for pid in f.read().split()]
    except FileNotFoundError:
        return []


def uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every runner test ends with no sandbox process and no cgroup left on the host."""
    yield
    # No grace period: a sandbox is torn down just after its run's answer, and an in-process
    # request's event loop only closes once that is done.
    left = sandbox_leftovers()
    assert not left, f"left behind: {left}"


def live_leftovers(uid_base: int) -> list[str]:
    """What a live server (another process) left: run-slot processes, run cgroups, busy pooled ones.

    Expected: waiting pre-warmed sandboxes, each a cgroup holding just bwrap,
    sandbox-init, the loader, and for TypeScript esbuild's service, all on pool uids;
    and the empty groups kept for reuse, up to cgroups.SPARE_GROUPS a server.
    """
    from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES

    found = []
    slots = range(uid_base - 1, uid_base + 64)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid in slots:
                    found.append(f"process {pid}")
            except FileNotFoundError:
                pass
    # The parent is shared by the live servers: any one's waiting sandboxes may be in it.
    pool_uids = {
        uid
        for base in LIVE_UID_BASES
        for uid in range(base + POOL_UID_OFFSET, base + POOL_UID_OFFSET + POOL_UIDS)
    }
    for base in sandbox.cgroup_support().mounts.values():
        parent = os.path.join(base, LIVE_CGROUP_PARENT)
        if not os.path.isdir(parent):
            continue
        empty = []
        for d in os.listdir(parent):
            path = f"{parent}/{d}"
            if not os.path.isdir(path):
                continue
            pids = members(path)
            if not pids:
                empty.append(path)
            elif len(pids) > 4 or any(uid_of(pid) not in pool_uids for pid in pids):
                found.append(f"cgroup {path} ({len(pids)} processes)")
        if len(empty) > cgroups.SPARE_GROUPS * len(LIVE_UID_BASES):
            found += [f"empty cgroup {path} beyond the spares" for path in empty]
    return found
