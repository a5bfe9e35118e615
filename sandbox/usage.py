"""A run's own CPU time and peak memory, read from its cgroup.

A cgroup may have served earlier sandboxes (a reused spare), and a pre-warmed sandbox
waited, its interpreter loaded, before its run: so a run's accounting starts at a
baseline taken when its program is handed the run (cold: at launch; pooled: at the
hand-over). CPU time is the cgroup's usage since the baseline. The peak is reset to the
current usage there (cgroup v1: memory.max_usage_in_bytes; v2: memory.peak, through the
fd the reset was written to, on kernels that allow it), so it is the run's own; where
the kernel can't reset it, the group is not reused (cgroups.Cgroup.release).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .cgroups import Cgroup, _read


@dataclass
class Usage:
    cpu_ns: int | None  # CPU time since the baseline, all the run's processes together
    peak_bytes: int | None  # the most memory charged at once since the baseline


class Meter:
    """One run's accounting in its cgroup.

    Its files stay open from its making (for a pre-warmed sandbox, at its launch, off every run's
    path) until close(): each read or reset is then one syscall on a kept fd, where opening a
    cgroup file each time cost the hand-over and the answer a quarter of a millisecond a run
    (bench/NOTES.md).
    """

    def __init__(self, group: Cgroup):
        self.group = group
        self._cpu_base: int | None = None
        self._cpu_fd: int | None = None  # v2 cpu.stat or v1 cpuacct.usage
        # v2: memory.peak, whose peak starts again through the fd it is reset through (Linux 6.12
        # and later); v1: memory.max_usage_in_bytes, reset for the whole group.
        self._peak_fd: int | None = None
        self._open()

    def start(self) -> None:
        """Take the baseline: from here, CPU time and peak memory are this run's."""
        self._cpu_base = self._cpu_ns()
        if self._peak_fd is None:
            return
        try:
            os.pwrite(self._peak_fd, b"reset\n" if self.group.support.version == 2 else b"0", 0)
        except OSError:
            # Its peak is then the group's since it was made, and the group is not reused.
            self.group.peak_resettable = False
            os.close(self._peak_fd)
            self._peak_fd = None

    def read(self) -> Usage:
        cpu = self._cpu_ns()
        cpu_ns = cpu - self._cpu_base if cpu is not None and self._cpu_base is not None else None
        return Usage(cpu_ns, self._peak())

    def open_fds(self) -> int:
        return (self._cpu_fd is not None) + (self._peak_fd is not None)

    def close(self) -> None:
        for fd in (self._cpu_fd, self._peak_fd):
            if fd is not None:
                os.close(fd)
        self._cpu_fd = self._peak_fd = None

    def _open(self) -> None:
        dirs = self.group.dirs
        if self.group.support.version == 2:
            cpu, peak = f"{dirs['']}/cpu.stat", f"{dirs['']}/memory.peak"
        else:
            cpu = f"{dirs['cpuacct']}/cpuacct.usage" if "cpuacct" in dirs else None
            peak = f"{dirs['memory']}/memory.max_usage_in_bytes" if "memory" in dirs else None
        if cpu:
            try:
                self._cpu_fd = os.open(cpu, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
        if peak:
            try:
                self._peak_fd = os.open(peak, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                self.group.peak_resettable = False

    def _cpu_ns(self) -> int | None:
        if self._cpu_fd is None:
            return None
        try:
            text = os.pread(self._cpu_fd, 4096, 0)
            if self.group.support.version == 2:
                for line in text.splitlines():
                    key, _, value = line.partition(b" ")
                    if key == b"usage_usec":
                        return int(value) * 1000
                return None
            return int(text)
        except (OSError, ValueError):
            return None

    def _peak(self) -> int | None:
        try:
            if self._peak_fd is not None:
                return int(os.pread(self._peak_fd, 64, 0))
            if self.group.support.version == 2:
                return int(_read(f"{self.group.dirs['']}/memory.peak"))
            return int(_read(f"{self.group.dirs['memory']}/memory.max_usage_in_bytes"))
        except (OSError, ValueError, KeyError):
            return None
