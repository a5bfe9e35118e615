"""The OpenAPI document is generated from the code and describes the real API."""

from openapi_spec_validator import validate

from runner.doors.rest.tests.test_execute_api import RESULT_FIELDS


def test_it_is_a_valid_openapi_document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    validate(response.json())


def test_it_lists_every_endpoint(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths) == {
        "/api/execute",
        "/api/batch",
        "/api/run/{language}",
        "/api/runtimes",
        "/api/executions/{id}",
        "/api/openapi.json",
        "/api/snippets",
        "/api/snippets/{id}",
        "/api/usage",
    }
    assert list(paths["/api/execute"]) == ["post"]
    assert list(paths["/api/batch"]) == ["post"]
    assert {p["name"] for p in paths["/api/run/{language}"]["get"]["parameters"]} == {
        "language",
        "code",
        "stdin",
    }
    assert set(paths["/api/execute"]["post"]["responses"]) == {
        "200",
        "400",
        "401",
        "402",
        "404",
        "405",
        "413",
        "429",
        "503",
    }


def test_its_schemas_use_the_wire_field_names(client):
    schemas = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert list(schemas["RunResult"]["properties"]) == RESULT_FIELDS
    assert set(schemas["RunRequest"]["properties"]) == {
        "language",
        "code",
        "stdin",
        "args",
        "files",
        "timeout",
        "memory",
        "compileTimeout",
        "compileMemory",
        "compilerOptions",
        "runArgs",
        "tests",
        "compare",
        "tolerance",
        "stopOnFailure",
    }
    assert schemas["RunRequest"]["required"] == ["language", "code"]
    assert set(schemas["TestCaseRequest"]["properties"]) == {
        "name", "stdin", "args", "expectedOutput", "timeout", "memory",
    }  # fmt: skip
    assert "exitCode" in schemas["CaseResult"]["properties"]
    assert "difference" in schemas["CaseResult"]["properties"]
    status = schemas["RunResult"]["properties"]["status"]
    assert status["enum"] == [
        "ok", "error", "timeout", "memory", "output_limit", "killed", "compile_error", "failed",
    ]  # fmt: skip
    assert "createdAt" in schemas["ExecutionRecord"]["properties"]


def test_the_docs_page_renders_it_for_people(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    for text in ("/api/execute", "/api/run/{language}", "exitCode", "timedOut", "Run code"):
        assert text in page


def test_it_says_what_a_fuzzer_or_client_needs_to_know(client, settings):
    settings.RUNNER_MAX_TIMEOUT = 30_000
    doc = client.get("/api/openapi.json").json()
    assert set(doc["paths"]["/api/snippets"]["post"]["responses"]) >= {"200", "201"}
    timeout = next(
        o
        for o in doc["components"]["schemas"]["RunRequest"]["properties"]["timeout"]["anyOf"]
        if o.get("type") == "integer"
    )
    memory = next(
        o
        for o in doc["components"]["schemas"]["RunRequest"]["properties"]["memory"]["anyOf"]
        if o.get("type") == "integer"
    )
    assert (timeout["minimum"], timeout["maximum"]) == (1, 30_000)
    assert (memory["minimum"], memory["maximum"]) == (16, 1024)
    link = doc["paths"]["/api/execute"]["post"]["responses"]["200"]["links"]["GetExecution"]
    assert link == {
        "operationId": "execution",
        "parameters": {"id": "$response.body#/id"},
        "description": "The stored run, with its code and output.",
    }
    validate(doc)


def test_the_docs_page_names_each_bodys_own_schema(client, db):
    page = client.get("/api/docs").content.decode()
    assert 'href="#schema-SnippetRequest">SnippetRequest</a>' in page
    assert 'href="#schema-RunRequest">RunRequest</a>' in page
