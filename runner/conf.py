"""The runner's configuration: the only reader of the RUNNER_* settings, read once into plain values.

The engine gets its part (EngineConfig) as a plain value; nothing below the doors
reads Django settings.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from engine import languages
from engine.backends.local import LocalBackend
from engine.config import EngineConfig
from sandbox import Host, Limits

from .rates import Rate, setting_rate


@dataclass(frozen=True)
class RunnerConfig:
    engine: EngineConfig
    max_timeout_ms: int
    max_memory_mib: int
    max_compile_timeout_ms: int
    max_compile_memory_mib: int
    max_code_bytes: int
    max_files: int
    max_batch: int
    max_tests: int
    max_body_bytes: int
    retention_hours: float
    record_in_background: bool
    rate_limit: Rate | None  # per anonymous address
    key_rate_limit: Rate | None  # for keys without a rate of their own
    client_concurrency: int
    client_wait_seconds: float
    trusted_proxies: tuple  # the networks whose X-Forwarded-For is believed
    require_api_key: bool
    stop_grace_seconds: float  # at SIGTERM, how long runs in flight may go on before they are killed
    metrics_token: str  # empty: /metrics is served to loopback only
    journal_path: str  # answered runs not yet stored (runner.recorder)
    request_timeout_seconds: float  # how long a request may take to arrive (playground.http)
    stdin_limit_bytes: int  # what a websocket run may be sent as stdin, in all
    stored_limit_bytes: int  # what a run's record keeps of each of stdin, stdout and stderr

    @property
    def defaults(self) -> Limits:
        return self.engine.defaults

    @property
    def host(self) -> Host:
        return self.engine.host

    @functools.cached_property
    def languages(self) -> tuple[languages.Language, ...]:
        """The languages this server serves (RUNNER_LANGUAGES), available or not."""
        return languages.served(self.engine.languages)


@functools.cache
def get() -> RunnerConfig:
    s = settings
    return RunnerConfig(
        engine=EngineConfig(
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
            concurrency=s.RUNNER_CONCURRENCY,
            queue_size=s.RUNNER_QUEUE_SIZE,
            queue_wait_seconds=s.RUNNER_QUEUE_WAIT,
            pool_size=s.RUNNER_POOL_SIZE,
            zygote=s.RUNNER_ZYGOTE,
            zygotes=s.RUNNER_ZYGOTES,
            host=Host(
                tools_dir=s.RUNNER_TOOLS_DIR, uid_base=s.RUNNER_UID_BASE, cgroup_parent=s.RUNNER_CGROUP_PARENT
            ),
            languages=_languages(s.RUNNER_LANGUAGES),
            libraries=s.RUNNER_LIBRARIES,
        ),
        max_timeout_ms=s.RUNNER_MAX_TIMEOUT,
        max_memory_mib=s.RUNNER_MAX_MEMORY,
        max_compile_timeout_ms=s.RUNNER_MAX_COMPILE_TIMEOUT,
        max_compile_memory_mib=s.RUNNER_MAX_COMPILE_MEMORY,
        max_code_bytes=s.RUNNER_MAX_CODE,
        max_files=s.RUNNER_MAX_FILES,
        max_batch=s.RUNNER_MAX_BATCH,
        max_tests=s.RUNNER_MAX_TESTS,
        max_body_bytes=s.DATA_UPLOAD_MAX_MEMORY_SIZE,
        retention_hours=s.RUNNER_RETENTION_HOURS,
        record_in_background=s.RUNNER_RECORD_IN_BACKGROUND,
        rate_limit=setting_rate("RUNNER_RATE_LIMIT", s.RUNNER_RATE_LIMIT),
        key_rate_limit=setting_rate("RUNNER_KEY_RATE_LIMIT", s.RUNNER_KEY_RATE_LIMIT),
        client_concurrency=s.RUNNER_CLIENT_CONCURRENCY or max(1, s.RUNNER_CONCURRENCY // 2),
        client_wait_seconds=s.RUNNER_CLIENT_WAIT,
        trusted_proxies=_networks("RUNNER_TRUSTED_PROXIES", s.RUNNER_TRUSTED_PROXIES),
        require_api_key=s.RUNNER_REQUIRE_API_KEY,
        stop_grace_seconds=s.RUNNER_STOP_GRACE,
        metrics_token=s.RUNNER_METRICS_TOKEN,
        journal_path=str(s.DATA_DIR / "runs.journal"),
        request_timeout_seconds=s.RUNNER_REQUEST_TIMEOUT,
        stdin_limit_bytes=s.RUNNER_STDIN_LIMIT,
        stored_limit_bytes=s.RUNNER_STORED_LIMIT,
    )


def _languages(text: str) -> tuple[str, ...] | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        return None
    try:
        return languages.canonical(names)
    except languages.RegistryError as e:
        raise ImproperlyConfigured(f"RUNNER_LANGUAGES: {e}") from None


def _networks(name: str, text: str) -> tuple:
    networks = []
    for net in filter(None, (n.strip() for n in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {net!r} is not an address or CIDR") from None
    return tuple(networks)


_backend: tuple[EngineConfig, LocalBackend] | None = None
_backend_lock = threading.Lock()


def backend() -> LocalBackend:
    """The backend runs go to, shared by every door and event loop; a changed configuration replaces it."""
    global _backend
    engine = get().engine
    with _backend_lock:
        if _backend is None or _backend[0] is not engine:
            old, _backend = _backend, (engine, LocalBackend(engine))
            if old is not None:
                old[1].close()  # its build services: the new backend starts its own
        return _backend[1]


@receiver(setting_changed)
def _forget(setting: str, **kwargs) -> None:
    if setting.startswith("RUNNER_") or setting == "DATA_UPLOAD_MAX_MEMORY_SIZE":
        get.cache_clear()
