"""What a sandbox's /proc says of the host: a run's own view, or neutral values, as LXCFS gives containers.

A sandbox gets a procfs of its own pid namespace, but the files outside /proc/<pid> are the
host's: its uptime, its memory and CPU model, its kernel command line and boot id, and
host-wide counters (tasks in loadavg, forks since boot, CPU time, interrupts, disk I/O, open
files, ptys, AIO contexts, memory pressure, locks). Read twice, the counters tell a program
when other runs start and what they do. bwrap binds a file of ours over each of those a
run's activity moves, or that name the host, made for this sandbox (masks()); the kernel's
version may stay.

What this does not reach (SECURITY.md): the files under /proc/<pid> (mountinfo, autogroup),
what the kernel answers directly (sysinfo(2), the clocks, the cpuid instruction), and the
counters left uncovered because each cover costs a mount at every start (diskstats, vmstat,
interrupts...).
"""

from __future__ import annotations

import functools
import os
import time
import uuid

from .spec import Limits

# Read as empty: every lock on the host, with the inode it is on and its holder (other runs
# lock the same read-only inodes). Each file covered costs bwrap a mount, at every sandbox
# start, and the sandbox's teardown one more: the host-wide counters that name no run's own
# activity (diskstats, vmstat, interrupts...) are left (SECURITY.md).
EMPTY = ("/proc/locks",)
# The memory /proc/meminfo tells, all of it free: neither the host's nor the run's limit. Runtimes
# size their heaps from it: Node's V8, told 256 MiB, collects so much more often that a
# TypeScript run took 1.5-2 x as long (bench/NOTES.md, 2026-12-03). The cgroup's limit holds
# either way, and a run over it ends with status "memory".
MEMINFO_TOTAL_KIB = 16 << 20  # 16 GiB
# Directories of host-wide counters: an empty, read-only tmpfs over each.
EMPTY_DIRS = ("/proc/pressure",)


@functools.cache
def existing(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Those of paths this kernel has (procfs can't make a missing one to bind over)."""
    return tuple(p for p in paths if os.path.exists(p))


def masks(limits: Limits, cpus: int | None = None) -> dict[str, bytes]:
    """The files bound over /proc for one sandbox: its path inside, and what it reads there."""
    cpus = cpus or len(os.sched_getaffinity(0))
    files = {
        "/proc/uptime": b"0.00 0.00\n",
        "/proc/loadavg": b"0.00 0.00 0.00 1/1 1\n",
        "/proc/stat": _stat(cpus, int(time.time())),
        "/proc/meminfo": _meminfo(MEMINFO_TOTAL_KIB),
        "/proc/cpuinfo": _cpuinfo(cpus),
        "/proc/cmdline": b"ro quiet\n",
        "/proc/sys/kernel/random/boot_id": f"{uuid.uuid4()}\n".encode(),
        "/proc/sys/fs/file-nr": f"0\t0\t{limits.open_files}\n".encode(),
        "/proc/sys/fs/aio-nr": b"0\n",
        "/proc/sys/kernel/pty/nr": b"0\n",
    }
    files.update(dict.fromkeys(EMPTY, b""))
    return {path: data for path, data in files.items() if path in existing(tuple(files))}


def _stat(cpus: int, boot: int) -> bytes:
    # Booted as the sandbox started, with no time spent and one process: the run's own view.
    zeros = " ".join(["0"] * 10)
    lines = [f"cpu  {zeros}"] + [f"cpu{i} {zeros}" for i in range(cpus)]
    lines += [
        "intr 0",
        "ctxt 0",
        f"btime {boot}",
        "processes 1",
        "procs_running 1",
        "procs_blocked 0",
        "softirq " + " ".join(["0"] * 11),
    ]
    return ("\n".join(lines) + "\n").encode()


@functools.cache
def _meminfo(total_kib: int) -> bytes:
    fields = {
        "MemTotal": total_kib,
        "MemFree": total_kib,
        "MemAvailable": total_kib,
        "Buffers": 0,
        "Cached": 0,
        "SwapCached": 0,
        "Active": 0,
        "Inactive": 0,
        "SwapTotal": 0,
        "SwapFree": 0,
        "Dirty": 0,
        "Writeback": 0,
        "AnonPages": 0,
        "Mapped": 0,
        "Shmem": 0,
        "Slab": 0,
        "CommitLimit": total_kib,
        "Committed_AS": 0,
    }
    return "".join(f"{name + ':':<16}{value:>8} kB\n" for name, value in fields.items()).encode()


@functools.cache
def _cpuinfo(cpus: int) -> bytes:
    """A CPU with no model, and the host's feature flags (which the cpuid instruction tells
    anyway, and which libraries read to pick their fastest code)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blocks = []
    for i in range(cpus):
        blocks.append(
            f"processor\t: {i}\nvendor_id\t: unknown\nmodel name\t: virtual CPU\n"
            f"physical id\t: 0\ncore id\t\t: {i}\ncpu cores\t: {cpus}\nflags\t\t: {flags}\n\n"
        )
    return "".join(blocks).encode()
