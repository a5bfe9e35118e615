"""Fair use: rate limits, API keys with credits, proxies, and runs at once per client."""

import asyncio
import io
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from runner.fairuse import client_address
from runner.models import ApiKey
from runner.rates import Rate

RUN = {"language": "bash", "code": "echo ok"}


def execute(client, body=RUN, **headers):
    return client.post("/api/execute", data=json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def limited(settings):
    settings.RUNNER_RATE_LIMIT = "3/min"


def test_rates_are_read_like_60_per_min():
    assert Rate.parse("60/min") == Rate(60, 60)
    assert Rate.parse("5/s") == Rate(5, 1)
    assert Rate.parse("1000/h") == Rate(1000, 3600)
    assert Rate.parse("off") is None
    for bad in ("60", "60/fortnight", "0/min", "x/min", "-1/s"):
        with pytest.raises(ValueError):
            Rate.parse(bad)


def test_a_bad_rate_setting_stops_the_server(settings):
    from runner.rates import setting_rate

    with pytest.raises(ImproperlyConfigured, match="RUNNER_RATE_LIMIT"):
        setting_rate("RUNNER_RATE_LIMIT", "lots")


def test_anonymous_runs_carry_ratelimit_headers_until_429(client, db, limited):
    remaining = []
    for _ in range(3):
        response = execute(client)
        assert response.status_code == 200
        assert response["RateLimit-Limit"] == "3"
        remaining.append(response["RateLimit-Remaining"])
        assert int(response["RateLimit-Reset"]) > 0
    assert remaining == ["2", "1", "0"]
    refused = execute(client)
    assert refused.status_code == 429
    body = refused.json()
    assert body["retryAfter"] >= 1
    assert "rate limit of 3/min" in body["error"]
    assert refused["Retry-After"] == str(body["retryAfter"])
    assert refused["RateLimit-Remaining"] == "0"


def test_the_get_endpoint_is_limited_too(client, db, limited):
    for _ in range(3):
        assert client.get("/api/run/bash", {"code": "true"}).status_code == 200
    assert client.get("/api/run/bash", {"code": "true"}).status_code == 429


def test_off_disables_the_limit(client, db, settings):
    settings.RUNNER_RATE_LIMIT = "off"
    for _ in range(5):
        response = execute(client)
        assert response.status_code == 200
        assert "RateLimit-Limit" not in response


def test_other_endpoints_are_not_limited(client, db, limited):
    for _ in range(5):
        assert client.get("/api/runtimes").status_code == 200


def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(client, db, limited):
    for i in range(3):
        assert execute(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code == 200
    assert execute(client, HTTP_X_FORWARDED_FOR="198.51.100.99").status_code == 429


def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(client, db, limited, settings):
    settings.RUNNER_TRUSTED_PROXIES = "127.0.0.0/8"
    for _ in range(3):
        assert execute(client, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    assert execute(client, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert execute(client, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 200


def test_client_address_walks_back_past_trusted_hops(settings):
    settings.RUNNER_TRUSTED_PROXIES = "10.0.0.0/8, 127.0.0.1"
    assert client_address("127.0.0.1", "203.0.113.9, 10.1.2.3") == "203.0.113.9"
    assert client_address("127.0.0.1", "not-an-ip") == "127.0.0.1"
    assert client_address("192.0.2.1", "203.0.113.9") == "192.0.2.1"
    assert client_address("127.0.0.1", None) == "127.0.0.1"


def test_requiring_a_key_closes_anonymous_access(client, db, settings):
    settings.RUNNER_REQUIRE_API_KEY = True
    response = execute(client)
    assert response.status_code == 401
    assert "API key is required" in response.json()["error"]
    _, secret = ApiKey.issue("ci")
    assert execute(client, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_a_key_is_accepted_as_bearer_or_x_api_key(client, db, limited):
    key, secret = ApiKey.issue("docs", rate="5/min")
    for headers in ({"HTTP_AUTHORIZATION": f"Bearer {secret}"}, {"HTTP_X_API_KEY": secret}):
        response = execute(client, **headers)
        assert response.status_code == 200
        assert response["RateLimit-Limit"] == "5"  # the key's own rate, not the anonymous one
    key.refresh_from_db()
    assert key.runs == 2 and key.last_used_at is not None


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_an_unknown_key_is_401_never_anonymous(client, db, header):
    value = "Bearer pgk_nope" if header == "HTTP_AUTHORIZATION" else "pgk_nope"
    response = execute(client, **{header: value})
    assert response.status_code == 401
    assert response.json() == {"error": "unknown or revoked API key"}


def test_a_revoked_key_is_401(client, db):
    key, secret = ApiKey.issue("old")
    key.revoke()
    assert execute(client, HTTP_X_API_KEY=secret).status_code == 401


def test_only_a_hash_and_a_prefix_are_stored(db):
    key, secret = ApiKey.issue("store")
    stored = ApiKey.objects.values().get(pk=key.pk)
    assert secret not in json.dumps(stored, default=str)
    assert stored["key_hash"] == ApiKey.hash(secret) and len(stored["key_hash"]) == 64
    assert secret.startswith(stored["prefix"]) and len(stored["prefix"]) == 10


def test_credits_count_down_then_402(client, db):
    key, secret = ApiKey.issue("paid", credits=2)
    assert execute(client, HTTP_X_API_KEY=secret).status_code == 200
    assert execute(client, HTTP_X_API_KEY=secret).status_code == 200
    response = execute(client, HTTP_X_API_KEY=secret)
    assert response.status_code == 402
    assert response.json() == {"error": "credits exhausted"}
    key.refresh_from_db()
    assert (key.credits, key.runs) == (0, 2)


def test_a_run_refused_for_busy_slots_costs_no_credit(client, db, settings):
    from runner import conf

    key, secret = ApiKey.issue("paid", credits=3)
    settings.RUNNER_CONCURRENCY = 1
    settings.RUNNER_QUEUE_SIZE = 0
    pool = conf.backend().slots
    held = asyncio.run(pool.acquire())
    try:
        assert execute(client, HTTP_X_API_KEY=secret).status_code == 503
    finally:
        pool.release(held)
    key.refresh_from_db()
    assert (key.credits, key.runs) == (3, 0)


def test_usage_reports_the_keys_use(client, db):
    key, secret = ApiKey.issue("agent", credits=10, rate="100/h")
    execute(client, HTTP_X_API_KEY=secret)
    response = client.get("/api/usage", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    assert response.json() == {"name": "agent", "runs": 1, "creditsRemaining": 9, "rateLimit": "100/h"}
    assert client.get("/api/usage").status_code == 401


def test_a_key_may_carry_higher_ceilings(client, db, settings):
    settings.RUNNER_MAX_TIMEOUT = 1000
    _, secret = ApiKey.issue("long", max_timeout_ms=3000)
    body = {"language": "bash", "code": "sleep 1.2; echo done", "timeout": 2500}
    assert execute(client, body).status_code == 400
    response = execute(client, body, HTTP_X_API_KEY=secret)
    assert response.status_code == 200
    assert response.json()["stdout"] == "done\n"


def test_create_api_key_prints_the_key_last(db):
    out = io.StringIO()
    call_command(
        "create_api_key", "ci-bot", "--rate", "600/min", "--credits", "50", "--concurrency", "3", stdout=out
    )
    secret = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.objects.get(key_hash=ApiKey.hash(secret))
    assert (key.name, key.rate, key.credits, key.concurrency) == ("ci-bot", "600/min", 50, 3)
    with pytest.raises(CommandError):
        call_command("create_api_key", "bad", "--rate", "fast", stdout=io.StringIO())


def test_the_admin_creates_a_key_and_shows_it_once(admin_client):
    response = admin_client.post(
        "/admin/runner/apikey/add/", {"name": "from admin", "rate": "", "concurrency": 2}, follow=True
    )
    assert response.status_code == 200
    message = next(str(m) for m in response.context["messages"] if "pgk_" in str(m))
    secret = message.split("The new key is ")[1].split(" ")[0]
    assert ApiKey.objects.get(key_hash=ApiKey.hash(secret)).name == "from admin"


def test_the_admin_revokes_keys(admin_client):
    key, _ = ApiKey.issue("to revoke")
    admin_client.post("/admin/runner/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.django_db(transaction=True)
async def test_runs_at_once_per_client_are_capped(async_client, settings):
    settings.RUNNER_CLIENT_CONCURRENCY = 1
    settings.RUNNER_CLIENT_WAIT = 0.3
    settings.RUNNER_TRUSTED_PROXIES = "127.0.0.0/8"
    slow = asyncio.create_task(
        async_client.post("/api/execute", {"language": "bash", "code": "sleep 1; echo slow"},
                          content_type="application/json", headers={"X-Forwarded-For": "198.51.100.7"})
    )  # fmt: skip
    await asyncio.sleep(0.4)
    same = await async_client.post("/api/execute", RUN, content_type="application/json",
                                   headers={"X-Forwarded-For": "198.51.100.7"})  # fmt: skip
    other = await async_client.post("/api/execute", RUN, content_type="application/json",
                                    headers={"X-Forwarded-For": "198.51.100.8"})  # fmt: skip
    assert same.status_code == 429
    assert "at most 1 per client" in same.json()["error"]
    assert same["Retry-After"] == "1"
    assert other.status_code == 200
    assert (await slow).json()["stdout"] == "slow\n"
    after = await async_client.post("/api/execute", RUN, content_type="application/json",
                                    headers={"X-Forwarded-For": "198.51.100.7"})  # fmt: skip
    assert after.status_code == 200  # the place was given back


@pytest.mark.django_db(transaction=True)
async def test_a_queued_extra_run_gets_in_when_a_place_frees(async_client, settings):
    settings.RUNNER_CLIENT_CONCURRENCY = 1
    settings.RUNNER_CLIENT_WAIT = 3
    first = asyncio.create_task(
        async_client.post(
            "/api/execute", {"language": "bash", "code": "sleep 0.5; echo 1"}, content_type="application/json"
        )
    )
    await asyncio.sleep(0.2)
    second = await async_client.post("/api/execute", RUN, content_type="application/json")
    assert second.status_code == 200
    assert (await first).status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_websocket_runs_count_against_the_same_credits():
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from runner.doors.ws.routing import websocket_urlpatterns

    key, secret = await asyncio.to_thread(ApiKey.issue, "ws", credits=1)
    app = URLRouter(websocket_urlpatterns)
    frames = []
    for _ in range(2):
        ws = WebsocketCommunicator(app, f"/ws/execute?api_key={secret}")
        await ws.connect()
        await ws.send_json_to({"type": "run", "language": "bash", "code": "echo hi"})
        while True:
            frame = await ws.receive_json_from(10)
            if frame["type"] in ("exit", "error"):
                frames.append(frame)
                break
        await ws.disconnect()
    assert frames[0]["type"] == "exit"
    assert frames[1] == {"type": "error", "error": "credits exhausted"}


@pytest.mark.django_db(transaction=True)
async def test_websocket_rejects_an_unknown_key():
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from runner.doors.ws.routing import websocket_urlpatterns

    ws = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), "/ws/execute", headers=[(b"x-api-key", b"pgk_nope")]
    )
    await ws.connect()
    await ws.send_json_to({"type": "run", "language": "bash", "code": "echo hi"})
    assert await ws.receive_json_from(5) == {"type": "error", "error": "unknown or revoked API key"}


def test_a_graded_run_takes_a_token_per_case_all_or_none(client, db, settings):
    settings.RUNNER_RATE_LIMIT = "5/min"
    graded = {"language": "bash", "code": "cat", "tests": [{"stdin": "1"}, {"stdin": "2"}, {"stdin": "3"}]}
    first = execute(client, graded)
    assert first.status_code == 200 and first["RateLimit-Remaining"] == "2"
    refused = execute(client, graded)  # 3 runs, 2 tokens left: nothing is taken
    assert refused.status_code == 429 and refused.json()["retryAfter"] >= 1
    assert execute(client).status_code == 200  # the 2 tokens are still there
    assert execute(client)["RateLimit-Remaining"] == "0"


def test_a_graded_run_larger_than_the_rate_ever_allows_is_a_400(client, db, settings):
    settings.RUNNER_RATE_LIMIT = "2/min"
    response = execute(client, {"language": "bash", "code": "cat", "tests": [{}, {}, {}]})
    assert response.status_code == 400
    assert response.json()["field"] == "tests" and "3 runs" in response.json()["error"]


def test_credits_are_charged_per_case_and_the_cases_not_run_given_back(client, db):
    key, secret = ApiKey.issue("course", credits=6)
    headers = {"HTTP_X_API_KEY": secret}
    tests = [{"stdin": "1", "expectedOutput": "2"}, {"stdin": "3"}, {"stdin": "4"}]
    body = {"language": "bash", "code": "cat", "tests": tests, "stopOnFailure": True}
    result = execute(client, body, **headers).json()
    assert [t["status"] for t in result["tests"]] == ["wrong_answer", "skipped", "skipped"]
    key.refresh_from_db()
    assert (key.credits, key.runs) == (5, 1)  # charged 3, the 2 skipped given back
    assert execute(client, {**body, "tests": tests * 2}, **headers).status_code == 402  # 6 > 5
    key.refresh_from_db()
    assert key.credits == 5
