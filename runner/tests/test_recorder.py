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
def test_the_journal_line_holds_the_whole_row(api, settings):
    """What the next server replays after a kill -9 is the row the writer stores, field for field."""
    from runner import conf
    from runner.recorder import _execution

    settings.RUNNER_RECORD_IN_BACKGROUND = True
    assert RECORDER.flush()
    result = api.run("python", "import sys\nprint(input(), sys.argv[1:])", stdin="hi", args=["a"])
    with open(conf.get().journal_path, "rb") as journal:
        line = journal.read().splitlines()[-1]
    assert RECORDER.flush()
    replayed, stored = _execution(line), Execution.objects.get(id=result["id"])
    for field in Execution._meta.concrete_fields:
        assert getattr(replayed, field.attname) == getattr(stored, field.attname), field.attname
    assert stored.stdout == "hi ['a']\n" and stored.stdin == "hi"


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


def _result(stdout):
    import uuid

    from engine.results import RunResult

    return RunResult(
        id=uuid.uuid4(), language="python", exit_code=0, stdout=stdout, stderr="", duration=1,
        timed_out=False, truncated=False, signal=None, status="ok",
    )  # fmt: skip


def _record_spaced(results, gap):
    import asyncio

    from engine.spec import RunSpec

    async def record():
        for r in results:
            await RECORDER.record(RunSpec(language="python", code="print()"), r)
            await asyncio.sleep(gap)

    asyncio.run(record())


@pytest.mark.django_db(transaction=True)
def test_runs_that_finish_one_after_another_are_written_in_one_batch_once_they_stop(settings, monkeypatch):
    """A write at once would take the GIL from a back-to-back client's next run: the writer waits
    until runs stop finishing for a moment, and writes them all in one transaction."""
    import time

    from runner import recorder

    settings.RUNNER_RECORD_IN_BACKGROUND = True
    assert RECORDER.flush()
    monkeypatch.setattr(recorder, "WRITE_QUIET_SECONDS", 0.4)
    batches = []
    write = RECORDER._write
    monkeypatch.setattr(
        RECORDER, "_write", lambda batch, **kw: batches.append(len(batch)) or write(batch, **kw)
    )
    results = [_result(f"{i}\n") for i in range(4)]
    _record_spaced(results, 0.1)
    assert batches == []  # still coming in: nothing written yet
    deadline = time.monotonic() + 10
    while RECORDER.pending(results[-1].id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert batches == [4]
    assert Execution.objects.filter(id__in=[r.id for r in results]).count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_steady_stream_of_runs_is_written_as_it_goes_and_flush_writes_at_once(settings, monkeypatch):
    from runner import recorder

    settings.RUNNER_RECORD_IN_BACKGROUND = True
    assert RECORDER.flush()
    monkeypatch.setattr(recorder, "WRITE_QUIET_SECONDS", 60)  # never quiet enough
    monkeypatch.setattr(recorder, "WRITE_WAIT_MAX_SECONDS", 0.3)
    stream = [_result(f"{i}\n") for i in range(12)]
    _record_spaced(stream, 0.1)  # 1.2 s of runs, one every 0.1 s
    # The first ones were written while the stream went on, without waiting for its end.
    assert Execution.objects.filter(id=stream[0].id).exists()
    assert RECORDER.pending(stream[0].id) is None

    monkeypatch.setattr(recorder, "WRITE_WAIT_MAX_SECONDS", 60)
    last = _result("last\n")
    _record_spaced([last], 0)
    assert RECORDER.pending(last.id) is not None
    assert RECORDER.flush(timeout=5)
    assert Execution.objects.get(id=last.id).stdout == "last\n"
