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
from collections import Counter, deque
from dataclasses import dataclass, replace

from . import cgroups, handover, service, unfinished
from .box import Sandbox
from .spec import RUN_CGROUP_PREFIX, BoxSpec, Host, SandboxError
from .zygote import Zygote

log = logging.getLogger(__name__)

# Pooled sandboxes get host uids of their own, above the run slots' and below
# uid_base + POOL_UID_OFFSET + POOL_UIDS: never two live sandboxes on one uid.
POOL_UID_OFFSET = 100
POOL_UIDS = 1000
CGROUP_PREFIX = "pool"
IDLE_CHECK_SECONDS = 1.0
# Launching a sandbox holds the server's GIL a while (2-5 ms), which would land in the middle of
# a run: the run that just took one, or the next one of a client that sends runs back to back.
# A pool short of one sandbox only, with at least SPARE_WAITING still waiting, refills once no
# sandbox has been taken for REFILL_QUIET_SECONDS (at most REFILL_WAIT_MAX_SECONDS later): its next
# runs are served meanwhile. One with fewer refills REFILL_DELAY_SECONDS after the take, after the
# run that took it has started: a client sending one language's runs back to back would otherwise
# find it empty by its third run, and the sandboxes it takes would be younger (a JavaScript one
# that is still starting node keeps its run waiting). Zygotes are replaced so too. Launches are
# REFILL_DELAY_SECONDS apart.
REFILL_DELAY_SECONDS = 0.01
REFILL_QUIET_SECONDS = 0.025
REFILL_WAIT_MAX_SECONDS = 0.5
SPARE_WAITING = 2
SWEEP_AGE_SECONDS = 10


@dataclass(frozen=True)
class PoolConfig:
    """What the pools hold: for each name (a language), the sandbox a run will take, waiting."""

    templates: tuple[tuple[str, BoxSpec], ...]  # (name, the waiting sandbox's spec; its slot is the pool's)
    size: int  # sandboxes per name; 0: none, and every run starts cold
    host: Host
    # Names whose sandboxes serve the runs of several languages hold that many times `size`.
    shares: tuple[tuple[str, int], ...] = ()
    # Names whose sandboxes are zygotes (sandbox.zygote): lent to a run and given back after it.
    zygotes: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return [name for name, _ in self.templates]

    def size_of(self, name: str) -> int:
        return self.size * dict(self.shares).get(name, 1)

    def template(self, name: str) -> BoxSpec:
        return dict(self.templates)[name]


