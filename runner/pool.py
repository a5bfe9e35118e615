"""Pre-warmed sandboxes: a faster way to obtain a sandbox, nothing else.

For each language a few sandboxes are kept started and fully limited (namespaces,
cgroup, seccomp, rlimits), their interpreter loaded and waiting on stdin for one run
(runtimes/pool-loader.*). A run takes one and hands it the code; from then on it is an
ordinary run, and the sandbox is destroyed after it. No process or tmpfs ever serves
two runs. When a language's pool is empty, the run starts cold.

A thread refills the pools: launching a sandbox needs no event loop (its pipes are
attached to the loop of the run that takes it), so one pool serves every loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

from . import cgroups, languages, sandbox
from .conf import RunnerConfig

log = logging.getLogger(__name__)

# Pooled sandboxes get host uids of their own, above the run slots' and below
# uid_base + POOL_UID_OFFSET + POOL_UIDS: never two live sandboxes on one uid.
POOL_UID_OFFSET = 100
POOL_UIDS = 1000
CGROUP_PREFIX = "pool"
IDLE_CHECK_SECONDS = 1.0
# A refill waits this long after a sandbox is taken: launching one holds the GIL for about
# a millisecond, which would otherwise land in the middle of the run that just took one.
REFILL_DELAY_SECONDS = 0.01
SWEEP_AGE_SECONDS = 10


class Pool:
    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._boxes: dict[str, deque[sandbox.Sandbox]] = {}
        self._config: RunnerConfig | None = None
        self._thread: threading.Thread | None = None
        self._next_uid = 0
        self._launching = False
        self._swept = False

    def ensure(self, config: RunnerConfig) -> None:
        """Keep pools for this configuration; a changed configuration replaces them."""
        stale: list[sandbox.Sandbox] = []
        with self._lock:
            if config != self._config:
                stale = [box for boxes in self._boxes.values() for box in boxes]
                self._boxes = {lang.name: deque() for lang in languages.LANGUAGES}
                self._config = config
                self._wake.notify()
            if config.pool_size and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._refill, name="sandbox-pool", daemon=True)
                self._thread.start()
                atexit.register(self.drain)
        for box in stale:
            _discard(box)
        if not self._swept:
            self._swept = True
            _sweep(config)

    def take(self, language: str, config: RunnerConfig) -> sandbox.Sandbox | None:
        """A warm sandbox for this language, or None: the caller starts one cold."""
        with self._lock:
            if config != self._config:
                return None
            boxes = self._boxes.get(language)
            box = boxes.popleft() if boxes else None
            self._wake.notify()
        if box is None:
            return None
        if box.process.returncode is None and not box.process._reap():
            try:
                if box.cgroup:
                    box.cgroup.set_cpu_weight(cgroups.DEFAULT_CPU_WEIGHT)
                return box
            except OSError as e:
                log.error("cannot give a pooled sandbox its CPU weight back: %s", e)
        # It died while it waited (the host killed it), or can't be set up: never hand it out.
        _discard(box)
        return None

    def idle_uids(self) -> set[int]:
        with self._lock:
            return {box.host.uid(box.spec.slot) for boxes in self._boxes.values() for box in boxes}

    def idle_cgroups(self) -> set[str]:
        with self._lock:
            return {
                d
                for boxes in self._boxes.values()
                for box in boxes
                if box.cgroup
                for d in box.cgroup.dirs.values()
            }

    def held_fds(self) -> int:
        """How many of the server's fds the waiting sandboxes hold (their pipes and pidfds)."""
        with self._lock:
            return sum(box.open_fds() for boxes in self._boxes.values() for box in boxes)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every pool is full (for tests and the benchmark)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                config = self._config
                full = config is None or all(len(b) >= config.pool_size for b in self._boxes.values())
                if full and not self._launching:
                    return True
            time.sleep(0.01)
        return False

    def drain(self) -> None:
        """Destroy every waiting sandbox (at shutdown, and in tests)."""
        with self._lock:
            self._config = None  # and launch no more
            stale = [box for boxes in self._boxes.values() for box in boxes]
            for boxes in self._boxes.values():
                boxes.clear()
        for box in stale:
            _discard(box)

    def _refill(self) -> None:
        while True:
            with self._lock:
                config = self._config
                wanted = [
                    lang
                    for lang in languages.LANGUAGES
                    if config and len(self._boxes.get(lang.name, ())) < config.pool_size
                ]
                if not wanted:
                    self._wake.wait(IDLE_CHECK_SECONDS)
                    continue
                slot = POOL_UID_OFFSET + self._next_uid % POOL_UIDS
                self._next_uid += 1
                self._launching = True
                # The emptiest pool first, so one busy language can't starve the others.
                lang = min(wanted, key=lambda lang: len(self._boxes[lang.name]))
            time.sleep(REFILL_DELAY_SECONDS)
            try:
                box = sandbox.Sandbox.launch(self._spec(lang, config, slot), config.host)
            except Exception:
                log.exception("cannot start a pooled %s sandbox; retrying shortly", lang.name)
                with self._lock:
                    self._launching = False
                    self._wake.wait(IDLE_CHECK_SECONDS)
                continue
            with self._lock:
                self._launching = False
                if config == self._config:
                    self._boxes[lang.name].append(box)
                    box = None
            if box is not None:
                _discard(box)

    @staticmethod
    def _spec(lang: languages.Language, config: RunnerConfig, slot: int) -> sandbox.BoxSpec:
        return sandbox.BoxSpec(
            argv=list(lang.pool_command),
            env=dict(lang.env),
            binds=lang.binds(config.host.tools_dir),
            limits=config.defaults,
            slot=slot,
            cgroup_prefix=CGROUP_PREFIX,
            # Starting an interpreter costs tens of milliseconds of CPU: while it waits for a
            # run, a pooled sandbox gets CPU only when no run wants it. The run that takes
            # it restores the normal weight (Pool.take).
            cpu_weight=cgroups.IDLE_CPU_WEIGHT,
        )


