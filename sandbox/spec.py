"""What a sandbox is made of: its limits, the host's pieces, one sandbox's spec, and how it ended.

The limits and the fixed shape of every sandbox are named here, at the top of the
isolation layer. Per-run limits arrive in a Limits; its defaults are the documented
ones (the server's settings start from them), and the constants below are what no
request can change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .built import Artifact

# --- Per-run limits: the defaults --------------------------------------------------
DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_MEMORY_MIB = 256
DEFAULT_PROCESSES = 64
DEFAULT_OUTPUT_BYTES = 1 << 20
DEFAULT_TMPFS_MIB = 64
DEFAULT_FILE_SIZE_MIB = 16
DEFAULT_OPEN_FILES = 256
DEFAULT_CPUS = 1.0

# --- The fixed shape of every sandbox ------------------------------------------------
SANDBOX_UID = 1000  # the program's uid inside; the host sees the slot's uid
SANDBOX_HOSTNAME = "sandbox"
WORKDIR = "/tmp"  # one private tmpfs: the working directory, /tmp and $HOME at once
DEV_SHM_BYTES = 1 << 20  # /dev/shm is its own small tmpfs, so it can't bypass the /tmp cap
PIPE_BYTES = 1 << 20  # large pipes: Node's async writes reach the output cap, not the OOM killer
INIT_PATH = "/.sandbox-init"
# A tool up to this size is copied into the sandbox rather than bound (sandbox.argv).
COPY_TOOLS_BYTES = 1 << 20
# Only the runtime is visible, read-only. /usr/local is left out on purpose: on
# many hosts it holds unrelated tools and configuration. /etc/alternatives holds
# only the symlinks that commands such as awk resolve through.
RO_BINDS = ("/usr/bin", "/usr/lib", "/usr/lib64", "/usr/share/zoneinfo", "/etc/alternatives")
SYMLINKS = (("usr/bin", "/bin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("usr/bin", "/sbin"))
BASE_ENV = {"PATH": "/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": WORKDIR, "LANG": "C.UTF-8", "USER": "sandbox"}
# The environment of the launcher chain and of bwrap itself: nothing of the server's.
LAUNCH_ENV = {"PATH": "/usr/bin:/bin"}
# CPU weights on cgroup v2's scale (v1's cpu.shares is 1024 at the default weight of 100).
DEFAULT_CPU_WEIGHT = 100
IDLE_CPU_WEIGHT = 1
RUN_CGROUP_PREFIX = "slot"  # a run's cgroup: <prefix><slot>-pid<maker's pid>-<random> (cgroups.name)


class SandboxError(Exception):
    """The sandbox could not be set up or torn down; never the program's fault."""


@dataclass(frozen=True)
class Limits:
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    memory_mib: int = DEFAULT_MEMORY_MIB
    processes: int = DEFAULT_PROCESSES
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    tmpfs_mib: int = DEFAULT_TMPFS_MIB
    file_size_mib: int = DEFAULT_FILE_SIZE_MIB
    open_files: int = DEFAULT_OPEN_FILES
    cpus: float = DEFAULT_CPUS


@dataclass(frozen=True)
class Host:
    """Where the host's pieces are; set once from the server's configuration."""

    tools_dir: str = "/opt/code-playground"
    uid_base: int = 61000
    cgroup_parent: str = "code-playground"
    bwrap: str = "/usr/bin/bwrap"

    @property
    def init(self) -> str:
        return os.path.join(self.tools_dir, "sandbox-init")

    @property
    def launcher(self) -> str:
        return os.path.join(self.tools_dir, "sandbox-launch")

    def uid(self, slot: int) -> int:
        return self.uid_base + slot


@dataclass
class BoxSpec:
    """What one sandbox runs: argv and env inside, files placed in WORKDIR, extra read-only binds."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    binds: tuple[tuple[str, str], ...] = ()
    limits: Limits = field(default_factory=Limits)
    slot: int = 0
    cgroup_prefix: str = RUN_CGROUP_PREFIX
    cpu_weight: int = DEFAULT_CPU_WEIGHT  # against other sandboxes, when CPUs are contended
    # A compile stage: its argv, run first in this same sandbox under its own limits.
    compile: list[str] | None = None
    compile_limits: Limits | None = None
    # The compiler inherits stdin: a pre-warmed sandbox's compile stage is pool-exec, which reads
    # its hand-over from it (and gives the compiler /dev/null).
    compile_stdin: bool = False
    hide: tuple[str, ...] = ()  # directories of the host's that are empty in this sandbox
    # What an earlier sandbox's compile built (sandbox.built), placed read-only beside the files:
    # a test case's run with no compile of its own.
    built: dict[str, Artifact] = field(default_factory=dict)
    # A zygote (sandbox.zygote): its program serves runs by forking, over a socket as its stdin.
    # It keeps CAP_SYS_ADMIN and CAP_SETPCAP in its own user namespace (to make each run's namespaces,
    # and to empty the run's capability bounding set) under a
    # filter that allows unshare and mount; each run drops both before any user code.
    zygote: bool = False


@dataclass(frozen=True)
class ExitStatus:
    """The program's real wait status, as sandbox-init reported it from inside."""

    exit_code: int | None
    signal: int | None
    duration_ns: int | None  # the program's own wall time, as measured inside


@dataclass(frozen=True)
class Outcome:
    """How a sandbox's program ended, decoded: nobody outside this package reads a 128+n."""

    exit_code: int | None  # None when a signal ended it
    signal: int | None
    duration_ns: int  # the program's own wall time (a pre-warmed sandbox's from its hand-over)
    oom_killed: bool  # the kernel killed a process of it for exceeding the memory limit
    setup_error: str | None = None  # bwrap or sandbox-init failed before the program ran
    cpu_ns: int | None = None  # CPU time of all its processes together (None: no cgroup to count it)
    peak_bytes: int | None = None  # the most memory it held at once

    @property
    def failed(self) -> bool:
        return bool(self.signal or self.exit_code)
