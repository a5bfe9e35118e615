"""The site: the editor page, share links, the embed page and script, and the health report."""

import functools
import hmac
import ipaddress

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe
from django.views.defaults import bad_request as html_bad_request
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error

from engine import languages
from engine.backends import local
from runner import conf, fairuse
from sandbox import probe

from .models import Snippet

EMBED_THEMES = ("light", "dark")


def page_config(request, snippet: Snippet | None = None, **extra) -> dict:
    """What the page's script starts from, handed over as JSON in the page."""
    config = conf.get()
    listed = languages.runtimes(config.host.tools_dir, config.engine.languages, config.engine.libraries)
    about = {r["language"]: r for r in listed}
    return {
        "languages": [
            {
                "name": lang.name,
                "title": lang.title,
                "mode": lang.editor,
                "example": lang.example,
                "runtime": about[lang.name]["runtime"],
                "libraries": [f"{lib['name']} {lib['version']}" for lib in about[lang.name]["libraries"]],
            }
            for lang in config.languages
            if about[lang.name]["available"]
        ],
        "snippet": snippet.to_dict(request) if snippet else None,
        **extra,
    }


def _editor(request, snippet=None):
    config = page_config(request, snippet)
    return render(request, "playground/editor.html", {"config": config, "snippet": snippet})


@require_safe
def home(request):
    return _editor(request)


@require_safe
def snippet_page(request, id):
    return _editor(request, get_object_or_404(Snippet, id=id))


@require_safe
def snippet_raw(request, id):
    snippet = get_object_or_404(Snippet, id=id)
    response = HttpResponse(snippet.code, content_type="text/plain; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    return response


@xframe_options_exempt
@require_safe
def embed(request, id):
    """A compact page made for iframes: any site may frame it."""
    snippet = get_object_or_404(Snippet, id=id)
    theme = request.GET.get("theme", "")
    config = page_config(
        request,
        snippet,
        theme=theme if theme in EMBED_THEMES else None,
        readonly=request.GET.get("readonly") in ("1", "true"),
    )
    response = render(request, "playground/embed.html", {"config": config, "snippet": snippet})
    response["Content-Security-Policy"] = "frame-ancestors *"
    return response


@functools.cache
def _embed_script() -> bytes:
    path = settings.BASE_DIR / "static" / "build" / "embed.js"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise Http404("embed.js is not built: run make") from None


@require_safe
def embed_js(request):
    """The one-script embed for documentation sites."""
    response = HttpResponse(_embed_script(), content_type="text/javascript; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=300"
    return response


async def healthz(request):
    """The sandbox's layers as JSON: 200 while isolation holds, 503 when it is broken."""
    layers = await conf.backend().isolation()
    failure = probe.failure(layers)
    body = {
        "layers": [{"name": x.name, "on": x.on, "detail": x.detail, "required": x.required} for x in layers],
        "runs": {kind: local.STARTS[kind] for kind in ("warm", "cold", "zygote")},
        # The languages whose runs are forked from a zygote (RUNNER_ZYGOTE).
        "zygotes": list(conf.backend().zygotes),
    }
    if settings.REDIS_URL:
        body["redis"] = await sync_to_async(_redis_health, thread_sensitive=False)()
        if not body["redis"]["ok"]:
            failure = "; ".join(filter(None, [failure, f"Redis: {body['redis']['detail']}"]))
    body = {"status": "ok" if not failure else "unavailable", **body}
    if failure:
        body["error"] = failure
    return JsonResponse(body, status=200 if not failure else 503)


def _redis_health() -> dict:
    """Whether the fair-use store answers (within REDIS_TIMEOUT): runs need it."""
    from django.core.cache import cache
    from redis.exceptions import RedisError

    try:
        cache._cache.get_client().ping()
        return {"ok": True, "detail": "answers"}
    except RedisError as e:
        return {"ok": False, "detail": str(e) or type(e).__name__}


def metrics(request):
    """Prometheus metrics: to loopback by default, or to whoever presents RUNNER_METRICS_TOKEN."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    token = conf.get().metrics_token
    if token:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
            return JsonResponse(
                {"error": "send the metrics token: Authorization: Bearer <token>"}, status=401
            )
    else:
        address = fairuse.client_address(
            request.META.get("REMOTE_ADDR", ""), request.headers.get("X-Forwarded-For")
        )
        if not _loopback(address):
            return JsonResponse(
                {"error": "metrics are served to loopback only; set RUNNER_METRICS_TOKEN"}, status=403
            )
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def bad_request(request, exception=None):
    # A Host outside ALLOWED_HOSTS, among others; under /api/ the answer is JSON.
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "bad request"}, status=400)
    return html_bad_request(request, exception)


def not_found(request, exception=None):
    # Under /api/ a client always gets JSON, never an HTML page.
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"no such endpoint: {request.path}"}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "internal server error"}, status=500)
    return html_server_error(request)
