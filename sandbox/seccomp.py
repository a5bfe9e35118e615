"""The seccomp filter every sandbox runs under, built once with libseccomp and handed to bwrap.

Part of the isolation layer: knows nothing of Django. The filter allows by
default and denies the kernel surface a program in a playground has no use
for, where most container escapes and kernel exploits begin.
"""

from __future__ import annotations

import errno
import functools
import os
import socket

# Denied with EPERM.
DENY = (
    # the kernel keyring
    "keyctl", "add_key", "request_key",
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    # kernel programs and tracing
    "bpf", "perf_event_open", "userfaultfd",
    # namespaces (clone's namespace flags: see CLONE_NAMESPACE_FLAGS)
    "unshare", "setns",
    # the mount family, old and new
    "mount", "umount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # the machine itself
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    # file handles bypass path checks; the rest are obsolete or raw hardware
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "uselib", "iopl", "ioperm",
    "nfsservctl", "_sysctl", "vhangup",
)  # fmt: skip
# Denied with ENOSYS, so glibc and libuv fall back (clone3 -> clone; io_uring ->
# thread pool). seccomp can't see the operations io_uring runs, so it is off. The old
# Linux AIO calls draw on one host-wide pool (fs.aio-max-nr): one run could take all of it
# from every other process on the host, and no runtime here uses them (glibc's POSIX AIO
# is threads). inotify watches inodes, and every sandbox binds the same host inodes
# read-only: a watch on /usr/bin would show a run each program that other runs and the host
# open, as they do. Only file watching (Node's fs.watch) goes without it.
NOT_IMPLEMENTED = (
    "clone3", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "inotify_init", "inotify_init1", "inotify_add_watch",
)  # fmt: skip
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
# What a zygote (sandbox.zygote) may still call that a run may not: it makes each run's mount,
# pid, IPC and cgroup namespaces and mounts. Each run's init installs the whole filter on top.
ZYGOTE_ALLOWS = ("unshare", "mount")
TIOCSTI = 0x5412  # pushes characters into a terminal's input: a classic escape


class Unavailable(Exception):
    """libseccomp is missing or refused the filter."""


@functools.cache
def bpf(zygote: bool = False) -> bytes:
    """The compiled filter, as the BPF program bwrap --seccomp loads; a zygote's allows what
    ZYGOTE_ALLOWS names."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as e:  # RuntimeError: pyseccomp found no libseccomp
        raise Unavailable(f"libseccomp is not available: {e}") from e
    f = sc.SyscallFilter(sc.ALLOW)
    # A syscall from another ABI (int 0x80 on x86_64) kills the whole process.
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENY:
        if not (zygote and name in ZYGOTE_ALLOWS):
            _add(sc, f, eperm, name)
    for name in NOT_IMPLEMENTED:
        _add(sc, f, sc.ERRNO(errno.ENOSYS), name)
    # libseccomp 2.5 takes one comparison per argument in a rule: one rule per flag.
    for flag in CLONE_NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    fd = os.memfd_create("seccomp-export", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "rb", closefd=True) as out:
            f.export_bpf(out)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _add(sc, f, action: int, name: str) -> None:
    try:
        f.add_rule(action, name)
    except (OSError, ValueError, RuntimeError):
        # A syscall this architecture doesn't have (vm86 on x86_64, say) can't be called anyway.
        if sc.resolve_syscall(sc.Arch.NATIVE, name) >= 0:
            raise
