"""Control groups for sandboxes: one cgroup per run, on cgroup v2 or v1.

Part of the isolation layer: knows nothing of Django. A run's cgroup holds the
sandbox and every process it starts, so the limits charge all of them, and
ending a run can kill all of them and prove that nothing is left.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CGROUP_MOUNT = "/sys/fs/cgroup"
# The v1 controllers a run joins: memory and pids limit, cpu throttles,
# freezer lets a kill catch a fork bomb between two readings of the member list.
V1_CONTROLLERS = ("memory", "pids", "cpu", "freezer")
V2_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
# CPU weights on cgroup v2's scale (v1's cpu.shares is 1024 at the default weight of 100).
DEFAULT_CPU_WEIGHT = 100
IDLE_CPU_WEIGHT = 1
EMPTY_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Support:
    """What the host offers: the version and the controllers we can use."""

    version: int | None  # 1, 2, or None when unusable
    mounts: dict[str, str] = field(default_factory=dict)  # controller -> mount point (v1)
    controllers: tuple[str, ...] = ()
    reason: str = ""

    def has(self, controller: str) -> bool:
        return controller in self.controllers


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def detect() -> Support:
    """Find a writable cgroup hierarchy: pure v2, or the v1 controllers (also in hybrid mode)."""
    try:
        mounts = [line.split() for line in _read("/proc/self/mounts").splitlines()]
    except OSError as e:
        return Support(None, reason=f"cannot read /proc/self/mounts: {e}")
    v1: dict[str, str] = {}
    v2_path = None
    for parts in mounts:
        if len(parts) < 4:
            continue
        path, fstype, options = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup":
            for name in V1_CONTROLLERS:
                if name in options:
                    v1[name] = path
        elif fstype == "cgroup2" and path == CGROUP_MOUNT:
            v2_path = path
    if v2_path:
        try:
            available = _read(os.path.join(v2_path, "cgroup.controllers")).split()
        except OSError as e:
            return Support(None, reason=f"cannot read cgroup.controllers: {e}")
        usable = tuple(c for c in V2_CONTROLLERS if c in available)
        if not os.access(v2_path, os.W_OK):
            return Support(None, reason=f"{v2_path} is not writable (run as root)")
        if "memory" not in usable:
            return Support(None, reason="cgroup v2 without the memory controller")
        return Support(2, {"": v2_path}, usable)
    if not v1:
        return Support(None, reason="no cgroup v1 or v2 hierarchy is mounted")
    usable = tuple(c for c in V1_CONTROLLERS if c in v1 and os.access(v1[c], os.W_OK))
    if "memory" not in usable:
        return Support(None, v1, usable, reason="the v1 memory controller is missing or not writable")
    return Support(1, v1, usable)


class Cgroup:
    """One run's cgroup, created with its limits and removed when the run ends."""

    def __init__(self, support: Support, dirs: dict[str, str]):
        self.support = support
        self.dirs = dirs  # controller -> directory (v2: one directory under "")

    @classmethod
    def create(
        cls,
        support: Support,
        parent: str,
        name: str,
        *,
        memory_bytes: int,
        pids: int,
        cpus: float,
        cpu_weight: int = DEFAULT_CPU_WEIGHT,
    ) -> Cgroup:
        if support.version == 2:
            base = os.path.join(support.mounts[""], parent)
            _ensure_v2_parent(support, base)
            dirs = {"": os.path.join(base, name)}
        else:
            dirs = {c: os.path.join(support.mounts[c], parent, name) for c in support.controllers}
        group = cls(support, dirs)
        try:
            for path in dirs.values():
                os.makedirs(path)
            group._set_limits(memory_bytes, pids, cpus)
            if cpu_weight != DEFAULT_CPU_WEIGHT:
                group.set_cpu_weight(cpu_weight)
        except OSError:
            group.remove()
            raise
        return group

    def _set_limits(self, memory_bytes: int, pids: int, cpus: float) -> None:
        quota = str(max(1000, int(cpus * CPU_PERIOD_US)))
        if self.support.version == 2:
            d = self.dirs[""]
            _write(f"{d}/memory.max", str(memory_bytes))
            if os.path.exists(f"{d}/memory.swap.max"):
                _write(f"{d}/memory.swap.max", "0")
            if self.support.has("pids"):
                _write(f"{d}/pids.max", str(pids))
            if self.support.has("cpu"):
                _write(f"{d}/cpu.max", f"{quota} {CPU_PERIOD_US}")
            return
        mem = self.dirs["memory"]
        # memsw must never be below the plain limit, so the plain one goes first.
        _write(f"{mem}/memory.limit_in_bytes", str(memory_bytes))
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            _write(f"{mem}/memory.memsw.limit_in_bytes", str(memory_bytes))
        _write(f"{mem}/memory.swappiness", "0")
        if "pids" in self.dirs:
            _write(f"{self.dirs['pids']}/pids.max", str(pids))
        if "cpu" in self.dirs:
            _write(f"{self.dirs['cpu']}/cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(f"{self.dirs['cpu']}/cpu.cfs_quota_us", quota)

    def set_memory(self, memory_bytes: int) -> None:
        """Change the memory limit of a live group (OSError if it is already using more)."""
        if self.support.version == 2:
            _write(f"{self.dirs['']}/memory.max", str(memory_bytes))
            return
        mem = self.dirs["memory"]
        files = [f"{mem}/memory.limit_in_bytes"]
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            files.append(f"{mem}/memory.memsw.limit_in_bytes")
        current = int(_read(files[0]))
        # memsw may never be below the plain limit: raise it first, or lower it last.
        for path in reversed(files) if memory_bytes > current else files:
            _write(path, str(memory_bytes))

    def set_cpu_weight(self, weight: int) -> None:
        """How much CPU the group gets against its siblings when the CPUs are contended."""
        if not self.support.has("cpu"):
            return
        if self.support.version == 2:
            _write(f"{self.dirs['']}/cpu.weight", str(weight))
        else:
            _write(f"{self.dirs['cpu']}/cpu.shares", str(max(2, weight * 1024 // DEFAULT_CPU_WEIGHT)))

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to join every controller."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def _members_dir(self) -> str:
        return self.dirs.get("") or self.dirs.get("freezer") or self.dirs["memory"]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in _read(os.path.join(self._members_dir(), "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def is_empty(self) -> bool:
        return not self.pids()

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory limit."""
        if self.support.version == 2:
            text, key = _read(f"{self.dirs['']}/memory.events"), "oom_kill"
        else:
            text, key = _read(f"{self.dirs['memory']}/memory.oom_control"), "oom_kill"
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
        return 0

    def kill(self, spare: int | None = None) -> None:
        """Kill every member but `spare`; frozen first, so none can fork while the list is read.

        The server spares bwrap's outer process so that it reaps the sandbox's
        init: killed together, the init could be orphaned to a host init that
        may never reap it.
        """
        if self.support.version == 2:
            d = self.dirs[""]
            if spare is None and os.path.exists(f"{d}/cgroup.kill"):
                _write(f"{d}/cgroup.kill", "1")
            elif os.path.exists(f"{d}/cgroup.freeze"):
                _write(f"{d}/cgroup.freeze", "1")
                self._kill_members(spare)
                _write(f"{d}/cgroup.freeze", "0")
            else:
                self._kill_members(spare)
            return
        freezer = self.dirs.get("freezer")
        if freezer:
            _write(f"{freezer}/freezer.state", "FROZEN")
            deadline = time.monotonic() + 1.0
            while _read(f"{freezer}/freezer.state").strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.0005)
            self._kill_members(spare)
            _write(f"{freezer}/freezer.state", "THAWED")
        else:
            self._kill_members(spare)

    def _kill_members(self, spare: int | None) -> None:
        for pid in self.pids():
            if pid != spare:
                kill_pid(pid)

    def remove(self) -> bool:
        """Remove the directories; a cgroup that won't go is logged and never used again."""
        ok = True
        for path in self.dirs.values():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                ok = False
                log.error("cannot remove cgroup %s: %s; it is abandoned", path, e)
        return ok


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _ensure_v2_parent(support: Support, base: str) -> None:
    """Create our parent group on v2 and delegate the controllers to its children."""
    if os.path.isdir(base):
        return
    root = support.mounts[""]
    wanted = " ".join(f"+{c}" for c in support.controllers)
    _write(os.path.join(root, "cgroup.subtree_control"), wanted)
    os.makedirs(base, exist_ok=True)
    _write(os.path.join(base, "cgroup.subtree_control"), wanted)
