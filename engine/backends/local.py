"""The local backend: runs on this host, in execution slots shared by every door, warm or cold.

A run takes a slot (a bounded wait queue in front of them), then a pre-warmed sandbox
of its language if the pool has one, else starts one cold. Its events come from the
sandbox's pipes; its slot is given back once the sandbox is provably gone.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
from collections import deque
from dataclasses import replace

from sandbox import BoxSpec, Outcome, Sandbox, SandboxError, built, cgroups, probe
from sandbox.built import Artifact, NotBuilt
from sandbox.pool import POOL, PoolConfig, hand_over, sweep
from sandbox.process import PipeReader
from sandbox.zygote import FILTER_FD, Zygote, ZygoteRun

from .. import languages
from ..backend import Chunk, StageExit
from ..config import EngineConfig
from ..errors import Busy, Unavailable
from ..spec import RunSpec
from ..transpile import Builder

log = logging.getLogger(__name__)

READ_CHUNK = 65536
POOL_EXEC = "/opt/pool-exec"  # inside the sandbox: a compiled language's waiting stages
ZYGOTE_MODULE = ("_zygote.so", "/opt/_zygote.so")  # a zygote's extension (runtimes/zygote.c), inside
# How long a run waits for a zygote that is readying its next run, rather than start cold.
ZYGOTE_WAIT_SECONDS = 0.02
# Output written in many small pieces (a byte at a time, say) would cost the server an event
# and a frame for each. Once QUICK_READS reads in a row have come less than COALESCE_SECONDS
# apart, each further one waits that long, with the pipe unread meanwhile, and takes what
# gathered. A program's first output, and output that comes at a human pace, go at once.
COALESCE_SECONDS = 0.005
QUICK_READS = 8
# How runs started on this host: from a pre-warmed sandbox ("warm"; forked from a zygote, "zygote"
# as well), or cold. Read by /healthz and the tests.
STARTS: collections.Counter[str] = collections.Counter()


class Slots:
    """Execution slots and a bounded wait queue, shared by every door and every event loop."""

    def __init__(self, size: int, queue: int, wait_seconds: float):
        self.size = size
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._free = list(range(size - 1, -1, -1))
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()

    @property
    def in_use(self) -> int:
        return self.size - len(self._free)

    @property
    def waiting(self) -> int:
        """Runs in the queue, waiting for a slot."""
        return len(self._waiters)

    async def acquire(self) -> int:
        with self._lock:
            if self._free:
                return self._free.pop()
            if len(self._waiters) >= self.queue:
                raise Busy()
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as e:
            with self._lock:
                try:
                    self._waiters.remove((loop, fut))
                except ValueError:
                    pass
            fut.cancel()
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed a slot just as we gave up
            if isinstance(e, asyncio.TimeoutError):
                raise Busy() from None
            raise

    def release(self, slot: int) -> None:
        with self._lock:
            while self._waiters:
                loop, fut = self._waiters.popleft()
                if not fut.done():
                    loop.call_soon_threadsafe(self._hand_over, fut, slot)
                    return
            self._free.append(slot)

    def _hand_over(self, fut: asyncio.Future, slot: int) -> None:
        if fut.done():
            self.release(slot)
        else:
            fut.set_result(slot)


def box_spec(
    lang: languages.Language, config: EngineConfig, argv: list[str], build: bool = False, **fields
) -> BoxSpec:
    """A sandbox of this language (of its build service, with build): its environment, its tools,
    and its libraries or not."""
    tools_dir = config.host.tools_dir
    if config.libraries:
        fields["files"] = {**fields.get("files", {}), **lang.home_files(tools_dir)}
    elif lang.libraries:
        fields["hide"] = lang.libraries.hide
    return BoxSpec(argv=argv, env=dict(lang.env), binds=lang.binds(tools_dir, build), **fields)


class LocalBackend:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.slots = Slots(config.concurrency, config.queue_size, config.queue_wait_seconds)
        runnable = [
            lang
            for lang in languages.served(config.languages)
            if not languages.unavailable(lang.name, config.host.tools_dir)
        ]
        # A pool per language whose runs take waiting sandboxes, under the name of the language
        # whose sandboxes they are (TypeScript's runs take JavaScript's, served or not).
        pools = collections.Counter(lang.pool_name for lang in runnable if lang.pooled)
        # Zygotes need a cgroup per run, which the server makes: none without cgroups.
        self.zygotes = tuple(
            name
            for name in pools
            if config.zygote and languages.get(name).run.zygote and cgroups.support().version
        )
        self.pool = PoolConfig(
            templates=tuple((name, self._template(languages.get(name))) for name in pools),
            size=config.pool_size,
            host=config.host,
            # JavaScript's serves TypeScript's runs too: twice as many. Zygotes: _zygote_shares.
            shares=tuple(
                (name, self._zygote_shares() if name in self.zygotes else count)
                for name, count in pools.items()
            ),
            zygotes=self.zygotes,
        )
        # Languages whose runs are built by a shared service (TypeScript's esbuild).
        self.builders = {
            lang.name: Builder(lang, config, box_spec(lang, config, list(lang.build.argv), build=True))
            for lang in runnable
            if lang.build
        }

    def _zygote_shares(self) -> int:
        """How many times the pool size a language's zygotes are: config.zygotes in all, or by
        default one more than the runs at once (a zygote serves one run after another, and readies
        the next between, so a run always finds one ready), and at least the pool size."""
        size = max(1, self.config.pool_size)
        wanted = self.config.zygotes or max(size, self.config.concurrency + 1)
        return max(1, -(-wanted // size))

    def _template(self, lang: languages.Language) -> BoxSpec:
        """The sandbox that waits for one of this language's runs."""
        defaults = self.config.defaults
        if lang.name in self.zygotes:
            *loader, main = lang.run.pool
            spec = box_spec(
                lang, self.config, [*loader, "--zygote", FILTER_FD, main], limits=defaults, zygote=True
            )
            module, inside = ZYGOTE_MODULE
            # (Its runs' home files come with each run: each has a fresh working directory.)
            module_bind = (os.path.join(self.config.host.tools_dir, module), inside)
            return replace(spec, files={}, binds=(*spec.binds, module_bind))
        if lang.run.pool:
            return box_spec(lang, self.config, list(lang.run.pool), limits=defaults)
        # A compiled language's: pool-exec as both stages, each told at the hand-over what to run.
        return box_spec(
            lang, self.config, [POOL_EXEC], limits=defaults, compile=[POOL_EXEC, "--null-stdin"],
            compile_limits=lang.compile.limits(defaults), compile_stdin=True,
        )  # fmt: skip

    def close(self) -> None:
        """Stop the build services (the pool drains by itself at exit)."""
        for builder in self.builders.values():
            builder.close()

    def sweep(self) -> None:
        """Remove what a server before this one left (at start: see sandbox.pool.sweep)."""
        sweep(self.config.host)

    async def isolation(self) -> list[probe.Layer]:
        return await probe.layers(self.config.host)

    async def start(self, spec: RunSpec, *, interactive: bool) -> LocalHandle:
        failure = probe.failure(await self.isolation())
        if failure:
            raise Unavailable(
                f"code execution is disabled: the sandbox can't isolate on this host ({failure})"
            )
        lang = languages.get(spec.language)
        slot = await self.slots.acquire()
        try:
            stdin = None if interactive else spec.stdin.encode()
            files = spec.sources(lang.filename)
            if lang.name in self.builders:
                files = await asyncio.to_thread(self.builders[lang.name].files, files)
            box = await self._warm(lang, spec, files, stdin)
            warm = box is not None
            box = box or await self._cold(lang, spec, files, slot, stdin)
        except BaseException:
            self.slots.release(slot)
            raise
        STARTS["warm" if warm else "cold"] += 1
        build = lang.compile.built if spec.build_only else None
        if not isinstance(box, ZygoteRun):
            return LocalHandle(box, lambda: self.slots.release(slot), warm, build)
        STARTS["zygote"] += 1
        zygote = box.zygote

        def release() -> None:
            # Once its run is provably gone, the zygote may serve another.
            POOL.give_back(lang.pool_name, zygote)
            self.slots.release(slot)

        return LocalHandle(box, release, warm, build)

    async def _cold(
        self, lang, spec: RunSpec, files: dict[str, bytes], slot: int, stdin: bytes | None
    ) -> Sandbox:
        argv = lang.argv(list(spec.args), spec.run_options, spec.limits.memory_mib)
        fields = dict(files=files, limits=spec.limits, slot=slot, built=spec.built or {})
        if spec.compiles:
            fields.update(compile=_compile_argv(lang, spec, files), compile_limits=spec.compile_limits)
        return await Sandbox.start(box_spec(lang, self.config, argv, **fields), self.config.host, stdin)

    async def _warm(
        self, lang, spec: RunSpec, files: dict[str, bytes], stdin: bytes | None
    ) -> Sandbox | None:
        """Hand the run to a pre-warmed sandbox, if its language's pool has one (or fork it from
        a zygote)."""
        POOL.ensure(self.pool)  # with size 0 too: it also sweeps what a crashed server left
        if not self.pool.size or (spec.run_options and not lang.compile) or spec.built is not None:
            # (A waiting interpreter has started with its own flags; a compiled language's waits
            # to compile, and a test case's run brings its program built.)
            return None
        box = POOL.take(lang.pool_name, self.pool)
        if box is None and lang.pool_name in self.zygotes:
            # A zygote readies its next run in about a millisecond, where a cold start costs
            # tens of milliseconds of CPU: wait for it, a while.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ZYGOTE_WAIT_SECONDS
            while box is None and POOL.readying(lang.pool_name) and loop.time() < deadline:
                await asyncio.sleep(0.001)
                box = POOL.take(lang.pool_name, self.pool)
        if box is None:
            return None
        if isinstance(box, Zygote):
            return await self._forked(box, lang, spec, files, stdin)
        try:
            box.set_limits(spec.limits, spec.compile_limits)
            if lang.compile:
                argv = lang.argv(list(spec.args), spec.run_options, spec.limits.memory_mib)
                await hand_over(box, files, _compile_argv(lang, spec, files), stdin, then=argv)
            else:
                await hand_over(box, files, list(spec.args), stdin)
        except OSError:
            # Already using more memory than this run may: it starts cold instead.
            await box.destroy()
            return None
        return box

    async def _forked(
        self, zygote: Zygote, lang, spec: RunSpec, files: dict[str, bytes], stdin: bytes | None
    ) -> ZygoteRun | None:
        """Give the run to the zygote's parked one (forked, in a cgroup of its own) and hand it its
        files. None if that fails (the run then starts cold)."""
        run = zygote.unpark()
        if run is None:  # (it could not park one: it is replaced)
            POOL.give_back(lang.pool_name, zygote, usable=False)
            return None
        try:
            run.begin(spec.limits)
        except OSError as e:
            log.error("a %s zygote's run could not begin: %s", lang.name, e)
            await run.destroy()
            POOL.give_back(lang.pool_name, zygote)
            return None
        if self.config.libraries:
            # Each run's working directory is a fresh tmpfs: its home files come with its own.
            files = {**lang.home_files(self.config.host.tools_dir), **files}
        try:
            await hand_over(run, files, list(spec.args), stdin)
        except BaseException:
            await run.destroy()
            POOL.give_back(lang.pool_name, zygote)
            raise
        return run


