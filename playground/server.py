"""daphne, as `manage.py serve` runs it: its own command line, one setting changed.

After a run's exit frame the server closes the websocket, and autobahn (daphne's
websocket layer) gives the client one second to answer the close. A client still
reading a megabyte of output behind it (a browser drawing it) misses that, and the
connection is then dropped with the end of the output and the exit frame unsent. The
output cap bounds what can be waiting; a minute is ample to read it.

    python -m playground.server [daphne's arguments]
"""

import asyncio
import logging
import os
import signal
from functools import partial

from daphne.access import AccessLogGenerator
from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.internet import reactor

from playground.http import GuardedHTTPFactory
from playground.logs import AccessLog, JsonAccessLog

log = logging.getLogger("runner.server")

CLOSE_HANDSHAKE_SECONDS = 60
# A websocket's frames wait in its application's queue until the consumer takes them: past
# FLOW_HIGH bytes waiting, the socket is no longer read (the client's sends then block, as
# TCP's window closes), and from FLOW_LOW it is read again.
FLOW_HIGH = 2 << 20
FLOW_LOW = 512 << 10


class FlowQueue(asyncio.Queue):
    """A websocket application's input queue that stops reading the socket while it holds too much.

    daphne queues every frame as it arrives, however slowly the application takes them: a
    client could send without end to a run that never reads its input.
    """

    def __init__(self, protocol):
        super().__init__()
        self.protocol = protocol
        self.held = 0
        self.paused = False

    def put_nowait(self, message):
        super().put_nowait(message)
        self.held += _size(message)
        transport = getattr(self.protocol, "transport", None)
        if self.held > FLOW_HIGH and not self.paused and transport is not None:
            self.paused = True
            transport.pauseProducing()

    def get_nowait(self):
        message = super().get_nowait()
        self.held -= _size(message)
        if self.paused and self.held <= FLOW_LOW:
            self.paused = False
            if self.protocol.transport is not None:
                self.protocol.transport.resumeProducing()
        return message


def _size(message: dict) -> int:
    return len(message.get("text") or message.get("bytes") or b"")


class PlaygroundServer(Server):
    @property
    def http_factory(self):
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory):
        # Server.run() makes daphne's factory; this one bounds what a request may send first.
        self._http_factory = GuardedHTTPFactory(self)

    def __init__(self, *args, action_logger=None, **kwargs):
        # The access log leaves out query strings (code), and is JSON with LOG_FORMAT=json.
        if isinstance(action_logger, AccessLogGenerator):
            json_lines = os.environ.get("LOG_FORMAT") == "json"
            action_logger = (JsonAccessLog if json_lines else AccessLog)(action_logger.stream)
        super().__init__(*args, action_logger=action_logger, **kwargs)
        self.draining = False
        self.ports = []  # what it listens on, to stop listening when it drains

    def create_application(self, protocol, scope):
        """daphne's, with a FlowQueue as a websocket's input queue."""
        assert "application_instance" not in self.connections[protocol]
        queue = FlowQueue(protocol) if scope.get("type") == "websocket" else asyncio.Queue()
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=queue.get, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return queue

    def listen_success(self, port):
        self.ports.append(port)
        return super().listen_success(port)

    def run(self):
        # After Twisted's own handlers are in place: SIGTERM drains instead of stopping at once.
        reactor.callWhenRunning(lambda: reactor.callLater(0, self._on_sigterm))
        super().run()

    def _on_sigterm(self):
        signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(self.drain))

    def drain(self):
        """Stop accepting; let runs in flight finish (RUNNER_STOP_GRACE), answer them, then stop.

        What is still going after the grace period is killed: it is answered, status "killed".
        """
        if self.draining:
            return
        self.draining = True
        for port in self.ports:
            port.stopListening()
        asyncio.ensure_future(self._drain())

    async def _drain(self):
        from runner import conf, submit

        submit.stop_accepting()
        grace = conf.get().stop_grace_seconds
        log.info(
            "stopping: no new connections or runs; %d in flight get up to %g s", len(submit.ACTIVE), grace
        )
        if not await submit.wait_idle(grace):
            log.warning("stopping: killing %d runs still going after %g s", submit.kill_all(), grace)
            await submit.wait_idle(5)
        await asyncio.sleep(0.2)  # the last answers leave
        log.info("stopped")
        reactor.stop()

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory):
        # Server.run() makes the factory, then sets its own options, which leave this one be.
        factory.setProtocolOptions(closeHandshakeTimeout=CLOSE_HANDSHAKE_SECONDS)
        self._ws_factory = factory


class PlaygroundCommandLine(CommandLineInterface):
    server_class = PlaygroundServer


if __name__ == "__main__":
    PlaygroundCommandLine.entrypoint()
