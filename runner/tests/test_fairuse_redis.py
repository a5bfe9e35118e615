"""Two server processes behind one address share one rate limit through the real Redis."""

import uuid

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server
from runner.doors.ws.tests.test_channel_layer import redis_running
from runner.rates import Rate

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


def test_the_redis_bucket_takes_several_tokens_at_once_or_none(settings):
    import redis

    from runner.fairuse import take

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"playground-test-{uuid.uuid4().hex}",
        }
    }
    try:
        redis.Redis().ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    rate = Rate(5, 60)
    assert (take("graded", rate, 3).allowed, take("graded", rate, 3).allowed) == (True, False)
    decision = take("graded", rate, 2)
    assert decision.allowed and decision.remaining == 0
    from django.core.cache import cache

    assert redis.Redis().exists(cache.make_key("rate:graded"))  # the count is Redis's, not this process's
