"""Runs are stored just after their answer, and readable from the moment it is sent."""

import pytest

from runner.models import Execution
from runner.recorder import RECORDER


@pytest.mark.django_db(transaction=True)
def test_a_run_is_readable_at_once_and_stored_just_after_its_answer(api, client, settings):
    settings.RUNNER_RECORD_IN_BACKGROUND = True
    results = [api.run("python", f"print({i})") for i in range(3)]
    for i, result in enumerate(results):
        # Pending or written, it is there.
        assert client.get(f"/api/executions/{result['id']}").json()["stdout"] == f"{i}\n"
    assert RECORDER.flush()
    assert RECORDER.pending(results[0]["id"]) is None
    stored = Execution.objects.filter(id__in=[r["id"] for r in results])
    assert sorted(e.stdout for e in stored) == ["0\n", "1\n", "2\n"]


@pytest.mark.django_db(transaction=True)
def test_a_run_is_stored_while_another_thread_reads_the_table(api, settings):
    from django.db import connection

    settings.RUNNER_RECORD_IN_BACKGROUND = True
    for i in range(2):
        api.run("python", f"print({i})")
    assert RECORDER.flush()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM runner_execution")
        cursor.fetchone()  # the read is still going on: one row of two taken
        result = api.run("python", "print('during')")
        assert RECORDER.flush()
    assert Execution.objects.get(id=result["id"]).stdout == "during\n"


@pytest.mark.django_db(transaction=True)
def test_a_websocket_run_is_stored_the_same_way(settings):
    import asyncio

    from channels.testing import WebsocketCommunicator

    from playground.asgi import application

    settings.RUNNER_RECORD_IN_BACKGROUND = True

    async def one_run():
        ws = WebsocketCommunicator(application, "/ws/execute")
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to({"type": "run", "language": "bash", "code": "echo via-ws"})
        while (message := await ws.receive_json_from(timeout=20))["type"] != "exit":
            pass
        await ws.disconnect()
        return message

    exit_message = asyncio.run(one_run())
    assert RECORDER.flush()
    run_id = exit_message["id"]
    assert Execution.objects.get(id=run_id).stdout == "via-ws\n"


@pytest.mark.django_db(transaction=True)
def test_a_record_the_database_cant_take_costs_no_other_run_its_record(settings, caplog):
    """A record that fails for a reason of its own (here text no database encodes) is logged and
    given up alone: the runs in its batch are stored, and the recorder goes on with later ones."""
    import asyncio
    import uuid

    from engine.results import RunResult
    from engine.spec import RunSpec

    settings.RUNNER_RECORD_IN_BACKGROUND = True

    def result(stdout):
        return RunResult(
            id=uuid.uuid4(), language="python", exit_code=0, stdout=stdout, stderr="", duration=1,
            timed_out=False, truncated=False, signal=None, status="ok",
        )  # fmt: skip

    spec = RunSpec(language="python", code="print()")
    batch = [result("first\n"), result("bad \udc80\n"), result("third\n")]
    # One batch holding all three, as when they finish together.
    assert RECORDER._write([Execution.from_run(spec, r) for r in batch])
    stored = set(Execution.objects.filter(id__in=[r.id for r in batch]).values_list("stdout", flat=True))
    assert stored == {"first\n", "third\n"}
    assert f"run {batch[1].id} can't be stored" in caplog.text

    # Through the recorder's thread: it lives on after the bad one, and stores the next.
    async def record(*results):
        for r in results:
            await RECORDER.record(spec, r)

    asyncio.run(record(result("bad again \udc80")))
    assert RECORDER.flush()
    thread = RECORDER._thread
    later = result("later\n")
    asyncio.run(record(later))
    assert RECORDER.flush()
    assert RECORDER._thread is thread and thread.is_alive()
    assert Execution.objects.get(id=later.id).stdout == "later\n"
