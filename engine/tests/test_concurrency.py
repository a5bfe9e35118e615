"""Execution slots and the wait queue, shared by every request; the event loop never blocks."""

import asyncio
import threading

import pytest

from engine.backends.local import Slots
from engine.errors import Busy
from engine.executor import Run
from runner import conf

SLOW = {"language": "bash", "code": "sleep 1.5; echo slow"}
QUICK = {"language": "bash", "code": "echo quick"}


async def wait_for_runs(count: int):
    for _ in range(500):
        if conf.backend().slots.in_use >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} runs never started")


async def post(async_client, body):
    return await async_client.post("/api/execute", body, content_type="application/json")


@pytest.mark.django_db(transaction=True)
async def test_when_every_slot_and_the_queue_are_full_it_answers_503(async_client, settings):
    settings.RUNNER_CONCURRENCY = 1
    settings.RUNNER_QUEUE_SIZE = 0
    slow = asyncio.create_task(post(async_client, SLOW))
    await wait_for_runs(1)
    refused = await post(async_client, QUICK)
    assert refused.status_code == 503
    assert refused["Retry-After"] == "1"
    assert "busy" in refused.json()["error"]
    assert (await slow).json()["stdout"] == "slow\n"


@pytest.mark.django_db(transaction=True)
async def test_a_queued_run_waits_for_a_slot(async_client, settings):
    settings.RUNNER_CONCURRENCY = 1
    settings.RUNNER_QUEUE_SIZE = 1
    slow = asyncio.create_task(post(async_client, SLOW))
    await wait_for_runs(1)
    queued = asyncio.create_task(post(async_client, QUICK))
    await asyncio.sleep(0.2)
    assert not queued.done()
    assert (await post(async_client, QUICK)).status_code == 503  # the queue holds one
    assert (await queued).json()["stdout"] == "quick\n"
    assert slow.done()  # the queued run only ran once the slow one had finished


@pytest.mark.django_db(transaction=True)
async def test_a_queued_run_gives_up_after_the_queue_wait(async_client, settings):
    settings.RUNNER_CONCURRENCY = 1
    settings.RUNNER_QUEUE_SIZE = 4
    settings.RUNNER_QUEUE_WAIT = 0.2
    slow = asyncio.create_task(post(async_client, SLOW))
    await wait_for_runs(1)
    response = await post(async_client, QUICK)
    assert response.status_code == 503
    await slow


@pytest.mark.django_db(transaction=True)
async def test_other_requests_are_answered_while_runs_are_under_way(async_client, settings):
    settings.RUNNER_CONCURRENCY = 2
    runs = [asyncio.create_task(post(async_client, SLOW)) for _ in range(2)]
    await wait_for_runs(2)
    response = await async_client.get("/api/runtimes")
    assert response.status_code == 200
    assert not any(run.done() for run in runs)
    assert [(await run).json()["stdout"] for run in runs] == ["slow\n", "slow\n"]


@pytest.mark.django_db(transaction=True)
async def test_concurrent_runs_are_isolated_from_each_other(async_client, settings):
    settings.RUNNER_CONCURRENCY = 2
    # (Dot files left out: the home is the working directory, and Python's has matplotlib's font list.)
    code = "import os, time\nopen('mine', 'w').write('%s')\ntime.sleep(0.5)\nprint(open('mine').read(), sorted(f for f in os.listdir('.') if f[0] != '.'))"
    a, b = await asyncio.gather(
        post(async_client, {"language": "python", "code": code % "a"}),
        post(async_client, {"language": "python", "code": code % "b"}),
    )
    assert a.json()["stdout"] == "a ['main.py', 'mine']\n"
    assert b.json()["stdout"] == "b ['main.py', 'mine']\n"


async def test_slots_hand_a_released_slot_to_the_first_waiter():
    slots = Slots(1, 2, 5)
    first = await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    slots.release(first)
    assert await waiter == first
    assert slots.in_use == 1


async def test_slots_are_released_from_another_thread():
    slots = Slots(1, 1, 5)
    held = await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    threading.Thread(target=slots.release, args=(held,)).start()
    assert await asyncio.wait_for(waiter, 2) == held


async def test_a_cancelled_waiter_does_not_lose_the_slot():
    slots = Slots(1, 2, 5)
    held = await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    slots.release(held)
    await asyncio.sleep(0.01)
    assert await slots.acquire() == held


async def test_each_concurrent_run_gets_its_own_slot():
    slots = Slots(3, 0, 5)
    got = [await slots.acquire() for _ in range(3)]
    assert sorted(got) == [0, 1, 2]
    with pytest.raises(Busy):
        await slots.acquire()


@pytest.mark.django_db(transaction=True)
async def test_concurrent_runs_cannot_reach_each_other(async_client, settings):
    settings.RUNNER_CONCURRENCY = 2
    server = (
        "import socket, time\ns = socket.socket(socket.AF_UNIX)\ns.bind('\\0playground-between')\ns.listen()\n"
        "open('/tmp/a-was-here', 'w').write('a')\nopen('/dev/shm/a-was-here', 'w').write('a')\n"
        "s.settimeout(1.2)\ntry:\n    s.accept()\n    print('accepted')\nexcept OSError:\n    print('alone')"
    )
    client = (
        "import os, socket, time\ntime.sleep(0.4)\nc = socket.socket(socket.AF_UNIX)\ntry:\n"
        "    c.connect('\\0playground-between')\n    print('connected')\nexcept OSError as e:\n    print(e.errno)\n"
        "print(os.path.exists('/tmp/a-was-here'), os.path.exists('/dev/shm/a-was-here'))"
    )
    a, b = await asyncio.gather(
        post(async_client, {"language": "python", "code": server}),
        post(async_client, {"language": "python", "code": client}),
    )
    assert a.json()["stdout"] == "alone\n"
    assert b.json()["stdout"] == "111\nFalse False\n"


@pytest.mark.django_db(transaction=True)
async def test_a_cancelled_run_is_still_cleaned_up_before_its_slot_is_reused(settings):
    from runner import validation, wire

    settings.RUNNER_CONCURRENCY = 1
    spec = validation.run_spec(wire.RunRequest(language="bash", code="echo up; sleep 60"), conf.get())
    run = Run(spec, conf.backend())
    task = asyncio.create_task(run.result())
    await wait_for_runs(1)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The run is killed at once and torn down in the background: its slot comes back
    # only once its sandbox is gone.
    deadline = asyncio.get_running_loop().time() + 5
    while conf.backend().slots.in_use and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert conf.backend().slots.in_use == 0
    assert run.handle.box.destroyed
    assert run.handle.box.exit_status() is None  # killed, not finished: sleep 60 never ended
    # The autouse fixture proves that nothing of the run is left.
