"""The websocket door: forwards a run's events as JSON frames, and steers it with stdin, eof and kill.

Protocol (ws://HOST/ws/execute, one run per socket): see docs/api.md.
  client: {"type": "run", ...POST /api/execute fields, "interactive"?}, then {"type": "stdin", "data"},
          {"type": "eof"}, {"type": "kill"}
  server: {"type": "started", "id"}, {"type": "stdout"|"stderr", "data"}, {"type": "exit", ...result},
          {"type": "error", "error"}; with test cases, {"type": "test", ...a case's result} as each
          case is judged, and no stdout or stderr frames but the compile's

What a socket may hold in the server is bounded both ways:
- output: the executor caps a run's output (RUNNER_OUTPUT_LIMIT), and the run's wall-clock
  timeout ends it whether or not the client reads. A stalled reader can hold that output
  as JSON frames, up to six times its size where every byte needs an escape (\u0000).
- input: frames are taken one at a time, and a stdin frame is done only once the program's
  pipe has taken it. While the program does not read, the server takes no more frames, the
  server stops reading the socket (playground.server.FlowQueue) and the client's sends
  block. A run may be sent RUNNER_STDIN_LIMIT bytes of stdin in all; past that the run is
  killed and the socket closed (4413).
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qsl

from channels.generic.websocket import AsyncWebsocketConsumer

from engine.errors import Busy, Unavailable
from engine.events import CaseFinished, Exited, Output, StageFinished, Started
from sandbox import SandboxError

from ... import conf, fairuse, metrics, validation
from ...errors import Refused, not_started
from ...submit import Submission, submit
from ...wire import SocketRun

log = logging.getLogger(__name__)
# Close codes. A server may only close with 1000 or 3000-4999 (RFC 6455, which autobahn,
# daphne's websocket layer, enforces): a refusal closes with 4000 + the HTTP status the REST
# door answers the same request with, so 4400 is a bad request and 4503 busy. docs/api.md.
NORMAL_CLOSURE = 1000
BAD_REQUEST = 4400  # a first message that is not a valid run
INTERNAL_ERROR = 4500


def close_code(status: int) -> int:
    return 4000 + status


class ExecuteConsumer(AsyncWebsocketConsumer):
    # A run's socket talks to no other process, so it joins no channel layer (get_channel_layer
    # finds none by this alias): with REDIS_URL set, opening a socket then needs no Redis.
    channel_layer_alias = None

    async def connect(self):
        self.submission: Submission | None = None
        self.task: asyncio.Task | None = None
        self.gone = False
        self.closing = False  # the server closed the socket: nothing more is sent
        await self.accept()
        metrics.WEBSOCKETS.inc()

    async def disconnect(self, code):
        # The client left: the run dies now and its sandbox is cleaned up before we return.
        self.gone = True
        metrics.WEBSOCKETS.dec()
        if self.submission:
            self.submission.kill()
        if self.task:
            try:
                await self.task
            except Exception:
                log.exception("run %s failed while its client was leaving", self.submission.id)

    async def receive(self, text_data=None, bytes_data=None):
        first = self.submission is None
        try:
            await self._receive(text_data, bytes_data, first)
        except Exception:
            # A frame this code did not foresee: the client hears so, and the socket, its run and
            # the run's slot live on (a consumer that raised would end with none of them released).
            log.exception("a websocket message could not be handled")
            await self.error("internal server error: the message could not be handled", close=first,
                             code=INTERNAL_ERROR)  # fmt: skip

    async def _receive(self, text_data, bytes_data, first: bool) -> None:
        try:
            message = validation.loads(text_data if text_data is not None else bytes_data)
        except Refused as e:
            return await self.refused(e, close=first)
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
        await handler(message)

    async def frame(self, message: dict) -> None:
        if not (self.gone or self.closing):
            await self.send(json.dumps(message))

    async def error(self, message: str, close: bool = False, code: int = BAD_REQUEST, **extra) -> None:
        await self.frame({"type": "error", "error": message, **extra})
        if close and not (self.gone or self.closing):
            self.closing = True
            await self.close(code)

    async def refused(self, e: Refused, close: bool = True) -> None:
        """A refusal as this door says it: its fields in an error frame, then (unless the run goes
        on) the socket closes with 4000 + its HTTP status."""
        body = e.to_wire()
        await self.error(body.pop("error"), close=close, code=close_code(e.status), **body)

    async def on_run(self, message: dict) -> None:
        if self.submission is not None:
            return await self.error("this socket already has a run; open another socket for the next")
        try:
            req = validation.validate(message, SocketRun)
            if req.interactive and req.tests is not None:
                raise Refused("invalid", "a run with 'tests' can't be interactive: each case has its own stdin",
                              field="interactive")  # fmt: skip
            client = await self.identify()
            spec = validation.run_spec(req, conf.get(), client.key)
            # The same rate limit, concurrency and credits as REST runs.
            self.submission = await submit(client, spec, interactive=req.interactive)
        except Refused as e:
            return await self.refused(e)
        self.task = asyncio.create_task(self.forward())

    async def on_stdin(self, message: dict) -> None:
        if self.submission is None:
            return await self.error("send a run first", close=True)
        if not self.submission.run.interactive:
            return await self.error('stdin needs a run started with "interactive": true')
        data = message.get("data")
        if not isinstance(data, str):
            return await self.error("field 'data' must be a string")
        try:
            reading = await self.submission.write_stdin(data)
        except Refused as e:
            return await self.refused(e)
        if not reading:
            await self.error("the program no longer reads its input")

    async def on_eof(self, message: dict) -> None:
        if self.submission is None:
            return await self.error("send a run first", close=True)
        self.submission.close_stdin()

    async def on_kill(self, message: dict) -> None:
        if self.submission is None:
            return await self.error("send a run first", close=True)
        self.submission.kill()

    async def identify(self) -> fairuse.Client:
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in self.scope.get("headers", [])}
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode()))
        peer = (self.scope.get("client") or [""])[0] or ""
        # Browsers can't set headers on a websocket, so a key may also come as ?api_key=.
        return await fairuse.identify(headers, peer, query)

    async def forward(self) -> None:
        """Drive the run, forwarding each event as it happens (it is stored before its exit frame)."""
        try:
            async for event in self.submission.events():
                if isinstance(event, Started):
                    await self.frame({"type": "started", "id": str(event.id)})
                elif isinstance(event, Output):
                    await self.frame({"type": event.stream, "data": event.data, **_stage(event.stage)})
                elif isinstance(event, StageFinished):
                    await self.frame({"type": "stage", "stage": event.stage, **event.result.to_frame()})
                elif isinstance(event, CaseFinished):
                    await self.frame(event.result.to_frame())
                elif isinstance(event, Exited):
                    await self.frame(event.result.exit_frame())
        except (Busy, Unavailable) as e:
            return await self.refused(not_started(e))
        except SandboxError as e:
            log.error("sandbox failure: %s", e)
            return await self.error(f"the sandbox failed: {e}", close=True, code=INTERNAL_ERROR)
        except Exception:
            log.exception("run %s failed", self.submission.id)
            return await self.error("internal server error", close=True, code=INTERNAL_ERROR)
        if not (self.gone or self.closing):
            self.closing = True
            await self.close(NORMAL_CLOSURE)


def _stage(stage: str) -> dict:
    """Output of the run stage is untagged, as it always was; a compile's says so."""
    return {} if stage == "run" else {"stage": stage}
