"""daphne, as `manage.py serve` runs it: its own command line, one setting changed.

After a run's exit frame the server closes the websocket, and autobahn (daphne's
websocket layer) gives the client one second to answer the close. A client still
reading a megabyte of output behind it (a browser drawing it) misses that, and the
connection is then dropped with the end of the output and the exit frame unsent. The
output cap bounds what can be waiting; a minute is ample to read it.

    python -m playground.server [daphne's arguments]
"""

from daphne.cli import CommandLineInterface
from daphne.server import Server

CLOSE_HANDSHAKE_SECONDS = 60


class PlaygroundServer(Server):
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
