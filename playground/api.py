"""The snippets API: save code behind a short link, and read it back."""

from asgiref.sync import sync_to_async
from django.http import JsonResponse

from runner import conf, validation
from runner.doors.rest.decorators import api, error
from runner.wire import SnippetLinks, SnippetRecord, SnippetRequest

from .models import Snippet


def _save(req: SnippetRequest) -> tuple[Snippet, bool]:
    lang = validation.check_language(req.language, runnable=False)
    config = conf.get()
    validation.check_code_size(len(req.code.encode()), config)
    validation.check_tests_count(len(req.tests), config)
    tests = [case.model_dump(by_alias=True, exclude_none=True) for case in req.tests]
    return Snippet.objects.for_content(lang.name, req.code, req.stdin, req.title, tests)


@api(
    "POST",
    "Save a snippet; saving the same content again returns the same one",
    request=SnippetRequest,
    response=SnippetLinks,
    errors=(400, 404, 405, 413),
    created=True,
)
async def snippets(request):
    req = validation.parse_body(request.body, SnippetRequest)
    snippet, created = await sync_to_async(_save)(req)
    return JsonResponse(snippet.links(request), status=201 if created else 200)


@api(
    "GET",
    "A saved snippet",
    response=SnippetRecord,
    path_params={"id": "The snippet's id, from its link."},
    errors=(404, 405),
)
async def snippet(request, id: str):
    found = await Snippet.objects.filter(id=id).afirst()
    if found is None:
        return error(404, f"no snippet {id}")
    return JsonResponse(found.to_dict(request))
