"""POST /api/snippets and GET /api/snippets/<id>."""

import json

import pytest

from playground.models import Snippet


def post(client, body):
    return client.post("/api/snippets", data=json.dumps(body), content_type="application/json")


def test_saving_returns_201_with_links(client, db):
    response = post(client, {"language": "py", "code": "print(1)", "stdin": "x", "title": "One"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "url", "embedUrl"}
    assert body["url"] == f"http://testserver/s/{body['id']}"
    assert body["embedUrl"] == f"http://testserver/embed/{body['id']}"
    assert len(body["id"]) == 11
    saved = Snippet.objects.get(id=body["id"])
    assert (saved.language, saved.code, saved.stdin, saved.title) == ("python", "print(1)", "x", "One")


def test_the_same_content_gives_the_same_snippet(client, db):
    first = post(client, {"language": "python", "code": "print(1)"})
    again = post(client, {"language": "Python", "code": "print(1)"})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Snippet.objects.count() == 1


def test_different_content_gives_a_new_snippet(client, db):
    ids = {
        post(client, body).json()["id"]
        for body in (
            {"language": "python", "code": "print(1)"},
            {"language": "python", "code": "print(2)"},
            {"language": "python", "code": "print(1)", "stdin": "x"},
            {"language": "bash", "code": "print(1)"},
        )
    }
    assert len(ids) == 4


def test_a_snippet_can_be_read_back(client, db):
    created = post(client, {"language": "js", "code": "console.log(1)", "title": "t"}).json()
    response = client.get(f"/api/snippets/{created['id']}")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("id", "url", "embedUrl")} == created
    assert (body["language"], body["code"], body["stdin"], body["title"]) == (
        "javascript",
        "console.log(1)",
        "",
        "t",
    )
    assert body["createdAt"].endswith("Z")


def test_an_unknown_snippet_is_json_404(client, db):
    response = client.get("/api/snippets/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "no snippet nope"}


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"code": "x"}, 400, "language"),
        ({"language": "python"}, 400, "code"),
        ({"language": "python", "code": 5}, 400, "code"),
        ({"language": "python", "code": "x", "title": "t" * 201}, 400, "title"),
        ({"language": "python", "code": "x", "extra": 1}, 400, "extra"),
        ({"language": "cobol", "code": "x"}, 404, None),
    ],
)
def test_bad_snippets_are_refused(client, db, body, status, field):
    response = post(client, body)
    assert response.status_code == status
    assert response.json().get("field") == field


def test_code_over_the_ceiling_is_413(client, db, settings):
    settings.RUNNER_MAX_CODE = 10
    assert post(client, {"language": "python", "code": "#" * 11}).status_code == 413


def test_malformed_json_is_400(client, db):
    response = client.post("/api/snippets", data="{", content_type="application/json")
    assert response.status_code == 400


def test_a_wrong_method_is_405(client, db):
    assert client.get("/api/snippets").status_code == 405
    assert client.delete("/api/snippets/abc").status_code == 405


def test_snippets_answer_any_origin(client, db):
    response = post(client, {"language": "python", "code": "1"})
    assert response["Access-Control-Allow-Origin"] == "*"


def test_a_snippet_keeps_its_test_cases(client, db, settings):
    settings.RUNNER_MAX_TESTS = 2
    plain = post(client, {"language": "python", "code": "print(1)"}).json()["id"]
    tests = [{"stdin": "1", "expectedOutput": "1"}, {"name": "two", "stdin": "2"}]
    body = post(client, {"language": "python", "code": "print(1)", "tests": tests}).json()
    assert body["id"] != plain  # the cases are part of the content
    saved = client.get(f"/api/snippets/{body['id']}").json()
    assert saved["tests"] == [
        {"stdin": "1", "expectedOutput": "1"}, {"name": "two", "stdin": "2"},
    ]  # fmt: skip
    assert client.get(f"/api/snippets/{plain}").json()["tests"] == []
    too_many = post(client, {"language": "python", "code": "1", "tests": tests + [{}]})
    assert too_many.status_code == 400 and too_many.json()["field"] == "tests"
    unknown = post(client, {"language": "python", "code": "1", "tests": [{"expected": "1"}]})
    assert unknown.status_code == 400 and "unknown field 'expected'" in unknown.json()["error"]
