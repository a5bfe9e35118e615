"""The REST door's views: a run's events collected into one JSON result, and what surrounds runs."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from engine import languages
from engine.errors import Busy, Unavailable
from engine.results import RunResult
from sandbox import SandboxError

from ... import conf, validation
from ...errors import Refused, not_started
from ...models import Execution
from ...recorder import RECORDER
from ...submit import submit
from ...wire import BatchRequest, BatchResult, ExecutionRecord, RunRequest, Runtime, Usage
from . import openapi
from .decorators import api, error

log = logging.getLogger(__name__)


async def _run(request, req: RunRequest) -> JsonResponse:
    spec = validation.run_spec(req, conf.get(), request.client.key)
    submission = await submit(request.client, spec)
    result = await submission.result()
    response = JsonResponse(result.to_wire())
    for name, value in submission.headers.items():
        response[name] = value
    return response


# A run's id leads to its stored execution.
EXECUTION_LINK = {
    "GetExecution": {
        "operationId": "execution",
        "parameters": {"id": "$response.body#/id"},
        "description": "The stored run, with its code and output.",
    }
}


@api(
    "POST",
    "Run code",
    request=RunRequest,
    response=RunResult,
    errors=(400, 401, 402, 404, 405, 413, 429, 503),
    metered=True,
    links=EXECUTION_LINK,
)
async def execute(request):
    return await _run(request, validation.parse_body(request.body))


@api(
    "POST",
    "Run several programs at once, each as POST /api/execute would",
    request=BatchRequest,
    response=BatchResult,
    errors=(400, 401, 405, 413),
    metered=True,
)
async def batch(request):
    """Each run is checked, admitted and charged as it would be alone; they run in parallel, up
    to the client's runs at once, and answer in the order given. A run that can't run (a wrong
    field, the rate, credits, busy slots) gets its error in its place, and the others run."""
    config = conf.get()
    req = validation.parse_body(request.body, BatchRequest)
    if len(req.runs) > config.max_batch:
        raise Refused(
            "invalid", f"field 'runs' has {len(req.runs)} runs; at most {config.max_batch}", field="runs"
        )
    client = request.client
    places = asyncio.Semaphore(client.concurrency)  # so that the batch never waits on itself
    headers: dict[str, str] = {}

    async def one(entry) -> dict:
        try:
            if not isinstance(entry, dict):
                raise Refused("invalid", "each run must be a JSON object, as the body of POST /api/execute")
            spec = validation.run_spec(validation.validate(entry), config, client.key)
            async with places:
                # One place each: a graded run's cases here take turns, not its neighbours' places.
                submission = await submit(client, spec, widen=False)
                headers.update(submission.headers)
                return (await submission.result()).to_wire()
        except Refused as e:
            return _batch_error(e)
        except (Busy, Unavailable) as e:
            return _batch_error(not_started(e))
        except SandboxError as e:
            log.error("sandbox failure: %s", e)
            return {"error": f"the sandbox failed: {e}", "httpStatus": 500}

    results = await asyncio.gather(*(one(entry) for entry in req.runs))
    response = JsonResponse({"results": results})
    for name, value in headers.items():
        response[name] = value
    return response


def _batch_error(e: Refused) -> dict:
    return {**e.to_wire(), "httpStatus": e.status}


@api(
    "GET",
    "Run code given in the query string",
    response=RunResult,
    query=(("code", True, "The program's source."), ("stdin", False, "The program's standard input.")),
    path_params={"language": "A language name or alias, in any case."},
    errors=(400, 401, 402, 404, 405, 413, 429, 503),
    metered=True,
    links=EXECUTION_LINK,
)
async def run(request, language: str):
    if "code" not in request.GET:
        return error(400, "query parameter 'code' is required", field="code")
    req = RunRequest(language=language, code=request.GET["code"], stdin=request.GET.get("stdin", ""))
    return await _run(request, req)


@api(
    "GET",
    "The languages served, their real versions, and whether each can run here",
    response=Runtime,
    many=True,
    errors=(405,),
)
async def runtimes(request):
    config = conf.get()
    listed = await sync_to_async(languages.runtimes)(
        config.host.tools_dir, config.engine.languages, config.engine.libraries
    )
    return JsonResponse(listed, safe=False)


@api(
    "GET",
    "An earlier run, with its code and output",
    response=ExecutionRecord,
    path_params={"id": "The run's id, from its result."},
    errors=(404, 405),
)
async def execution(request, id):
    found = RECORDER.pending(id) or await Execution.objects.retained().filter(id=id).afirst()
    if found is None:
        hours = conf.get().retention_hours
        return error(404, f"no execution {id}: it never existed, or is older than the {hours:g} h retention")
    return JsonResponse(found.to_dict())


@api(
    "GET",
    "What the API key used: runs, credits left, its rate",
    response=Usage,
    errors=(401, 405),
    metered=True,
)
async def usage(request):
    key = request.client.key
    if key is None:
        return error(401, "send an API key (Authorization: Bearer <key> or X-API-Key) to see its usage")
    await key.arefresh_from_db()
    return JsonResponse(key.usage())


@api("GET", "This OpenAPI document", errors=(405,))
async def openapi_json(request):
    return JsonResponse(openapi.document(request))


@csrf_exempt  # it changes nothing: a PUT or DELETE gets the 405 below, not a CSRF page
async def docs(request):
    """The OpenAPI document, rendered for people."""
    if request.method not in ("GET", "HEAD"):
        response = error(405, f"method {request.method} is not allowed here; use GET")
        response["Allow"] = "GET, HEAD"
        return response
    doc = openapi.document(request)
    for methods in doc["paths"].values():
        for op in methods.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            op["request_name"] = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
    return render(request, "runner/docs.html", {"doc": doc, "debug": settings.DEBUG})
