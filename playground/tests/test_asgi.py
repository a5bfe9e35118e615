"""The ASGI entry point: the API's own handler, driven the way daphne drives it."""

import asyncio
import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core import signals

from conftest import sandbox_leftovers
from playground.asgi import ApiHandler, django_app
from runner import conf


def http_scope(method: str, path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def request(app, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    communicator = ApplicationCommunicator(app, http_scope(method, path))
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(30)
    chunks = []
    while True:
        message = await communicator.receive_output(30)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait(30)
    return start["status"], b"".join(chunks)


@pytest.fixture
def signals_sent():
    sent = []

    def started(sender, **kwargs):
        sent.append(("started", sender))

    def finished(sender, **kwargs):
        sent.append(("finished", sender))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield sent
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


@pytest.mark.django_db(transaction=True)
async def test_an_api_request_skips_request_started_but_still_closes_old_connections_after(signals_sent):
    status, body = await request(ApiHandler(), "GET", "/api/runtimes")
    assert status == 200 and "python" in body.decode()
    # No hand-off to the database thread before the view; the connection check
    # (close_old_connections, a request_finished receiver) still runs, after the answer.
    assert signals_sent == [("finished", ApiHandler)]


@pytest.mark.django_db(transaction=True)
async def test_pages_still_send_both_signals(signals_sent):
    status, _ = await request(django_app, "GET", "/")
    assert status == 200
    assert [name for name, _ in signals_sent] == ["started", "finished"]


@pytest.mark.django_db(transaction=True)
async def test_an_api_client_that_hangs_up_ends_its_run(settings, signals_sent):
    settings.RUNNER_POOL_SIZE = 0
    body = json.dumps({"language": "bash", "code": "echo up; sleep 60"}).encode()
    communicator = ApplicationCommunicator(ApiHandler(), http_scope("POST", "/api/execute"))
    await communicator.send_input({"type": "http.request", "body": body})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not conf.backend().slots.in_use and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert conf.backend().slots.in_use == 1
    await asyncio.sleep(0.2)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(10)
    # The view was cancelled, so the run was killed (sleep 60 never ends by itself) and
    # torn down: its slot comes back, and nothing of its sandbox is left.
    deadline = loop.time() + 5
    while conf.backend().slots.in_use and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert conf.backend().slots.in_use == 0
    assert sandbox_leftovers() == []
    assert signals_sent == [("finished", ApiHandler)]
