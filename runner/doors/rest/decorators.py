"""The REST door's shared concerns, as one decorator: methods, CSRF, JSON errors, OpenAPI metadata."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from engine.errors import Busy, Unavailable
from sandbox import SandboxError

from ... import fairuse
from ...errors import Refused, not_started

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about a view; read by runner.doors.rest.openapi."""

    method: str
    summary: str
    response: type | None = None
    many: bool = False
    request: type | None = None
    query: tuple[tuple[str, bool, str], ...] = ()  # (name, required, description)
    errors: tuple[int, ...] = ()
    path_params: dict[str, str] = field(default_factory=dict)
    created: bool = False  # it answers 201 when it made something, 200 when it was there already
    links: dict[str, dict] = field(default_factory=dict)  # OpenAPI links from its 200 answer


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def refused(e: Refused) -> JsonResponse:
    """A refusal as this door says it: its HTTP status, a JSON body, and its headers."""
    response = JsonResponse(e.to_wire(), status=e.status)
    for name, value in e.headers.items():
        response[name] = value
    return response


async def identify(request) -> fairuse.Client:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await fairuse.identify(headers, request.META.get("REMOTE_ADDR", ""))


def api(method: str, summary: str, metered: bool = False, **openapi):
    """An async JSON endpoint that answers every failure with a clear JSON error.

    metered: the view runs code, so the caller is identified first (request.client).
    """

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            # HEAD is a GET without the body, except where a GET runs code: a HEAD runs nothing.
            head = method == "GET" and request.method == "HEAD" and not metered
            if request.method != method and not head:
                response = error(405, f"method {request.method} is not allowed here; use {method}")
                response["Allow"] = (
                    f"{method}, OPTIONS" if metered or method != "GET" else "GET, HEAD, OPTIONS"
                )
                return response
            try:
                if metered:
                    request.client = await identify(request)
                return await view(request, *args, **kwargs)
            except Refused as e:
                return refused(e)
            except RequestDataTooBig:
                return error(413, "the request body is over the 1 MiB limit")
            except (Busy, Unavailable) as e:
                return refused(not_started(e))
            except SandboxError as e:
                log.error("sandbox failure: %s", e)
                return error(500, f"the sandbox failed: {e}")

        wrapper.operation = Operation(method, summary, **openapi)
        return wrapper

    return decorate
