"""The engine's configuration: a plain value, handed in by whoever runs the engine (the server, a worker)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox import Host, Limits


@dataclass(frozen=True)
class EngineConfig:
    defaults: Limits = field(default_factory=Limits)  # a run's limits when the request sets none
    concurrency: int = 1  # sandboxes running at once on this host
    queue_size: int = 32  # runs that may wait for a slot
    queue_wait_seconds: float = 30.0
    pool_size: int = 2  # pre-warmed sandboxes per language; 0 disables
    # A language whose waiting sandboxes can be zygotes (Python) forks its runs from them.
    zygote: bool = True
    zygotes: int = 0  # how many (rounded up to a multiple of pool_size); 0: one more than concurrency
    host: Host = field(default_factory=Host)
    languages: tuple[str, ...] | None = None  # the registry's names this host serves; None: all
    libraries: bool = True  # the languages' libraries (Python's data stack); off: hidden