class Pool:
    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._boxes: dict[str, deque[Sandbox]] = {}
        self._lent: dict[str, set[Sandbox]] = {}  # zygotes serving a run, or being readied again
        self._parking: deque[tuple[str, Zygote]] = deque()  # zygotes to ready for their next run
        self._fresh: dict[str, set[Sandbox]] = {}  # zygotes launched, readying their first run
        self._readying: Counter[str] = Counter()  # threads readying a zygote (Pool._ready), by name
        self._config: PoolConfig | None = None
        self._thread: threading.Thread | None = None
        self._next_uid = 0
        self._last_take = 0.0  # (time.monotonic())
        self._last_launch = 0.0
        # When the earliest take's refill may be due: set by a take unless one before it has, cleared
        # by the thread once that time has come. Later takes do not put it off.
        self._due: float | None = None
        self._launching = False
        self._swept = False

    def ensure(self, config: PoolConfig) -> None:
        """Keep pools for this configuration; a changed configuration replaces them."""
        stale: list[Sandbox] = []
        with self._lock:
            if config != self._config:
                stale = [box for boxes in self._boxes.values() for box in boxes]
                self._boxes = {name: deque() for name in config.names()}
                self._lent = {name: set() for name in config.zygotes}
                self._fresh = {name: set() for name in config.zygotes}
                self._config = config
                self._wake.notify()
            if config.size and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._refill, name="sandbox-pool", daemon=True)
                self._thread.start()
                atexit.register(self.drain)
        for box in stale:
            _discard(box)
        if not self._swept:
            self._swept = True
            sweep(config.host)

    def take(self, name: str, config: PoolConfig) -> Sandbox | None:
        """A waiting sandbox for this name, or None: the caller starts one cold.

        The caller gives it the run's limits (Sandbox.set_limits) before its hand-over.
        """
        with self._lock:
            if config != self._config:
                return None
            boxes = self._boxes.get(name)
            box = boxes.popleft() if boxes else None
            self._last_take = time.monotonic()
            if box is not None and name in config.zygotes:
                self._lent[name].add(box)
            if self._due is None:
                self._due = self._last_take + REFILL_DELAY_SECONDS
            self._wake.notify()
        if box is None:
            return None
        if name in config.zygotes and box.worn():
            self.give_back(name, box, usable=False)  # it is replaced
            return None
        if box.process.returncode is None and not box.process.reap():
            return box  # (its CPU weight comes back with its hand-over)
        # It died while it waited (the host killed it): never hand it out.
        if name in config.zygotes:
            self.give_back(name, box, usable=False)
        else:
            _discard(box)
        return None

    def give_back(self, name: str, box: Zygote, usable: bool = True) -> None:
        """A zygote's run is over (its cgroup provably empty): the pool's thread readies it for
        the next (Zygote.park), or it is replaced when it has served its share or is broken (or
        the caller says it is unusable)."""
        with self._lock:
            lent = self._lent.get(name, set())
            # Not if the pools were replaced or drained meanwhile.
            keep = usable and self._config is not None and box in lent and box.usable()
            if keep:
                self._parking.append((name, box))  # still counted as lent until it is ready
            else:
                lent.discard(box)
            self._wake.notify()
        if not keep:
            _discard(box)

    def readying(self, name: str) -> bool:
        """Whether a zygote of this name is readying its next run: one will wait in a moment."""
        with self._lock:
            return self._readying[name] > 0 or any(n == name for n, _ in self._parking)

    def _lent_count(self, name: str) -> int:
        """Zygotes serving a run that will serve another, or readying their first. One serving its
        last (worn) is not counted, so that its successor starts meanwhile; nor one destroyed
        without being given back."""
        lent = sum(not box.destroyed and not box.worn() for box in self._lent.get(name, ()))
        return lent + len(self._fresh.get(name, ()))

    def idle(self, name: str) -> list[Sandbox]:
        """The sandboxes waiting for this name's runs (a zygote between two runs is one)."""
        with self._lock:
            return list(self._boxes.get(name, ()))

    def waiting(self) -> dict[str, int]:
        """How many sandboxes wait, by name (language)."""
        with self._lock:
            return {name: len(boxes) for name, boxes in self._boxes.items()}

    def idle_uids(self) -> set[int]:
        with self._lock:
            return {box.host.uid(box.spec.slot) for boxes in self._boxes.values() for box in boxes}

    def idle_cgroups(self) -> set[str]:
        with self._lock:
            return {d for boxes in self._boxes.values() for box in boxes for d in box.held_cgroups()}

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
                full = config is None or all(
                    len(b) + self._lent_count(n) >= config.size_of(n) for n, b in self._boxes.items()
                )
                if full and not self._launching and not self._parking and not any(self._readying.values()):
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
        wanting_since: float | None = None  # since when a sandbox has been wanted
        while True:
            with self._lock:
                config = self._config
                while self._parking:
                    # Each in a thread of its own: a new zygote's wait for Python's start must
                    # not hold up another's next run.
                    name, box = self._parking.popleft()
                    self._readying[name] += 1
                    threading.Thread(target=self._ready, args=(name, box, config, True), daemon=True).start()
                early = (self._due or 0.0) - time.monotonic()
                if early > 0:
                    # Woken by a take whose refill is not due yet: back to waiting at once. The
                    # whole look below would hold the GIL a while, between the run's take and its
                    # hand-over (0.1-0.2 ms a run, bench/NOTES.md), only to find it has to wait.
                    self._wake.wait(early)
                    continue
                self._due = None
            for box in self._worn(config):
                _discard(box)  # (replaced below)
            with self._lock:
                wanted = [
                    name
                    for name in (config.names() if config else ())
                    if len(self._boxes[name]) + self._lent_count(name) < config.size_of(name)
                ]
                if not wanted:
                    wanting_since = None
                    self._wake.wait(IDLE_CHECK_SECONDS)
                    continue
                now = time.monotonic()
                wanting_since = wanting_since or now
                pause = self._refill_pause(wanted, config, now, wanting_since)
                if pause > 0:
                    self._wake.wait(pause)  # (a take wakes it: the pool may be empty now)
                    continue
                wanting_since = None
                slot = self._free_slot(config.host)
                if slot is None:
                    log.error("every pooled sandbox uid is in use; waiting for one to be freed")
                    self._wake.wait(IDLE_CHECK_SECONDS)
                    continue
                self._launching = True
                # The emptiest pool first, so one busy language can't starve the others.
                name = min(wanted, key=lambda name: len(self._boxes[name]))
            try:
                kind = Zygote if name in config.zygotes else Sandbox
                box = kind.launch(self._spec(config.template(name), slot), config.host)
                self._last_launch = time.monotonic()
            except Exception:
                log.exception("cannot start a pooled %s sandbox; retrying shortly", name)
                with self._lock:
                    self._launching = False
                    self._wake.wait(IDLE_CHECK_SECONDS)
                continue
            if isinstance(box, Zygote):
                with self._lock:
                    self._launching = False
                    self._fresh.setdefault(name, set()).add(box)
                    self._readying[name] += 1
                threading.Thread(target=self._ready, args=(name, box, config, False), daemon=True).start()
                continue
            with self._lock:
                self._launching = False
                if config == self._config:
                    self._boxes[name].append(box)
                    box = None
            if box is not None:
                _discard(box)

    def _refill_pause(self, wanted: list[str], config: PoolConfig, now: float, wanting_since: float) -> float:
        """How long the next launch waits (0 or less: none); under the lock. A take's refill has
        already waited its REFILL_DELAY_SECONDS (Pool._due)."""
        since_take = now - self._last_take
        paced = REFILL_DELAY_SECONDS - (now - self._last_launch)
        # (A zygote pool's waiting count says little: its zygotes come and go between runs.)
        if any(
            name in config.zygotes or len(self._boxes[name]) < max(SPARE_WAITING, config.size_of(name) - 1)
            for name in wanted
        ):
            return paced
        return max(
            paced, min(REFILL_QUIET_SECONDS - since_take, REFILL_WAIT_MAX_SECONDS - (now - wanting_since))
        )

    def _worn(self, config: PoolConfig | None) -> list[Zygote]:
        """Waiting zygotes past their share of time, taken out of the pool to be replaced before a
        run finds them so."""
        with self._lock:
            worn = [
                box for name in (config.zygotes if config else ()) for box in self._boxes[name] if box.worn()
            ]
            for name in config.zygotes if worn else ():
                self._boxes[name] = deque(box for box in self._boxes[name] if box not in worn)
        return worn

    def _ready(self, name: str, box: Zygote, config: PoolConfig | None, lent: bool) -> None:
        """Park a zygote's next run (in a thread of its own, off every event loop: it waits for the
        fork and for the cgroup join), then let it wait in the pool; discard it if that fails.
        lent: it is back from a run (and still counted as lent), else just launched."""
        try:
            box.park()
        except Exception:
            log.exception("a %s zygote could not ready its next run; it is replaced", name)
            box.retire()
        with self._lock:
            self._readying[name] -= 1
            held = self._lent.get(name, set()) if lent else self._fresh.get(name, set())
            # Not if the pools were replaced or drained meanwhile.
            keep = config is not None and config == self._config and box.usable() and box in held
            held.discard(box)
            if keep:
                self._boxes[name].append(box)
            self._wake.notify()
        if not keep:
            _discard(box)

    def _free_slot(self, host: Host) -> int | None:
        """The next pool slot whose uid no sandbox still holds (waiting, running or dying): a
        sandbox that waits for hours keeps its uid, and the kernel counts some limits per uid."""
        live = unfinished.uids()
        for _ in range(POOL_UIDS):
            slot = POOL_UID_OFFSET + self._next_uid % POOL_UIDS
            self._next_uid += 1
            if host.uid(slot) not in live:
                return slot
        return None

    @staticmethod
    def _spec(template: BoxSpec, slot: int) -> BoxSpec:
        return replace(
            template,
            slot=slot,
            cgroup_prefix=CGROUP_PREFIX,
            # Starting an interpreter costs tens of milliseconds of CPU: while it waits for a
            # run, a pooled sandbox gets CPU only when no run wants it. The run that takes
            # it restores the normal weight (Pool.take).
            cpu_weight=cgroups.IDLE_CPU_WEIGHT,
        )


