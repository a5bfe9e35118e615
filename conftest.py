"""Fixtures shared by every app's tests."""

import json
import os

import pytest

TEST_UID_BASE = 62000
TEST_CGROUP_PARENT = "code-playground-test"


@pytest.fixture(autouse=True)
def _test_host(settings):
    # Tests use their own uids and cgroup parent, so a dev server running beside
    # them can't be mistaken for something a test left behind (and the reverse).
    settings.RUNNER_UID_BASE = TEST_UID_BASE
    settings.RUNNER_CGROUP_PARENT = TEST_CGROUP_PARENT
    settings.RUNNER_TOOLS_DIR = os.environ.get("RUNNER_TOOLS_DIR", "/opt/code-playground")


class Api:
    """A thin helper over Django's test client that speaks JSON to /api/."""

    def __init__(self, client):
        self.client = client

    def execute(self, body=None, *, raw=None, **headers):
        data = raw if raw is not None else json.dumps(body)
        return self.client.post("/api/execute", data=data, content_type="application/json", **headers)

    def run(self, language: str, code: str, **body):
        """POST a run and return the result dict, asserting it was answered 200."""
        response = self.execute({"language": language, "code": code, **body})
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def api(client, db):
    return Api(client)
