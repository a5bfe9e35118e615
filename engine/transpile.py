"""A language's shared build step: its runs' files built by one long-lived service, not in each run.

TypeScript's esbuild costs its sandbox about 100 ms of CPU to start; started once, in a
sandbox of its own (sandbox.service running the language's [build] program), each run pays
only for its build, a few milliseconds, and runs in an ordinary Node sandbox, pooled or cold.
The service answers with the bundle and esbuild's messages, which the run gets as files
(.main.mjs or .main.cjs, and .main.log); its loader prints the messages and runs the bundle,
or exits 1 when there is none, as when esbuild ran in the run's own sandbox.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import replace

from sandbox import SandboxError
from sandbox.service import Service, ServiceError

from . import languages
from .config import EngineConfig

log = logging.getLogger(__name__)


class Builder:
    """One language's build service, started at its first build."""

    def __init__(self, lang: languages.Language, config: EngineConfig, spec):
        self.lang = lang
        self.timeout = lang.build.timeout / 1000
        limits = replace(config.defaults, memory_mib=lang.build.memory)
        self.service = Service(replace(spec, limits=limits), config.host, f"{lang.title} build")

    def files(self, files: dict[str, bytes]) -> dict[str, bytes]:
        """The run's files and what the build made of them. Blocking: call it in a thread."""
        for attempt in (1, 2):  # a service that died since its last build is replaced once
            try:
                answer = json.loads(self.service.call(files, self.timeout))
                if not isinstance(answer, dict):
                    raise ValueError("not a JSON object")
                break
            except ServiceError as e:
                if attempt == 2 or e.timed_out:  # (a build that hangs would hang again)
                    why = f"the {self.lang.title} build did not finish: {e}"
                    return {**files, ".main.log": f"{why}\n".encode()}
            except ValueError as e:
                self.service.close()  # the next build gets a fresh one
                raise SandboxError(f"the {self.lang.title} build service answered wrongly: {e}") from e
        built = dict(files)
        if answer.get("log"):
            built[".main.log"] = str(answer["log"]).encode()
        if answer.get("output") is not None:
            name = ".main.mjs" if answer.get("kind") else ".main.cjs"
            try:
                built[name] = base64.b64decode(answer["output"], validate=True)
            except (binascii.Error, TypeError) as e:
                raise SandboxError(f"the {self.lang.title} build service answered wrongly: {e}") from e
        return built

    def close(self) -> None:
        self.service.close()
