"""GET /api/run/<language>?code=...&stdin=..."""


def test_it_runs_code_from_the_query_string(client, db):
    response = client.get("/api/run/python", {"code": "print(sum(range(1,101)))"})
    assert response.status_code == 200
    body = response.json()
    assert body["stdout"] == "5050\n" and body["exitCode"] == 0 and body["language"] == "python"


def test_it_passes_stdin(client, db):
    response = client.get("/api/run/bash", {"code": 'read x; echo "got $x"', "stdin": "hello\n"})
    assert response.json()["stdout"] == "got hello\n"


def test_language_names_are_case_insensitive(client, db):
    response = client.get("/api/run/JS", {"code": "console.log(2 ** 10)"})
    assert response.json()["language"] == "javascript"
    assert response.json()["stdout"] == "1024\n"


def test_missing_code_is_400(client, db):
    response = client.get("/api/run/python")
    assert response.status_code == 400
    assert response.json() == {"error": "query parameter 'code' is required", "field": "code"}


def test_an_unknown_language_is_404(client, db):
    response = client.get("/api/run/brainfuck", {"code": "+"})
    assert response.status_code == 404
    assert "python" in response.json()["languages"]


def test_post_is_405(client, db):
    response = client.post("/api/run/python", {"code": "print(1)"})
    assert response.status_code == 405
    assert response["Allow"] == "GET, OPTIONS"


def test_code_over_the_ceiling_is_413(client, db, settings):
    settings.RUNNER_MAX_CODE = 100
    response = client.get("/api/run/python", {"code": "#" * 101})
    assert response.status_code == 413
