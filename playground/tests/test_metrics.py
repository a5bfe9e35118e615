"""/metrics in Prometheus' format, from the real server: counts that hold under concurrency."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

LIVE = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}


def value(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    m = re.search("^" + pattern + "$", text, re.M)
    return float(m.group(1)) if m else 0.0


def scrape(server, **headers) -> tuple[int, str]:
    status, _, body = server.request("/metrics", headers=headers)
    return status, body.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("metrics"), RUNNER_RATE_LIMIT="3/min", **LIVE) as running:
        yield running


def test_it_counts_runs_by_language_and_status_under_concurrency(server):
    before = scrape(server)[1]
    with ThreadPoolExecutor(4) as pool:
        # 3 by the rate limit of one address: 3 run, the rest are refused.
        results = list(
            pool.map(lambda i: server.execute({"language": "bash", "code": f"exit {i % 2}"}), range(6))
        )
    status, after = scrape(server)
    assert status == 200
    ran = [r for s, _, r in results if s == 200]
    refused = [r for s, _, r in results if s == 429]
    assert len(ran) == 3 and len(refused) == 3
    for outcome in ("ok", "error"):
        counted = value(after, "playground_runs_total", language="bash", status=outcome) - value(
            before, "playground_runs_total", language="bash", status=outcome
        )
        assert counted == sum(r["status"] == outcome for r in ran)
    assert (
        value(after, "playground_refusals_total", reason="rate_limited")
        - value(before, "playground_refusals_total", reason="rate_limited")
        == 3
    )
    assert value(after, "playground_run_duration_seconds_count", language="bash") >= 3
    for name in (
        "playground_slots",
        "playground_slots_busy",
        "playground_queue_depth",
        "playground_websockets_open",
    ):
        assert re.search(f"^{name} ", after, re.M), name
    assert re.search(r'^playground_pool_waiting\{language="python"\} ', after, re.M)
    assert re.search(r'^playground_starts_total\{kind="warm"\} ', after, re.M)
    assert value(after, "playground_run_cpu_seconds_total", language="bash") > 0


def test_without_a_token_a_forwarded_for_header_from_an_untrusted_peer_changes_nothing(server):
    status, _ = scrape(server, **{"X-Forwarded-For": "203.0.113.7"})
    assert status == 200  # no trusted proxy is set: the peer, loopback, is the client


def test_with_a_token_it_asks_for_it(tmp_path):
    with Server(tmp_path, RUNNER_METRICS_TOKEN="s3cret-metrics", **LIVE) as running:
        assert scrape(running)[0] == 401
        assert scrape(running, Authorization="Bearer wrong")[0] == 401
        status, text = scrape(running, Authorization="Bearer s3cret-metrics")
        assert status == 200 and "playground_slots" in text


def test_behind_a_trusted_proxy_a_remote_client_is_refused(tmp_path):
    with Server(tmp_path, RUNNER_TRUSTED_PROXIES="127.0.0.1", **LIVE) as running:
        status, body = scrape(running, **{"X-Forwarded-For": "203.0.113.7"})
        assert status == 403 and "RUNNER_METRICS_TOKEN" in json.loads(body)["error"]
