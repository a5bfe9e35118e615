"""Two server processes behind one address share one rate limit through the real Redis."""

import uuid

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server
from runner.doors.ws.tests.test_channel_layer import redis_running

pytestmark = pytest.mark.skipif(
    not redis_running(), reason="no Redis server on 127.0.0.1:6379: the shared-limit test needs a real one"
)


def test_two_processes_share_one_limit_per_client(tmp_path):
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CACHE_KEY_PREFIX": f"playground-test-{uuid.uuid4().hex}",  # this test's own counters
        "RUNNER_RATE_LIMIT": "4/min",
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
    }
    a_env, b_env = ({**env, "RUNNER_UID_BASE": str(base)} for base in LIVE_UID_BASES)
    with Server(tmp_path / "a", **a_env) as a, Server(tmp_path / "b", **b_env) as b:
        statuses = []
        for i in range(8):
            status, headers, _ = (a, b)[i % 2].execute({"language": "bash", "code": "true"})
            statuses.append(status)
            if status == 429:
                assert int(headers["retry-after"]) >= 1
    assert statuses[:4] == [200] * 4
    assert statuses[4:] == [429] * 4


def test_each_process_alone_would_have_allowed_more(tmp_path):
    # The control: without Redis each process keeps its own count, so 8 runs split over two
    # processes all pass a limit of 4/min. The shared count above is what holds the limit.
    env = {
        "RUNNER_RATE_LIMIT": "4/min",
        "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT,
    }
    a_env, b_env = ({**env, "RUNNER_UID_BASE": str(base)} for base in LIVE_UID_BASES)
    with Server(tmp_path / "a", **a_env) as a, Server(tmp_path / "b", **b_env) as b:
        statuses = [(a, b)[i % 2].execute({"language": "bash", "code": "true"})[0] for i in range(8)]
    assert statuses == [200] * 8
