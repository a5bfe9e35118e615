"""The websocket door: forwards a run's events as JSON frames, and steers it with stdin, eof and kill.

Protocol (ws://HOST/ws/execute, one run per socket):
  client: {"type": "run", ...POST /api/execute fields, "interactive"?}, then {"type": "stdin", "data"},
          {"type": "eof"}, {"type": "kill"}
  server: {"type": "started", "id"}, {"type": "stdout"|"stderr", "data"}, {"type": "exit", ...result},
          {"type": "error", "error"}

Buffering is bounded without a window of our own: the executor caps a run's output
(RUNNER_OUTPUT_LIMIT), so a stalled client can hold at most that much in the server,
and the run's wall-clock timeout ends it whether or not the client reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qsl

from channels.generic.websocket import AsyncWebsocketConsumer

from . import conf, executor, fairuse, schemas
from .recorder import RECORDER
from .sandbox import SandboxError

log = logging.getLogger(__name__)
NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008  # a first message that is not a valid run
INTERNAL_ERROR = 1011


class ExecuteConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.run: executor.Run | None = None
        self.task: asyncio.Task | None = None
        self.spec: schemas.RunSpec | None = None
        self.sent_stdin: list[str] = []
        self.admitted: fairuse.Pass | None = None
        self.gone = False
        await self.accept()

    async def disconnect(self, code):
        # The client left: the run dies now and its sandbox is cleaned up before we return.
        self.gone = True
        if self.run:
            self.run.kill()
        if self.task:
            try:
                await self.task
            except Exception:
                log.exception("run %s failed while its client was leaving", self.run.id)

    async def receive(self, text_data=None, bytes_data=None):
        first = self.run is None
        try:
            message = json.loads(text_data if text_data is not None else bytes_data)
        except (ValueError, UnicodeDecodeError) as e:
            return await self.error(f"malformed JSON: {e}", close=first)
        if not isinstance(message, dict):
            return await self.error("a message must be a JSON object", close=first)
        kind = message.get("type")
        handler = {"run": self.on_run, "stdin": self.on_stdin, "eof": self.on_eof, "kill": self.on_kill}.get(
            kind
        )
        if handler is None:
            return await self.error(
                f"unknown message type {kind!r}; use run, stdin, eof or kill", close=first
            )
        await handler(message, text_data or bytes_data)

    async def frame(self, message: dict) -> None:
        if not self.gone:
            await self.send(json.dumps(message))

    async def error(self, message: str, close: bool = False, code: int = POLICY_VIOLATION) -> None:
        await self.frame({"type": "error", "error": message})
        if close and not self.gone:
            await self.close(code)

    async def on_run(self, message: dict, raw) -> None:
        if self.run is not None:
            return await self.error("this socket already has a run; open another socket for the next")
        try:
            req = schemas.parse_body(raw, schemas.SocketRun)
            client = await self.identify()
            self.spec = schemas.run_spec(req, conf.get(), client.key)
            # The same rate limit, concurrency and credits as REST runs.
            self.admitted = await fairuse.admit(client)
        except schemas.RequestError as e:
            return await self.error(e.message, close=True)
        self.run = executor.Run(self.spec, interactive=req.interactive)
        self.task = asyncio.create_task(self.forward())

    async def on_stdin(self, message: dict, raw) -> None:
        if self.run is None:
            return await self.error("send a run first", close=True)
        if not self.run.interactive:
            return await self.error('stdin needs a run started with "interactive": true')
        data = message.get("data")
        if not isinstance(data, str):
            return await self.error("field 'data' must be a string")
        self.sent_stdin.append(data)
        if not await self.run.write_stdin(data.encode()):
            await self.error("the program no longer reads its input")

    async def on_eof(self, message: dict, raw) -> None:
        if self.run is None:
            return await self.error("send a run first", close=True)
        self.run.close_stdin()

    async def on_kill(self, message: dict, raw) -> None:
        if self.run is None:
            return await self.error("send a run first", close=True)
        self.run.kill()

    async def identify(self) -> fairuse.Client:
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in self.scope.get("headers", [])}
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode()))
        peer = (self.scope.get("client") or [""])[0] or ""
        # Browsers can't set headers on a websocket, so a key may also come as ?api_key=.
        return await fairuse.identify(headers, peer, query)

    async def forward(self) -> None:
        """Drive the run, forwarding each event as it happens; store it; close normally."""
        try:
            await self._forward()
        finally:
            await self.admitted.release()

    async def _forward(self) -> None:
        try:
            async for event in self.run.events():
                if isinstance(event, executor.Started):
                    await self.frame({"type": "started", "id": str(event.id)})
                elif isinstance(event, executor.Output):
                    await self.frame({"type": event.stream, "data": event.data})
                else:
                    await self.store(event.result)
                    await self.frame(event.result.exit_frame())
        except executor.Busy:
            return await self.error(
                "every execution slot is busy and the queue is full; try again shortly", True
            )
        except (executor.Unavailable, SandboxError) as e:
            return await self.error(str(e), close=True)
        except Exception:
            log.exception("run %s failed", self.run.id)
            return await self.error("internal server error", close=True, code=INTERNAL_ERROR)
        if not self.gone:
            await self.close(NORMAL_CLOSURE)

    async def store(self, result: schemas.RunResult) -> None:
        spec = self.spec
        if self.sent_stdin:
            spec = schemas.RunSpec(spec.language, spec.code, "".join(self.sent_stdin), spec.args, spec.files)
        await RECORDER.record(spec, result)
