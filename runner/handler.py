"""The JSON API's own lean Django handler: async middleware only, no request_started hand-off."""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

# The Django release whose ASGIHandler.handle() is copied below; a test pins it, so an
# upgrade makes someone compare the two again.
COPIED_FROM_DJANGO = (5, 2)


class ApiHandler(ASGIHandler):
    """Django for the JSON API, through settings.API_MIDDLEWARE instead of MIDDLEWARE.

    The pages need sessions, CSRF, auth and messages, and Django runs those sync-only
    middlewares of an async request in a worker thread, a hand-off each way for each
    (bench/NOTES.md measures it). The API reads no cookie and renders no form, so its requests skip them; what it
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
        view. The same connection
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
