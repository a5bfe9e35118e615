import os

import pytest

from conftest import TEST_CGROUP_PARENT, TEST_UID_BASE
from runner import sandbox


def sandbox_leftovers() -> list[str]:
    """Whatever a run could leave on the host: processes of the sandbox uids, run cgroups."""
    found = []
    uids = range(TEST_UID_BASE - 1, TEST_UID_BASE + 64)
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
            found += [f"cgroup {parent}/{d}" for d in os.listdir(parent) if os.path.isdir(f"{parent}/{d}")]
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every runner test ends with no sandbox process and no cgroup left on the host."""
    yield
    # No grace period: a run's answer is only sent once its sandbox is gone.
    left = sandbox_leftovers()
    assert not left, f"left behind: {left}"
