"""POST /api/batch through the real daphne server: order, errors in place, parallelism, and cost."""

import json

import pytest

from conftest import LIVE_CGROUP_PARENT, LIVE_UID_BASES, Server

LIVE = {"RUNNER_UID_BASE": str(LIVE_UID_BASES[0]), "RUNNER_CGROUP_PARENT": LIVE_CGROUP_PARENT}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**LIVE, "RUNNER_RATE_LIMIT": "off", "RUNNER_CLIENT_CONCURRENCY": "2", "RUNNER_MAX_BATCH": "6"}
    with Server(tmp_path_factory.mktemp("batch"), **env) as running:
        yield running


def batch(server, body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer_headers, answer = server.request(
        "/api/batch", raw, {"Content-Type": "application/json", **(headers or {})}
    )
    return status, answer_headers, json.loads(answer)


def runs_so_far(server) -> int:
    status, _, body = server.request("/healthz")
    runs = json.loads(body)["runs"]
    return runs["warm"] + runs["cold"]


def test_each_run_answers_in_its_place_in_the_order_given(server):
    status, _, body = batch(
        server,
        {
            "runs": [
                {"language": "python", "code": "print(input()[::-1])", "stdin": "abc"},
                {"language": "c", "code": '#include <stdio.h>\nint main(void) { puts("c ran"); }'},
                {"language": "bash", "code": "echo $1; exit 3", "args": ["third"]},
                {"language": "c", "code": "int main(void) { return nope; }"},
            ]
        },
    )
    assert status == 200
    results = body["results"]
    assert [r["stdout"] for r in results] == ["cba\n", "c ran\n", "third\n", ""]
    assert [r["status"] for r in results] == ["ok", "ok", "error", "compile_error"]
    assert [r["language"] for r in results] == ["python", "c", "bash", "c"]
    assert "nope" in results[3]["compile"]["stderr"]
    # Each is stored as a run of its own.
    for result in results:
        status, _, stored = server.request(f"/api/executions/{result['id']}")
        assert status == 200 and json.loads(stored)["stdout"] == result["stdout"]


def test_a_wrong_run_gets_its_error_in_its_place_and_the_others_run(server):
    status, _, body = batch(
        server,
        {
            "runs": [
                {"language": "bash", "code": "echo first"},
                {"language": "cobol", "code": "x"},
                {"language": "bash"},
                {"language": "bash", "code": "echo x", "timeout": 10**9},
                "print(1)",
                {"language": "bash", "code": "echo last", "colour": "red"},
            ]
        },
    )
    assert status == 200
    first, unknown, missing, too_long, not_object, extra = body["results"]
    assert first["stdout"] == "first\n"
    assert unknown["httpStatus"] == 404 and "cobol" in unknown["error"] and "python" in unknown["languages"]
    assert (missing["httpStatus"], missing["field"]) == (400, "code")
    assert (too_long["httpStatus"], too_long["field"]) == (400, "timeout")
    assert not_object["httpStatus"] == 400 and "JSON object" in not_object["error"]
    assert (extra["httpStatus"], extra["field"], extra["error"]) == (400, "colour", "unknown field 'colour'")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"runs": [{"language": "bash", "code": "echo x"}] * 7}, "runs"),  # over RUNNER_MAX_BATCH
        ({"runs": []}, "runs"),
        ({"runs": {"language": "bash", "code": "echo x"}}, "runs"),
        ({"language": "bash", "code": "echo x"}, "runs"),  # a single run's body is no batch
        ({"runs": [], "extra": 1}, "runs"),
    ],
)
def test_a_wrong_batch_is_refused_whole_before_anything_runs(server, body, field):
    before = runs_so_far(server)
    status, _, answer = batch(server, body)
    assert status == 400 and answer["field"] == field, answer
    assert runs_so_far(server) == before


def test_a_batch_that_is_not_json_or_over_the_body_limit_is_refused(server):
    assert batch(server, b"{")[0] == 400
    huge = {"runs": [{"language": "bash", "code": "#" * 200_000}] * 6}
    status, _, _ = server.request(
        "/api/batch", json.dumps(huge).encode(), {"Content-Type": "application/json"}
    )
    assert status == 413


def test_runs_go_in_parallel_up_to_the_clients_runs_at_once(server):
    # Each run says when it started and ended; the client may have two at once.
    code = "import time\nstart = time.time()\ntime.sleep(0.4)\nprint(start, time.time())"
    status, _, body = batch(server, {"runs": [{"language": "python", "code": code}] * 6})
    assert status == 200
    spans = [tuple(map(float, r["stdout"].split())) for r in body["results"]]
    at_once = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert at_once == 2, spans


def test_each_run_costs_what_it_would_alone(server):
    secret = server.issue_key(credits=3)
    runs = [{"language": "bash", "code": f"echo {i}"} for i in range(4)] + [{"language": "bash"}]
    status, _, body = batch(server, {"runs": runs}, {"X-API-Key": secret})
    assert status == 200
    results = body["results"]
    ran = [r for r in results if "stdout" in r]
    refused = [r for r in results[:4] if "error" in r]
    # Three credits: three runs; the fourth is refused for credits, the invalid one costs nothing.
    assert len(ran) == 3 and len(refused) == 1 and refused[0]["httpStatus"] == 402
    assert results[4]["httpStatus"] == 400
    status, _, usage = server.request("/api/usage", headers={"X-API-Key": secret})
    assert (json.loads(usage)["creditsRemaining"], json.loads(usage)["runs"]) == (0, 3)