def _compile_argv(lang: languages.Language, spec: RunSpec, files: dict[str, bytes]) -> list[str]:
    return lang.compile.expand(spec.compiler_options, spec.compile_limits.memory_mib, tuple(files))


class LocalHandle:
    """A run in a local sandbox: its stages' pipes and exits, as one queue of events.

    A compile stage's output and exit come first; the run's pipes are read only after, so
    no event of the run can come before the compile's end. The run's exit is put in as soon as
    its status is in, before its pipes' ends if they come later (a stray still holding them).
    """

    def __init__(self, box: Sandbox, release, warm: bool, build: tuple[str, ...] | None = None):
        self.box = box
        self.warm = warm
        self._release = release
        self._build = build  # a build-only run's: what to take out after the compile
        self._built: dict[str, Artifact] | Exception | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._compiled: Outcome | None = None
        self._task = asyncio.create_task(self._follow())
        self._closed = False

    async def _follow(self) -> None:
        box = self.box
        if box.spec.compile:
            await asyncio.gather(
                self._pump("stdout", box.compile_stdout, "compile"),
                self._pump("stderr", box.compile_stderr, "compile"),
                box.finished("compile"),
            )
            self._compiled = box.end_compile(go=self._build is None)
            if self._build is not None:
                await self._take_built()
                self._queue.put_nowait(StageExit("compile"))
                return  # the run stage never starts: close() ends the sandbox
            self._queue.put_nowait(StageExit("compile"))
        await asyncio.gather(self._pump("stdout", box.stdout), self._pump("stderr", box.stderr), self._exit())

    async def _exit(self) -> None:
        """The run's exit, as soon as its status is in: the executor takes the pipes' ends in any
        order, and the gather's own end would cost the answer two turns of the loop."""
        await self.box.finished()
        self._queue.put_nowait(StageExit("run"))

    async def _pump(self, stream: str, reader: PipeReader, stage: str = "run") -> None:
        loop = asyncio.get_running_loop()
        last, quick = 0.0, 0
        while True:
            chunk = await reader.read(READ_CHUNK)
            self._queue.put_nowait(Chunk(stream, chunk, stage))
            if not chunk:
                return
            now = loop.time()
            quick = quick + 1 if now - last < COALESCE_SECONDS else 0
            last = now
            if quick >= QUICK_READS and len(chunk) < READ_CHUNK:
                await reader.hold(COALESCE_SECONDS)
                last = loop.time()  # the wait was ours: what follows it still counts as quick

    async def _take_built(self) -> None:
        compiled = self._compiled
        if compiled.failed or compiled.setup_error or self.box.killed:
            return
        limit = self.box.spec.limits.tmpfs_mib << 20
        try:
            self._built = await asyncio.to_thread(built.take_from, self.box, self._build, limit)
        except (NotBuilt, SandboxError) as e:
            self._built = e  # raised to the executor by built()

    async def built(self) -> dict[str, Artifact]:
        if isinstance(self._built, Exception):
            raise self._built
        if self._built is None:
            raise SandboxError("this run built nothing to take out")
        return self._built

    async def receive(self) -> Chunk | StageExit:
        return await self._queue.get()

    async def write_stdin(self, data: bytes) -> bool:
        return await self.box.write_stdin(data)

    def close_stdin(self) -> None:
        self.box.close_stdin()

    def kill(self) -> None:
        self.box.kill()

    def outcome(self, stage: str) -> Outcome:
        if stage == "compile" and self._compiled is not None:
            return self._compiled
        if stage != "run":
            raise SandboxError(f"this run had no {stage} stage")
        return self.box.outcome()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._task.cancel()
        try:
            await self.box.destroy()  # it finishes its work even when cancelled meanwhile
        finally:
            self._release()
