"""The isolation probe: start one real sandbox and report each layer as on or off, with the reason.

Used at start, by `manage.py sandbox_check` and by /healthz. A host that can't isolate
runs nothing: every run asks `layers()`, which probes once per process and host.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from . import cgroups, seccomp
from .box import Sandbox
from .process import run_tool
from .spec import BASE_ENV, BoxSpec, Host, Limits, SandboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layer:
    name: str
    on: bool
    detail: str
    required: bool = True


NAMESPACES = ("user", "pid", "net", "ipc", "uts", "mnt", "cgroup")
PROBE_SCRIPT = (
    "for n in " + " ".join(NAMESPACES) + '; do echo "ns $n $(readlink /proc/self/ns/$n)"; done; '
    'if unshare -U true 2>/dev/null; then echo "userns open"; else echo "userns closed"; fi; '
    'echo "environ $(tr "\\0" " " < /proc/1/environ)"; '
    'echo "seccomp $(grep -c "^Seccomp:.*2" /proc/self/status)"; '
    'echo "done"; read -r _'
)


async def check(host: Host) -> list[Layer]:
    """Start one real sandbox and report each isolation layer as on or off, with the reason."""
    layers: list[Layer] = []
    version = ""
    try:
        out = run_tool([host.bwrap, "--version"])
        version = out.stdout.decode().strip()
        layers.append(Layer("bwrap", out.returncode == 0, version or out.stderr.decode().strip()))
    except OSError as e:
        layers.append(Layer("bwrap", False, f"{host.bwrap}: {e.strerror}; install the bubblewrap package"))
        return layers
    try:
        size = len(seccomp.bpf())
        layers.append(Layer("seccomp filter", True, f"built: {size // 8} BPF instructions"))
    except seccomp.Unavailable as e:
        layers.append(Layer("seccomp filter", False, str(e)))
        return layers
    init_ok = True
    for name, path in (("sandbox-launch", host.launcher), ("sandbox-init", host.init)):
        ok = os.access(path, os.X_OK)
        layers.append(Layer(name, ok, path if ok else f"{path} missing: run make"))
        init_ok = init_ok and ok
    support = cgroups.support()
    if support.version:
        layers.append(Layer("cgroups", True, f"v{support.version}", required=False))
        for c in cgroups.V1_CONTROLLERS if support.version == 1 else cgroups.V2_CONTROLLERS:
            detail = "limits every run" if support.has(c) else "not available: rlimits only"
            layers.append(Layer(f"cgroup {c}", support.has(c), detail, required=False))
    else:
        layers.append(Layer("cgroups", False, f"{support.reason}; rlimits only", required=False))
    if not init_ok:
        return layers

    spec = BoxSpec(argv=["/bin/bash", "-c", PROBE_SCRIPT], limits=Limits(timeout_ms=5000), slot=-1)
    box = None
    try:
        box = await Sandbox.start(spec, host, stdin=None)
        report = await asyncio.wait_for(box.stdout.readuntil(b"done\n"), 5)
        host_uid = os.stat(f"/proc/{box.process.pid}").st_uid
        joined = bool(box.cgroup and box.process.pid in box.cgroup.pids())
        box.close_stdin()
        await asyncio.wait_for(box.wait(), 5)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, SandboxError) as e:
        err = ""
        if box:
            await asyncio.sleep(0.05)  # a failing bwrap exits at once: let it finish its message
            err = box.setup_errors()
            if not err and box.stderr:
                try:
                    err = (await asyncio.wait_for(box.stderr.read(4096), 1)).decode(errors="replace").strip()
                except TimeoutError:
                    pass
        reason = err or str(e) or type(e).__name__
        layers.append(Layer("sandbox", False, f"a probe sandbox failed: {reason}"))
        return layers
    finally:
        if box:
            await box.destroy()
    lines = report.decode(errors="replace").splitlines()
    inside = {
        parts[1]: parts[2]
        for line in lines
        if (parts := line.split()) and parts[0] == "ns" and len(parts) > 2
    }
    for ns in NAMESPACES:
        mine = os.readlink(f"/proc/self/ns/{ns}")
        on = inside.get(ns, mine) != mine
        layers.append(Layer(f"{ns} namespace", on, "new" if on else "shared with the host"))
    closed = "userns closed" in lines
    layers.append(Layer("nested user namespaces", closed, "disabled" if closed else "still allowed"))
    layers.append(
        Layer("uid drop", host_uid != 0, f"runs as host uid {host_uid}" if host_uid else "runs as host root")
    )
    environ = next((line for line in lines if line.startswith("environ ")), "environ ?").split(" ", 1)[1]
    # pid 1 inside is sandbox-init: its environment must hold only what the sandbox sets.
    keys = {item.split("=", 1)[0] for item in environ.split()}
    extra = keys - set(BASE_ENV) - {"PWD"}
    detail = "only the variables the sandbox sets" if not extra else f"unexpected: {' '.join(sorted(extra))}"
    layers.append(Layer("clean environment", not extra, detail))
    filtered = "seccomp 1" in lines
    layers.append(
        Layer("seccomp", filtered, "the program runs under the filter" if filtered else "not applied")
    )
    if support.version:
        layers.append(
            Layer("cgroup join", joined, "before exec" if joined else "the sandbox was not in its cgroup")
        )
    return layers


def failure(layers: list[Layer]) -> str | None:
    """What is broken, in words; None while every required layer holds."""
    broken = [f"{layer.name}: {layer.detail}" for layer in layers if layer.required and not layer.on]
    return "; ".join(broken) or None


_verdicts: dict[Host, list[Layer]] = {}


async def layers(host: Host) -> list[Layer]:
    """The probe's verdict for this host, checked once per process; every run depends on it."""
    if host not in _verdicts:
        found = await check(host)
        broken = failure(found)
        if broken:
            log.error("isolation is not available, so no code will run: %s", broken)
        _verdicts[host] = found
    return _verdicts[host]
