"""The ASGI entry point: HTTP through Django (the body capped before it is read), and websockets."""

import asyncio
import json
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django_app = get_asgi_application()  # before anything imports models

from asgiref.sync import sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from runner import executor  # noqa: E402
from runner.routing import websocket_urlpatterns  # noqa: E402

log = logging.getLogger("runner")


def body_limit(app, limit: int):
    """Answer 413 to a body over the limit as soon as it shows, instead of spooling it all first."""
    message = json.dumps({"error": f"the request body is over the {limit} byte limit"}).encode()
    headers = [(b"content-type", b"application/json"), (b"access-control-allow-origin", b"*")]

    async def reject(send):
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": message})

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            return await reject(send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > limit:
                # A chunked body that grew too big: answer now, and tell Django the client left.
                await reject(send)
                return {"type": "http.disconnect"}
            return event

        return await app(scope, counting_receive, send)

    return guarded


class ApiHandler(ASGIHandler):
    """Django for the JSON API, through settings.API_MIDDLEWARE instead of MIDDLEWARE.

    The pages need sessions, CSRF, auth and messages, and Django runs those sync-only
    middlewares of an async request in a worker thread, a hand-off each way: about 3 ms
    of every request on a small machine, about what a pre-warmed Python run itself takes.
    The API reads no cookie and renders no form, so its requests skip them; what it
    needs (CORS, security headers) is written as async middleware.
    """

    async def __call__(self, scope, receive, send):
        # Without a ThreadSensitiveContext per request: the API's blocking work (cache,
        # database) goes to one long-lived thread instead of a new thread per request.
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle (5.2), except that it sends no request_started.

        That signal's receivers (close_old_connections, reset_queries) are synchronous, so
        Django runs them in the database thread: a hand-off there and back before every
        view, about 0.3 ms of each API request on a small machine. The same connection
        check still runs once per request, after it: request_finished is sent as the
        response closes, in that same thread, once the answer has gone. So a connection
        that broke or aged is closed before the next request can use it, and
        CONN_HEALTH_CHECKS checks it on its first use in the next request.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the answer was being sent
            return response

        # As in Django: a client that disconnects cancels the view (and so ends its run).
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        processor = asyncio.create_task(process_request())
        await asyncio.wait([listener, processor], return_when=asyncio.FIRST_COMPLETED)
        for task in (listener, processor):
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = processor.result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await sync_to_async(response.close)()
        body_file.close()

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.API_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler


def by_path(api, pages, prefix: str, page_paths: tuple[str, ...] = ()):
    """HTTP under prefix to api, the rest (and the pages among it, page_paths) to pages."""

    async def route(scope, receive, send):
        path = scope["path"]
        app = api if path.startswith(prefix) and path not in page_paths else pages
        return await app(scope, receive, send)

    return route


async def report_isolation() -> None:
    layers = await executor.isolation()
    for layer in layers:
        log.info("sandbox layer %-24s %-3s %s", layer.name, "on" if layer.on else "off", layer.detail)
    failure = executor.isolation_failure(layers)
    if failure:
        log.error("CODE EXECUTION IS DISABLED: %s. The API answers 503 until this is fixed.", failure)
    versions = executor.runtimes()
    log.info("runtimes: %s", ", ".join(f"{r['language']} {r['version']}" for r in versions))


def check_at_start() -> None:
    """Say at start whether code can run; imported inside a running loop, the first run checks."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(report_isolation())


check_at_start()
# Websockets take no cookies and answer any origin, like the JSON API: pages on
# other sites (the embed widget) open them.
application = ProtocolTypeRouter(
    {
        "http": body_limit(
            by_path(ApiHandler(), django_app, "/api/", ("/api/docs",)), settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        ),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
