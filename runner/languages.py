"""The language registry: names, aliases, how each runs inside the sandbox, and its real version."""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field

from . import sandbox

log = logging.getLogger(__name__)

PYTHON = "/usr/bin/python3"  # Debian's build: starts in a fraction of the time of a pyenv one
NODE = "/usr/bin/node"
BASH = "/bin/bash"
ESBUILD_INSIDE = "/opt/esbuild"
ESBUILD_API_INSIDE = (
    "/opt/esbuild-api.js"  # esbuild's JavaScript API, which pool-loader.cjs builds TypeScript with
)
NODE_PRELOAD_INSIDE = "/opt/node-preload.cjs"
NODE_TOOLS = (("node-preload.cjs", NODE_PRELOAD_INSIDE),)
POOL_PY = "/opt/pool-loader.py"
POOL_NODE = "/opt/pool-loader.cjs"
POOL_EXEC = "/opt/pool-exec"
# Plain .js runs as CommonJS unless it uses import/export, as it would in a browser.
JS_NODE = (NODE, "--require", NODE_PRELOAD_INSIDE, "--experimental-detect-module")
# TypeScript runs through pool-loader.cjs whether cold or pooled, so both take one path:
# it bundles main.ts with esbuild's service and runs the output as CommonJS, or as an ES
# module when main.ts uses module syntax (see the loader).
TS_NODE = (NODE, "--require", NODE_PRELOAD_INSIDE, "--enable-source-maps", POOL_NODE)
TS_TOOLS = (ESBUILD_API_INSIDE, ESBUILD_INSIDE)


@dataclass(frozen=True)
class Language:
    name: str
    title: str  # as people write it
    aliases: tuple[str, ...]
    filename: str
    command: tuple[str, ...]  # argv inside the sandbox; the user's args follow
    pool_command: tuple[str, ...]  # a pre-warmed sandbox's loader, which then becomes the command
    version_probe: tuple[str, ...]
    version_pattern: str
    runtime: str
    env: dict[str, str] = field(default_factory=dict)
    tools: tuple[tuple[str, str], ...] = ()  # (file in the tools dir, path inside)
    example: str = ""

    def argv(self, args: list[str]) -> list[str]:
        return [*self.command, *args]

    def binds(self, tools_dir: str) -> tuple[tuple[str, str], ...]:
        return tuple((os.path.join(tools_dir, name), inside) for name, inside in self.tools)


LANGUAGES: tuple[Language, ...] = (
    Language(
        name="python",
        title="Python",
        aliases=("py", "python3"),
        filename="main.py",
        command=(PYTHON, "main.py"),
        pool_command=(PYTHON, POOL_PY, "main.py"),
        version_probe=(PYTHON, "--version"),
        version_pattern=r"Python (\S+)",
        runtime="CPython",
        env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        tools=(("pool-loader.py", POOL_PY),),
        example='print("Hello, world!")\n',
    ),
    Language(
        name="javascript",
        title="JavaScript",
        aliases=("js", "node"),
        filename="main.js",
        command=(*JS_NODE, "main.js"),
        pool_command=(*JS_NODE, POOL_NODE, "wait", "main.js"),
        version_probe=(NODE, "--version"),
        version_pattern=r"v(\S+)",
        runtime="Node.js",
        tools=(*NODE_TOOLS, ("pool-loader.cjs", POOL_NODE)),
        example='console.log("Hello, world!");\n',
    ),
    Language(
        name="typescript",
        title="TypeScript",
        aliases=("ts",),
        filename="main.ts",
        command=(*TS_NODE, "now", "main.ts", *TS_TOOLS),
        pool_command=(*TS_NODE, "wait", "main.ts", *TS_TOOLS),
        version_probe=("{tools}/esbuild", "--version"),
        version_pattern=r"(\S+)",
        runtime="esbuild + Node.js",
        tools=(
            ("esbuild", ESBUILD_INSIDE),
            ("esbuild-api.js", ESBUILD_API_INSIDE),
            *NODE_TOOLS,
            ("pool-loader.cjs", POOL_NODE),
        ),  # fmt: skip
        example='const greet = (name: string): string => `Hello, ${name}!`;\nconsole.log(greet("world"));\n',
    ),
    Language(
        name="bash",
        title="Bash",
        aliases=("sh",),
        filename="main.sh",
        command=(BASH, "main.sh"),
        pool_command=(POOL_EXEC, BASH, "main.sh"),
        tools=(("pool-exec", POOL_EXEC),),
        version_probe=(BASH, "-c", "echo $BASH_VERSION"),
        version_pattern=r"(\d+(?:\.\d+)+)",
        runtime="GNU Bash",
        example='echo "Hello, world!"\n',
    ),
)

_BY_NAME = {n: lang for lang in LANGUAGES for n in (lang.name, *lang.aliases)}


def get(name: str) -> Language | None:
    """Look a language up by name or alias, ignoring case."""
    return _BY_NAME.get(name.strip().lower()) if isinstance(name, str) else None


def names() -> list[str]:
    return [lang.name for lang in LANGUAGES]


@functools.cache
def versions(tools_dir: str) -> dict[str, str]:
    """Ask each real interpreter for its version, once per process."""
    found = {}
    for lang in LANGUAGES:
        argv = [part.replace("{tools}", tools_dir) for part in lang.version_probe]
        try:
            out = sandbox.run_tool(argv)
            text = (out.stdout or out.stderr).decode(errors="replace")
            m = re.search(lang.version_pattern, text)
            found[lang.name] = m.group(1) if m and out.returncode == 0 else "unavailable"
        except (OSError, subprocess.SubprocessError) as e:
            log.error("cannot read the %s version with %s: %s", lang.name, argv[0], e)
            found[lang.name] = "unavailable"
    return found


def runtimes(tools_dir: str) -> list[dict]:
    """What GET /api/runtimes lists: canonical name, real version, aliases, runtime."""
    found = versions(tools_dir)
    node = found.get("javascript", "")
    described = {"typescript": f"esbuild {found.get('typescript')} + Node.js {node}"}
    return [
        {
            "language": lang.name,
            "version": found[lang.name],
            "aliases": list(lang.aliases),
            "runtime": described.get(lang.name, f"{lang.runtime} {found[lang.name]}"),
        }
        for lang in LANGUAGES
    ]
