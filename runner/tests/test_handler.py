"""The API's lean handler copies Django's ASGIHandler.handle(): pinned to the release it came from."""

import inspect

import django
from django.core.handlers.asgi import ASGIHandler

from runner.handler import COPIED_FROM_DJANGO, ApiHandler


def test_the_copied_handle_is_pinned_to_the_installed_django_release():
    # On a Django upgrade, compare ApiHandler.handle with the new ASGIHandler.handle, carry
    # over what changed, and move the pin.
    assert django.VERSION[:2] == COPIED_FROM_DJANGO


def test_the_copy_differs_from_djangos_only_in_the_signal_it_does_not_send():
    ours = inspect.getsource(ApiHandler.handle)
    theirs = inspect.getsource(ASGIHandler.handle)
    assert "signals.request_started.asend" in theirs
    assert "signals.request_started" not in ours
    for step in ("read_body", "create_request", "listen_for_disconnect", "run_get_response", "send_response"):
        assert step in ours and step in theirs
