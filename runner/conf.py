"""The runner's configuration, read once from Django settings into plain values."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .sandbox import Host, Limits


@dataclass(frozen=True)
class RunnerConfig:
    defaults: Limits
    max_timeout_ms: int
    max_memory_mib: int
    max_code_bytes: int
    max_files: int
    concurrency: int
    queue_size: int
    queue_wait_seconds: float
    retention_hours: float
    pool_size: int
    host: Host


@functools.cache
def get() -> RunnerConfig:
    s = settings
    return RunnerConfig(
        defaults=Limits(
            timeout_ms=s.RUNNER_TIMEOUT,
            memory_mib=s.RUNNER_MEMORY,
            processes=s.RUNNER_PROCESSES,
            output_bytes=s.RUNNER_OUTPUT_LIMIT,
            tmpfs_mib=s.RUNNER_TMPFS,
            file_size_mib=s.RUNNER_FILE_SIZE,
            open_files=s.RUNNER_OPEN_FILES,
            cpus=s.RUNNER_CPUS,
        ),
        max_timeout_ms=s.RUNNER_MAX_TIMEOUT,
        max_memory_mib=s.RUNNER_MAX_MEMORY,
        max_code_bytes=s.RUNNER_MAX_CODE,
        max_files=s.RUNNER_MAX_FILES,
        concurrency=s.RUNNER_CONCURRENCY,
        queue_size=s.RUNNER_QUEUE_SIZE,
        queue_wait_seconds=s.RUNNER_QUEUE_WAIT,
        retention_hours=s.RUNNER_RETENTION_HOURS,
        pool_size=s.RUNNER_POOL_SIZE,
        host=Host(
            tools_dir=s.RUNNER_TOOLS_DIR, uid_base=s.RUNNER_UID_BASE, cgroup_parent=s.RUNNER_CGROUP_PARENT
        ),
    )


@receiver(setting_changed)
def _forget(setting: str, **kwargs) -> None:
    if setting.startswith("RUNNER_"):
        get.cache_clear()
