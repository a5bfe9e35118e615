"""daphne's HTTP, bounded before anything is read: body size, header size, and the time a request may take.

Twisted reads a whole request, spooling its body to a temporary file, before the ASGI
application sees any of it, so a limit in the application comes too late. Here:

- a Content-Length over RUNNER_MAX_BODY is answered 413 at once, and nothing of the body is
  kept; a chunked body is answered 413 the moment it passes the limit; what the client still
  sends is then read and dropped for a moment, so that it reads the answer, and the
  connection closes;
- a request line over Twisted's line limit is answered 414, and headers over it 431 (Twisted
  drops the connection without a word);
- a request whose line, headers and body have not all arrived RUNNER_REQUEST_TIMEOUT seconds
  after it began is answered 408, so a slow sender can't hold a connection; an idle
  keep-alive connection is closed after as long.

Under /api/ these answers are JSON, as every other answer there is.
"""

from __future__ import annotations

import json

from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.web import http

# After a refusal, what the client still sends is read and dropped for this long before the
# connection closes ("lingering close"): closing at once would reset a client still sending
# its body before it reads the answer. Nothing read then is kept.
LINGER_SECONDS = 2.0
REASONS = {
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class GuardedRequest(WebRequest):
    def __init__(self, *args, **kwargs):
        # Twisted would parse a form or multipart body into request.args, which daphne never reads:
        # the whole body through the email package, and a malformed multipart one answered with a
        # bare 400 before the application sees it. The application parses what it takes itself.
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self.refused = False
        self._received = 0

    def gotLength(self, length):
        if length is not None and length > self.channel.body_limit:
            self._refuse()
            length = 0  # nothing of it is kept, not even in a temporary file
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self._received += len(data)
        if self._received > self.channel.body_limit:
            return self._refuse()
        super().handleContentChunk(data)

    def finish(self):
        transport = self.channel.transport if self.channel is not None else None
        super().finish()
        # The answer is whole in the transport's buffer, which Twisted would write at the loop's
        # next turn, after whatever else is ready by then (a run's teardown, for one), and daphne
        # would log it first. What the socket takes is written now, and the rest as before: the
        # transport still waits to write until its buffer is empty. (A connection being closed is
        # left to Twisted.) The access log line follows.
        if hasattr(transport, "doWrite") and not (transport.disconnected or transport.disconnecting):
            transport.doWrite()

    def requestReceived(self, command, path, version):
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self):
        self.refused = True
        self.channel.refuse(413, f"the request body is over the {self.channel.body_limit} byte limit")


class GuardedChannel(http.HTTPChannel):
    def connectionMade(self):
        from runner import conf

        config = conf.get()
        self.body_limit = config.max_body_bytes
        self.request_seconds = config.request_timeout_seconds
        self._refused = False
        self._deadline = None
        self._linger = None
        self._starting = True  # the next line is a request line
        self._target = b""  # the request line so far: is it under /api/?
        super().connectionMade()
        self._arm()

    def dataReceived(self, data):
        if self._refused:
            return  # lingering: read, and dropped
        super().dataReceived(data)

    def lineReceived(self, line):
        if self._refused:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            return self.refuse(*self._too_big())
        if self._starting and line:
            self._starting, self._target = False, line
        super().lineReceived(line)

    def lineLengthExceeded(self, line):
        if self._starting:
            self._target = line[:64]
        self.refuse(*self._too_big())

    def _too_big(self) -> tuple[int, str]:
        if self._starting:
            return 414, "the request's URL is too long"
        return 431, "the request's headers are too large"

    def allContentReceived(self):
        self._disarm()  # the request has arrived: what it does from here takes its own time
        self._starting = True
        super().allContentReceived()

    def requestDone(self, request):
        super().requestDone(request)
        self._target = b""
        if not self._refused:
            self._arm()  # the next request on this connection gets the same time

    def refuse(self, status: int, message: str) -> None:
        """Answer now, and close: nothing more of this connection is read."""
        if self._refused:
            return
        self._refused = True
        self._disarm()
        if b" /api/" in self._target[:16]:
            body, kind = json.dumps({"error": message}).encode(), b"application/json"
        else:
            body, kind = message.encode() + b"\n", b"text/plain; charset=utf-8"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
            status, REASONS[status], kind, len(body),
        )  # fmt: skip
        cors = b"Access-Control-Allow-Origin: *\r\n" if kind == b"application/json" else b""
        self.transport.write(head + cors + b"\r\n" + body)
        self._linger = self.callLater(LINGER_SECONDS, self.transport.loseConnection)

    def _arm(self):
        self._disarm()
        self._deadline = self.callLater(self.request_seconds, self._too_slow)

    def _disarm(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self):
        self._deadline = None
        if self._starting and not self._target:
            self.transport.loseConnection()  # an idle keep-alive connection: just closed
        else:
            self.refuse(408, f"the request did not arrive within {self.request_seconds:g} s")

    def connectionLost(self, reason):
        self._disarm()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


class GuardedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, building guarded channels (HTTP/1.1: TLS, and so HTTP/2, ends at the proxy)."""

    def protocol(self):
        return GuardedChannel()

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = GuardedRequest
        return protocol
