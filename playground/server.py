"""daphne, as `manage.py serve` runs it: its own command line, one setting changed.

After a run's exit frame the server closes the websocket, and autobahn (daphne's
websocket layer) gives the client one second to answer the close. A client still
reading a megabyte of output behind it (a browser drawing it) misses that, and the
connection is then dropped with the end of the output and the exit frame unsent. The
output cap bounds what can be waiting; a minute is ample to read it.

    python -m playground.server [daphne's arguments]
"""

import os

from daphne.access import AccessLogGenerator
from daphne.cli import CommandLineInterface
from daphne.server import Server

from playground.logs import AccessLog, JsonAccessLog

CLOSE_HANDSHAKE_SECONDS = 60


class PlaygroundServer(Server):
    def __init__(self, *args, action_logger=None, **kwargs):
        # The access log leaves out query strings (code), and is JSON with LOG_FORMAT=json.
        if isinstance(action_logger, AccessLogGenerator):
            json_lines = os.environ.get("LOG_FORMAT") == "json"
            action_logger = (JsonAccessLog if json_lines else AccessLog)(action_logger.stream)
        super().__init__(*args, action_logger=action_logger, **kwargs)

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
