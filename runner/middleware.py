"""CORS for the JSON API: any page, even one opened from disk, may call it from a browser.

Also the one security header a JSON answer needs (Django's SecurityMiddleware sets it on
pages; the API's own stack, runner.handler.ApiHandler, runs without that middleware), and the
answer's Content-Length (CommonMiddleware's, on pages).
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse
from django.utils.decorators import sync_and_async_middleware

API_PREFIX = "/api/"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset",
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, X-API-Key",
    "Access-Control-Max-Age": "86400",
}


def _preflight(request) -> HttpResponse | None:
    # No cookies are read under /api/, so answering every origin with * is safe.
    if request.path.startswith(API_PREFIX) and request.method == "OPTIONS":
        response = HttpResponse(status=204)
        for key, value in PREFLIGHT_HEADERS.items():
            response[key] = value
        return response
    return None


def _decorate(request, response):
    if request.path.startswith(API_PREFIX):
        for key, value in CORS_HEADERS.items():
            response[key] = value
        response.setdefault("X-Content-Type-Options", "nosniff")
        if not response.streaming and not response.has_header("Content-Length"):
            # As Django's CommonMiddleware gives the pages: without it the answer goes chunked,
            # which costs the client a read of each chunk's size and of the end.
            response["Content-Length"] = str(len(response.content))
    return response


@sync_and_async_middleware
def api_cors(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            request.get_host()  # ALLOWED_HOSTS holds for the API too: DisallowedHost answers 400
            return _preflight(request) or _decorate(request, await get_response(request))

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            return _preflight(request) or _decorate(request, get_response(request))

    return middleware