def sweep(host: Host) -> None:
    """Remove the empty cgroups an earlier server left when it stopped or was killed.

    Run when the server starts, and again at its first run. A waiting sandbox ends by
    itself when its server goes (its stdin closes), and a killed server's runs die with it,
    but no one is left to remove their cgroups, nor the empty ones it kept for reuse. rmdir
    only removes an empty one. Left alone: the groups this process made, and those whose
    maker still runs (a server sharing the parent: its pid and start time are in the name).
    A group whose name says nothing of its maker (made by an older version) is removed only
    once SWEEP_AGE_SECONDS old, as one just made is empty until its sandbox joins it.
    """
    now = time.time()
    for mount in cgroups.support().mounts.values():
        parent = os.path.join(mount, host.cgroup_parent)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            path = os.path.join(parent, name)
            if not name.startswith(
                (CGROUP_PREFIX, RUN_CGROUP_PREFIX, service.CGROUP_PREFIX)
            ) or cgroups.made_here(path):
                continue
            alive = cgroups.maker_alive(name)
            if alive:
                continue
            if alive is None:
                maker = cgroups.maker_pid(name)
                if maker is not None and maker != os.getpid() and os.path.exists(f"/proc/{maker}"):
                    continue
            try:
                if alive is False or now - os.stat(path).st_ctime > SWEEP_AGE_SECONDS:
                    os.rmdir(path)
            except OSError:
                pass


async def hand_over(
    box: Sandbox, files: dict[str, bytes], args: list[str], stdin: bytes | None, then: list[str] | None = None
) -> None:
    """Give a taken sandbox its run: the files and arguments, then stdin (None: kept open).

    With a compile stage, `args` is the compiler's whole command line and `then` the program's:
    a second hand-over, with no files, that the run stage's pool-exec reads after the compile.
    """
    message = handover.encode(files, args)
    if then is not None:
        message += handover.encode({}, then)
    box.start_accounting()  # what the interpreter cost while it waited is not the run's
    # The hand-over first, so the program starts while the rest is done.
    if stdin is None:
        await box.stdin.begin(message)
    else:
        box.stdin.fill(message + stdin)
    box.handed_ns = time.monotonic_ns()
    # The normal CPU weight, now that the program is on its way: a write to the cgroup that need not
    # come before the program starts, as the limits must (only a priority among runs).
    try:
        box.restore_cpu_weight()
    except OSError as e:
        log.error("cannot give a pooled sandbox its CPU weight back: %s", e)
    await box.connect()


def _discard(box: Sandbox) -> None:
    try:
        box.discard()
    except SandboxError as e:
        log.error("a pooled sandbox would not go away: %s", e)


POOL = Pool()
