"""GET /api/executions/<id>: earlier runs, kept for the retention period."""

import uuid
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from runner.models import Execution


def test_a_run_can_be_fetched_with_its_code_and_output(api, client):
    result = api.run(
        "python", "import sys\nprint(sys.argv[1], input())", stdin="in", args=["arg"], files={"x.py": "1"}
    )
    response = client.get(f"/api/executions/{result['id']}")
    assert response.status_code == 200
    stored = response.json()
    assert {k: stored[k] for k in result} == result
    assert stored["code"] == "import sys\nprint(sys.argv[1], input())"
    assert stored["stdin"] == "in"
    assert stored["args"] == ["arg"]
    assert stored["files"] == {"x.py": "1"}
    assert stored["createdAt"]


def test_a_timed_out_run_is_stored_with_its_partial_output(api, client):
    result = api.run("bash", "echo partial; sleep 10", timeout=300)
    stored = client.get(f"/api/executions/{result['id']}").json()
    assert stored["status"] == "timeout" and stored["timedOut"] is True and stored["signal"] == "SIGKILL"
    assert stored["stdout"] == "partial\n"


def test_an_unknown_id_is_404(client, db):
    response = client.get(f"/api/executions/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "no execution" in response.json()["error"]


def test_a_malformed_id_is_json_404(client, db):
    response = client.get("/api/executions/not-a-uuid")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_a_run_past_the_retention_period_is_gone(api, client, settings):
    settings.RUNNER_RETENTION_HOURS = 1
    result = api.run("bash", "echo old")
    Execution.objects.filter(id=result["id"]).update(created_at=timezone.now() - timedelta(hours=2))
    assert client.get(f"/api/executions/{result['id']}").status_code == 404


def test_pruning_deletes_only_expired_runs(api, settings):
    settings.RUNNER_RETENTION_HOURS = 24
    old = api.run("bash", "echo old")["id"]
    new = api.run("bash", "echo new")["id"]
    Execution.objects.filter(id=old).update(created_at=timezone.now() - timedelta(hours=25))
    call_command("prune_executions")
    assert list(Execution.objects.values_list("id", flat=True)) == [uuid.UUID(new)]
