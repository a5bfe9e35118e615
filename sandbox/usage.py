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

from .cgroups import Cgroup, _read, _write


@dataclass
class Usage:
    cpu_ns: int | None  # CPU time since the baseline, all the run's processes together
    peak_bytes: int | None  # the most memory charged at once since the baseline


class Meter:
    """One run's accounting in its cgroup."""

    def __init__(self, group: Cgroup):
        self.group = group
        self._cpu_base: int | None = None
        self._peak_fd: int | None = None  # v2: memory.peak, reset through this fd

    def start(self) -> None:
        """Take the baseline: from here, CPU time and peak memory are this run's."""
        self._cpu_base = self._cpu_ns()
        if self.group.support.version == 2:
            self._reset_v2_peak()
        elif "memory" in self.group.dirs:
            try:
                _write(f"{self.group.dirs['memory']}/memory.max_usage_in_bytes", "0")
            except OSError:
                self.group.peak_resettable = False

    def read(self) -> Usage:
        cpu = self._cpu_ns()
        cpu_ns = cpu - self._cpu_base if cpu is not None and self._cpu_base is not None else None
        return Usage(cpu_ns, self._peak())

    def close(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None

    def _cpu_ns(self) -> int | None:
        try:
            if self.group.support.version == 2:
                for line in _read(f"{self.group.dirs['']}/cpu.stat").splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) * 1000
                return None
            if "cpuacct" in self.group.dirs:
                return int(_read(f"{self.group.dirs['cpuacct']}/cpuacct.usage"))
        except (OSError, ValueError):
            pass
        return None

    def _reset_v2_peak(self) -> None:
        path = f"{self.group.dirs['']}/memory.peak"
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            self.group.peak_resettable = False
            return
        try:
            os.write(fd, b"reset\n")  # Linux 6.12 and later: this fd's peak starts again here
        except OSError:
            os.close(fd)
            self.group.peak_resettable = False
            return
        self._peak_fd = fd

    def _peak(self) -> int | None:
        try:
            if self.group.support.version == 2:
                if self._peak_fd is not None:
                    return int(os.pread(self._peak_fd, 64, 0))
                return int(_read(f"{self.group.dirs['']}/memory.peak"))
            return int(_read(f"{self.group.dirs['memory']}/memory.max_usage_in_bytes"))
        except (OSError, ValueError, KeyError):
            return None
