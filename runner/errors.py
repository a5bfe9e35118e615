"""Why the service refuses a request, in neutral terms: each door renders it in its own shape.

The REST door answers JSON with an HTTP status (runner.doors.rest.render), the
websocket an error frame; the Judge0 and Piston doors will answer in their own formats.
"""

from __future__ import annotations

from engine.errors import Busy, Unavailable

# Each code, and the HTTP status the REST door answers it with.
HTTP_STATUS = {
    "malformed": 400,  # not JSON, or not an object
    "invalid": 400,  # a field is wrong; `field` names it
    "unauthorized": 401,
    "no_credits": 402,
    "not_found": 404,  # an unknown language lists the known ones
    "too_large": 413,
    "rate_limited": 429,  # over the rate, or the runs allowed at once; retry_after says when
    "busy": 503,  # every execution slot is busy and the queue is full
    "unavailable": 503,  # the host can't isolate code
}


class Refused(Exception):
    """The request can't be served as it is: a code, a message, and what the client can act on."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        **extra,
    ):
        super().__init__(message)
        assert code in HTTP_STATUS, code
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.headers = headers or {}  # the rate limit's state, for doors that speak HTTP
        self.extra = extra

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_wire(self) -> dict:
        body: dict = {"error": self.message}
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        if self.field is not None:
            body["field"] = self.field
        return {**body, **self.extra}


BUSY_MESSAGE = "every execution slot is busy and the queue is full; try again shortly"


def not_started(e: Busy | Unavailable) -> Refused:
    """A run the engine could not start, as every door refuses it: every slot busy (retry after),
    or a host that can't run it."""
    if isinstance(e, Busy):
        seconds = e.retry_after
        return Refused("busy", BUSY_MESSAGE, retry_after=seconds, headers={"Retry-After": str(seconds)})
    return Refused("unavailable", str(e))
