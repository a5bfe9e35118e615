from django.http import JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error

from runner import executor, languages


def home(request):
    return render(request, "home.html", {"languages": languages.LANGUAGES})


async def healthz(request):
    """The sandbox's layers as JSON: 200 while isolation holds, 503 when it is broken."""
    layers = await executor.isolation()
    failure = executor.isolation_failure(layers)
    body = {
        "status": "ok" if failure is None else "unavailable",
        "layers": [{"name": x.name, "on": x.on, "detail": x.detail, "required": x.required} for x in layers],
    }
    if failure:
        body["error"] = failure
    return JsonResponse(body, status=200 if failure is None else 503)


def not_found(request, exception=None):
    # Under /api/ a client always gets JSON, never an HTML page.
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"no such endpoint: {request.path}"}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "internal server error"}, status=500)
    return html_server_error(request)
