"""A host that can't isolate never runs code: the API answers 503 and says why."""

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def broken_host(settings, tmp_path):
    settings.RUNNER_TOOLS_DIR = str(tmp_path)  # no sandbox-init there


def test_the_api_answers_503_naming_the_missing_layer(api, broken_host):
    response = api.execute({"language": "python", "code": "print(1)"})
    assert response.status_code == 503
    assert "sandbox-init" in response.json()["error"]
    assert "code execution is disabled" in response.json()["error"]


def test_healthz_reports_the_broken_layer(client, broken_host):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert {"name": "sandbox-init", "on": False}.items() <= next(
        layer for layer in body["layers"] if layer["name"] == "sandbox-init"
    ).items()


def test_healthz_reports_every_layer_on_a_good_host(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    layers = {layer["name"]: layer for layer in response.json()["layers"]}
    for name in (
        "bwrap",
        "user namespace",
        "pid namespace",
        "net namespace",
        "mnt namespace",
        "uid drop",
        "nested user namespaces",
        "clean environment",
    ):
        assert layers[name]["on"], layers[name]


def test_sandbox_check_prints_each_layer(capsys):
    call_command("sandbox_check")
    out = capsys.readouterr().out
    for name in ("bwrap", "ipc namespace", "uts namespace", "cgroup namespace", "uid drop"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert " on " in line
    assert "isolation holds" in out


def test_sandbox_check_fails_on_a_broken_host(broken_host):
    with pytest.raises(CommandError, match="sandbox-init"):
        call_command("sandbox_check")
