"""Control groups for sandboxes: one cgroup per sandbox at a time, on cgroup v2 or v1.

Part of the isolation layer: knows nothing of Django. A run's cgroup holds the
sandbox and every process it starts, so the limits charge all of them, and
ending a run can kill all of them and prove that nothing is left.

A group whose sandbox is gone is kept as a spare and given to a later sandbox,
rather than removed and made again: making, limiting and removing a group costs
the server several writes to cgroup files per run (bench/NOTES.md has the
measurements). A group is reused
only when it is provably empty and holds next to no memory charge, and it gets
every limit of its new sandbox; its OOM count starts again from zero.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field

from .process import kill_pid, started
from .spec import DEFAULT_CPU_WEIGHT, IDLE_CPU_WEIGHT  # noqa: F401 (the weights are named with cgroups)

log = logging.getLogger(__name__)

CGROUP_MOUNT = "/sys/fs/cgroup"
# The v1 controllers a run joins: memory and pids limit, cpu throttles, cpuacct counts the
# run's CPU time (sandbox/usage.py), freezer lets a kill catch a fork bomb between two
# readings of the member list. Where two share a mount (cpu,cpuacct), they share a directory.
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V2_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
EMPTY_WAIT_SECONDS = 5.0
# On cgroup v1, how long a kill waits for the freezer to report FROZEN (Cgroup.kill).
FREEZE_WAIT_SECONDS = 0.002
SPARE_GROUPS = 8  # empty groups kept per parent for the next sandboxes
# What a spare may still be charged with: kernel objects its last sandbox left (a run
# leaves under 2 MiB). A group holding more is removed, so no run starts with less room.
SPARE_MAX_CHARGE_BYTES = 4 << 20


@dataclass(frozen=True)
class Support:
    """What the host offers: the version and the controllers we can use."""

    version: int | None  # 1, 2, or None when unusable
    mounts: dict[str, str] = field(default_factory=dict)  # controller -> mount point (v1)
    controllers: tuple[str, ...] = ()
    reason: str = ""

    def has(self, controller: str) -> bool:
        return controller in self.controllers


_support: Support | None = None


def support() -> Support:
    """What this host offers, found once per process."""
    global _support
    if _support is None:
        _support = detect()
    return _support


# A run reads and writes a dozen of these files, some on its answer's path: with bare fds, not
# open()'s buffered text layers (an fstat, a tty check and two seeks more each time).
def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def _write(path: str, value: str) -> None:
    """One write, as the kernel takes a cgroup file's value (OSError if it refuses it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


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
    """One sandbox's cgroup, with that sandbox's limits; released (kept as a spare, or
    removed) when the sandbox is gone."""

    def __init__(self, support: Support, dirs: dict[str, str], parent: str):
        self.support = support
        self.dirs = dirs  # controller -> directory (v2: one directory under "")
        self.parent = parent
        # What was last written, so that a reused group is only written what differs.
        self._memory: int | None = None
        self._pids: int | None = None
        self._quota: str | None = None
        self._weight = DEFAULT_CPU_WEIGHT
        self._oom_base = 0  # OOM kills counted before this sandbox had the group
        self._reusable = True  # False once a write failed: its state is not known
        # False where the kernel can't reset the peak memory: its next sandbox's peak would
        # include this one's, so it is not reused (sandbox/usage.py).
        self.peak_resettable = True

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
        """A group with these limits: a spare of this parent if there is one, else a new one.

        The name is the new group's; a spare keeps the name it was made with.
        """
        spare = _take_spare(parent)
        if spare is not None:
            try:
                spare.set_limits(memory_bytes, pids, cpus)
                spare.set_cpu_weight(cpu_weight)
                return spare
            except OSError as e:
                log.warning("a spare cgroup could not be reused, making a new one: %s", e)
                spare.remove()
        if support.version == 2:
            base = os.path.join(support.mounts[""], parent)
            _ensure_v2_parent(support, base)
            dirs = {"": os.path.join(base, name)}
        else:
            dirs = {c: os.path.join(support.mounts[c], parent, name) for c in support.controllers}
        group = cls(support, dirs, parent)
        with _spares_lock:
            _made.update(dirs.values())
        try:
            for path in dict.fromkeys(dirs.values()):
                os.makedirs(path)
            group.set_limits(memory_bytes, pids, cpus)
            group.set_cpu_weight(cpu_weight)
        except OSError:
            group.remove()
            raise
        return group

    def set_limits(self, memory_bytes: int, pids: int, cpus: float) -> None:
        """Write the limits that differ from the group's (all of them, for a new group)."""
        quota = str(max(1000, int(cpus * CPU_PERIOD_US)))
        new = self._memory is None
        if self._memory != memory_bytes:
            self.set_memory(memory_bytes)
        if self.support.version == 2:
            d = self.dirs[""]
            if new and os.path.exists(f"{d}/memory.swap.max"):
                self._write(f"{d}/memory.swap.max", "0")
            if self.support.has("pids") and self._pids != pids:
                self._write(f"{d}/pids.max", str(pids))
            if self.support.has("cpu") and self._quota != quota:
                self._write(f"{d}/cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            if new:
                self._write(f"{self.dirs['memory']}/memory.swappiness", "0")
            if "pids" in self.dirs and self._pids != pids:
                self._write(f"{self.dirs['pids']}/pids.max", str(pids))
            if "cpu" in self.dirs and self._quota != quota:
                if new:
                    self._write(f"{self.dirs['cpu']}/cpu.cfs_period_us", str(CPU_PERIOD_US))
                self._write(f"{self.dirs['cpu']}/cpu.cfs_quota_us", quota)
        self._pids, self._quota = pids, quota

    def set_memory(self, memory_bytes: int) -> None:
        """Change the memory limit (OSError if the group is already using more)."""
        if self.support.version == 2:
            self._write(f"{self.dirs['']}/memory.max", str(memory_bytes))
        else:
            mem = self.dirs["memory"]
            files = [f"{mem}/memory.limit_in_bytes"]
            if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
                files.append(f"{mem}/memory.memsw.limit_in_bytes")
            current = self._memory if self._memory is not None else int(_read(files[0]))
            # memsw may never be below the plain limit: raise it first, or lower it last.
            for path in reversed(files) if memory_bytes > current else files:
                self._write(path, str(memory_bytes))
        self._memory = memory_bytes

    def set_cpu_weight(self, weight: int) -> None:
        """How much CPU the group gets against its siblings when the CPUs are contended."""
        if not self.support.has("cpu") or weight == self._weight:
            return
        if self.support.version == 2:
            self._write(f"{self.dirs['']}/cpu.weight", str(weight))
        else:
            self._write(f"{self.dirs['cpu']}/cpu.shares", str(max(2, weight * 1024 // DEFAULT_CPU_WEIGHT)))
        self._weight = weight

    def _write(self, path: str, value: str) -> None:
        try:
            _write(path, value)
        except OSError:
            self._reusable = False  # half-written: never handed to another sandbox
            raise

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to join every controller."""
        return [os.path.join(d, "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def add(self, pid: int) -> None:
        """Move a process into the group, in every controller."""
        for path in self.procs_files:
            _write(path, str(pid))

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
        """How many processes the kernel killed for exceeding the memory limit, in this
        sandbox's time in the group."""
        return self._oom_kills_ever() - self._oom_base

    def _oom_kills_ever(self) -> int:
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
        # Until it is thawed again, the group is in no state to be reused.
        reusable, self._reusable = self._reusable, False
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
        elif freezer := self.dirs.get("freezer"):
            # v1 freezes asynchronously (FREEZING, then FROZEN). This runs on the server's event
            # loop, so it waits a moment at most: a member still running when the list is read
            # may fork once more, and the teardown's next kill (it repeats until the group is
            # empty) takes the child. A member that was killed can fork no more.
            _write(f"{freezer}/freezer.state", "FROZEN")
            deadline = time.monotonic() + FREEZE_WAIT_SECONDS
            while _read(f"{freezer}/freezer.state").strip() != "FROZEN" and time.monotonic() < deadline:
                pass
            self._kill_members(spare)
            _write(f"{freezer}/freezer.state", "THAWED")
        else:
            self._kill_members(spare)
        self._reusable = reusable

    def _kill_members(self, spare: int | None) -> None:
        for pid in self.pids():
            if pid != spare:
                kill_pid(pid)

    def release(self) -> bool:
        """Once the group's sandbox is gone: keep it as a spare, or remove it.

        False if it is still not empty: it is then logged and abandoned, never reused.
        """
        if not self.is_empty():
            log.error("cgroup %s is not empty after its sandbox; abandoned", self.dirs)
            return False
        try:
            if self._reusable and self.peak_resettable and self._charge() <= SPARE_MAX_CHARGE_BYTES:
                self._oom_base = self._oom_kills_ever()
                if _keep_spare(self):
                    return True
        except OSError:
            pass  # unreadable: removed below, as any group not worth keeping
        return self.remove()

    def _charge(self) -> int:
        """The memory (and kernel objects) still charged to the group."""
        if self.support.version == 2:
            return int(_read(f"{self.dirs['']}/memory.current"))
        return int(_read(f"{self.dirs['memory']}/memory.usage_in_bytes"))

    def remove(self) -> bool:
        """Remove the directories; a cgroup that won't go is logged and never used again."""
        ok = True
        for path in self.dirs.values():
            try:
                os.rmdir(path)
                with _spares_lock:
                    _made.discard(path)
            except FileNotFoundError:
                with _spares_lock:
                    _made.discard(path)
            except OSError as e:
                ok = False
                log.error("cannot remove cgroup %s: %s; it is abandoned", path, e)
        return ok


# Spare groups by parent directory. Only this process uses them: their names carry the pid
# of the process that made them, so another server's sweep leaves them be (sandbox.pool).
_spares: dict[str, list[Cgroup]] = {}
_spares_lock = threading.Lock()
_closing = False  # at exit: every released group is removed
_made: set[str] = set()  # the directories this process made and has not removed
_exit_hook = False


def _take_spare(parent: str) -> Cgroup | None:
    with _spares_lock:
        spares = _spares.get(parent)
        return spares.pop() if spares else None


def _keep_spare(group: Cgroup) -> bool:
    global _exit_hook
    with _spares_lock:
        if _closing:
            return False
        if not _exit_hook:
            _exit_hook = True
            atexit.register(_remove_spares_at_exit)
        spares = _spares.setdefault(group.parent, [])
        if len(spares) >= SPARE_GROUPS:
            return False
        spares.append(group)
        return True


def spare_dirs() -> set[str]:
    """The directories of the groups kept for reuse (for the checks that nothing is left)."""
    with _spares_lock:
        return {d for spares in _spares.values() for group in spares for d in group.dirs.values()}


def remove_spares() -> None:
    """Remove every spare group (in tests; and at exit, after which none is kept)."""
    with _spares_lock:
        groups = [group for spares in _spares.values() for group in spares]
        _spares.clear()
    for group in groups:
        group.remove()


def _remove_spares_at_exit() -> None:
    global _closing
    with _spares_lock:
        _closing = True  # sandboxes torn down later at exit remove their groups
    remove_spares()


def made_here(path: str) -> bool:
    """Whether this process made the directory and still has it (in use, or a spare)."""
    with _spares_lock:
        return path in _made


def name(prefix: str, slot: int) -> str:
    """A new group's name: what it was made for, and which process made it (its pid and start time)."""
    return f"{prefix}{slot}-pid{os.getpid()}.{started(os.getpid())}-{os.urandom(4).hex()}"


def maker_pid(name: str) -> int | None:
    """The pid in a name made by name(); None for a name without one."""
    m = re.search(r"-pid(\d+)(?:\.\d+)?-[0-9a-f]+$", name)
    return int(m.group(1)) if m else None


def maker_alive(name: str) -> bool | None:
    """Whether the process that made the group still runs; None when its name can't tell.

    A pid alone can be another process's by now (a restarted server may even get the same
    one): the maker is alive only if a process with its pid started when it did.
    """
    m = re.search(r"-pid(\d+)\.(\d+)-[0-9a-f]+$", name)
    if not m:
        return None
    return started(int(m.group(1))) == int(m.group(2))


def _ensure_v2_parent(support: Support, base: str) -> None:
    """Create our parent group on v2 and delegate the controllers to its children."""
    if os.path.isdir(base):
        return
    root = support.mounts[""]
    wanted = " ".join(f"+{c}" for c in support.controllers)
    _write(os.path.join(root, "cgroup.subtree_control"), wanted)
    os.makedirs(base, exist_ok=True)
    _write(os.path.join(base, "cgroup.subtree_control"), wanted)