def _sweep(config: RunnerConfig) -> None:
    """Remove the empty cgroups an earlier server left when it stopped or was killed.

    A waiting sandbox ends by itself when its server goes (its stdin closes), and a killed
    server's runs die with it, but no one is left to remove their cgroups, nor the empty
    ones it kept for reuse. rmdir only removes an empty one, and these are left alone: the
    groups this process made, those whose maker is another process still running (a server
    sharing the parent: its pid is in the name), and those made less than SWEEP_AGE_SECONDS
    ago (one just made is empty until its sandbox joins it). A group named with this
    process's pid that it did not make is an earlier server's that had the same pid.
    """
    now = time.time()
    for mount in sandbox.cgroup_support().mounts.values():
        parent = os.path.join(mount, config.host.cgroup_parent)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            path = os.path.join(parent, name)
            if not name.startswith((CGROUP_PREFIX, sandbox.RUN_CGROUP_PREFIX)):
                continue
            if cgroups.made_here(path):
                continue
            maker = cgroups.maker_pid(name)
            if maker is not None and maker != os.getpid() and os.path.exists(f"/proc/{maker}"):
                continue
            try:
                if now - os.stat(path).st_ctime > SWEEP_AGE_SECONDS:
                    os.rmdir(path)
            except OSError:
                pass


def handover(files: dict[str, bytes], args: list[str]) -> bytes:
    """What a waiting sandbox's loader reads first on stdin: the run's files and arguments.

    An 8-byte big-endian length, then: a 4-byte file count and, per file, a 4-byte name
    length, the UTF-8 name, an 8-byte content length and the content; then a 4-byte
    argument count and, per argument, a 4-byte length and the UTF-8 argument. Plain
    lengths, so the loaders (runtimes/pool-loader.py, pool-loader.cjs, pool-exec.c) parse
    it with nothing to import.
    """
    parts = [len(files).to_bytes(4, "big")]
    for name, content in files.items():
        encoded = name.encode()
        parts += [len(encoded).to_bytes(4, "big"), encoded, len(content).to_bytes(8, "big"), content]
    parts.append(len(args).to_bytes(4, "big"))
    for arg in args:
        encoded = arg.encode()
        parts += [len(encoded).to_bytes(4, "big"), encoded]
    body = b"".join(parts)
    return len(body).to_bytes(8, "big") + body


def _discard(box: sandbox.Sandbox) -> None:
    try:
        box.discard()
    except sandbox.SandboxError as e:
        log.error("a pooled sandbox would not go away: %s", e)


POOL = Pool()
