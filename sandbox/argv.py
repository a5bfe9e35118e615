"""The bubblewrap command line: every isolation flag of every sandbox, built in one function."""

from __future__ import annotations

from . import cgroups
from .spec import (
    BASE_ENV,
    DEV_SHM_BYTES,
    INIT_PATH,
    RO_BINDS,
    SANDBOX_HOSTNAME,
    SANDBOX_UID,
    SYMLINKS,
    WORKDIR,
    BoxSpec,
    Host,
)


def bwrap_argv(
    spec: BoxSpec,
    host: Host,
    file_fds: dict[str, int],
    status_fd: int,
    seccomp_fd: int,
    out_fd: int,
    err_fd: int,
) -> list[str]:
    """Every isolation flag, in one place."""
    lim = spec.limits
    argv = [
        host.bwrap,
        "--seccomp", str(seccomp_fd),
        # --unshare-user must be explicit: --disable-userns needs it, and
        # --unshare-all would only *try* a user namespace.
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
        "--unshare-uts", "--unshare-cgroup",
        "--disable-userns", "--die-with-parent", "--new-session",
        # sandbox-init is pid 1 itself: bwrap's own init would report to bwrap early
        # and be left for the host's init to reap.
        "--as-pid-1",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--hostname", SANDBOX_HOSTNAME,
    ]  # fmt: skip
    for path in RO_BINDS:
        argv += ["--ro-bind-try", path, path]
    for target, link in SYMLINKS:
        argv += ["--symlink", target, link]
    argv += ["--ro-bind", host.init, INIT_PATH]
    for source, dest in spec.binds:
        argv += ["--ro-bind", source, dest]
    argv += [
        "--proc", "/proc",
        # A writable /dev tmpfs would have no size cap: give /dev/shm its own, then freeze /dev.
        "--dev", "/dev",
        # No ptys: every devpts draws on the host's kernel.pty.max, and bwrap's sets no max=,
        # so one run could take every pty on the host. An empty, root-owned /dev/pts hides it.
        "--tmpfs", "/dev/pts",
        "--size", str(DEV_SHM_BYTES), "--tmpfs", "/dev/shm",
        "--remount-ro", "/dev",
        "--size", str(lim.tmpfs_mib << 20), "--perms", "1777", "--tmpfs", WORKDIR,
    ]  # fmt: skip
    # The code arrives through file descriptors that bwrap copies into the fresh
    # tmpfs: the host never writes into a directory the program controls.
    made: set[str] = set()
    for name, fd in file_fds.items():
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                argv += ["--dir", f"{WORKDIR}/{d}"]
        argv += ["--file", str(fd), f"{WORKDIR}/{name}"]
    argv += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    for key, value in {**BASE_ENV, **spec.env}.items():
        argv += ["--setenv", key, value]
    # Without a memory cgroup, RLIMIT_DATA is the fallback memory limit (0 = unset).
    data_limit = 0 if cgroups.support().has("memory") else lim.memory_mib << 20
    argv += [
        "--", INIT_PATH, str(status_fd), str(out_fd), str(err_fd),
        str(lim.open_files), str(lim.file_size_mib << 20), str(lim.processes), str(data_limit),
        "--", *spec.argv,
    ]  # fmt: skip
    return argv


def launcher_argv(host: Host, uid: int, join: list[str], bwrap: list[str]) -> list[str]:
    """sandbox-launch joins the run's cgroups as root, then drops to the slot's uid and execs bwrap."""
    return [host.launcher, str(uid), *join, "--", *bwrap]
