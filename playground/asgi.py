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

from engine import languages  # noqa: E402
from runner import conf  # noqa: E402
from runner.doors.ws.routing import websocket_urlpatterns  # noqa: E402
from runner.handler import ApiHandler  # noqa: E402
from runner.recorder import RECORDER  # noqa: E402
from sandbox import probe  # noqa: E402

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


def known_paths_only(router, patterns):
    """A websocket to a path no route serves is refused at the handshake (HTTP 403), not a 500."""
    paths = {"/" + str(p.pattern) for p in patterns}

    async def route(scope, receive, send):
        if scope["path"] in paths:
            return await router(scope, receive, send)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 4404})  # before accept: daphne answers 403

    return route


def by_path(api, pages, prefix: str, page_paths: tuple[str, ...] = ()):
    """HTTP under prefix to api, the rest (and the pages among it, page_paths) to pages."""

    async def route(scope, receive, send):
        path = scope["path"]
        app = api if path.startswith(prefix) and path not in page_paths else pages
        return await app(scope, receive, send)

    return route


async def report_isolation() -> None:
    conf.backend().sweep()  # a killed predecessor's cgroups, before anything runs
    await sync_to_async(RECORDER.replay)()  # and the runs it answered but had not stored
    layers = await conf.backend().isolation()
    for layer in layers:
        log.info("sandbox layer %-24s %-3s %s", layer.name, "on" if layer.on else "off", layer.detail)
    failure = probe.failure(layers)
    if failure:
        log.error("CODE EXECUTION IS DISABLED: %s. The API answers 503 until this is fixed.", failure)
    config = conf.get()
    versions = languages.runtimes(config.host.tools_dir, config.engine.languages)
    log.info("runtimes: %s", ", ".join(f"{r['language']} {r['version']}" for r in versions))
    for r in versions:
        if not r["available"]:
            log.error("%s is not served: %s", r["language"], r["reason"])


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
        "websocket": known_paths_only(URLRouter(websocket_urlpatterns), websocket_urlpatterns),
    }
)
