"""WhiteNoise, made async-capable.

WhiteNoise's middleware is sync-only. One sync middleware in an async stack
makes Django run the rest of every request through a thread hand-off, so
static files are looked up here and everything else passes straight through.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware


@sync_and_async_middleware
def static_files(get_response):
    whitenoise = WhiteNoiseMiddleware(get_response)

    def find(request):
        if whitenoise.autorefresh:
            return whitenoise.find_file(request.path_info)
        return whitenoise.files.get(request.path_info)

    if iscoroutinefunction(get_response):

        async def middleware(request):
            static_file = find(request)
            if static_file is not None:
                return whitenoise.serve(static_file, request)
            return await get_response(request)

        markcoroutinefunction(middleware)
        return middleware
    return whitenoise
