"""/openapi.json says what the API answers: each route's fields, their types and ranges, and every
status it can give with the one error body `{"error": "..."}`. Real answers are checked against it,
so the published schema cannot drift from them without a test failing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.test_server import with_a_list

ROOT = Path(__file__).resolve().parents[1]
PAPER = "2302.00003"  # a survey paper of the test corpus, with related work
CLASSIFY = {"title": "Evicting tokens from the cache", "abstract": "We keep heavy hitters and evict the rest."}


@pytest.fixture
def app(survey_corpus_index, tmp_path):
    """The app over an index holding a curated list (`mine`), with the Host check `serve` sets."""
    from semsearch.server import create_app

    with_a_list(survey_corpus_index, tmp_path)
    return create_app(index_dir=survey_corpus_index, reload_seconds=None, hosts=["testserver"])


def published(document: dict, path: str, method: str, status: int) -> Draft202012Validator:
    """The validator of the JSON answer `document` publishes for (path, method, status); a status it
    does not name for the route fails."""
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} gives {status}, not in /openapi.json"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    # The schema's refs (#/components/...) are resolved against the document's components.
    return Draft202012Validator({**schema, "components": document["components"]})


# (route as published, method, request as sent, status): each answer of the main routes, in its variants
ANSWERS = [
    ("/api/health", "get", ("/api/health", {}), 200),
    ("/api/overview", "get", ("/api/overview", {}), 200),
    ("/api/search", "get", ("/api/search", {"params": {"q": "speculative decoding draft model"}}), 200),
    (
        "/api/search",
        "get",
        ("/api/search", {"params": {"q": "cache", "k": 20, "explain": "true", "details": "true"}}),
        200,
    ),
    ("/api/search", "get", ("/api/search", {"params": {"q": "GPTQ", "explain": "true"}}), 200),  # a named paper
    ("/api/search", "get", ("/api/search", {"params": {"q": "cache", "taxonomy": "mine", "category": "Caches"}}), 200),
    ("/api/search", "get", ("/api/search", {"params": {"q": "x", "category": "Nope"}}), 400),
    ("/api/search", "get", ("/api/search", {"params": {"q": "x", "taxonomy": "nope"}}), 404),
    ("/api/search", "get", ("/api/search", {"params": {"q": "x", "k": 0}}), 422),
    ("/api/search", "get", ("/api/search", {"params": {"q": "x", "mode": "dense"}}), 422),
    ("/api/classify", "post", ("/api/classify", {"json": CLASSIFY}), 200),
    ("/api/classify", "post", ("/api/classify", {"json": {**CLASSIFY, "taxonomy": "mine"}}), 200),
    ("/api/classify", "post", ("/api/classify", {"json": {"id": PAPER}}), 200),
    ("/api/classify", "post", ("/api/classify", {"json": {"id": "nope"}}), 404),
    ("/api/classify", "post", ("/api/classify", {"json": {"title": "T"}}), 422),
    ("/api/classify", "post", ("/api/classify", {"content": b"x" * 1_000_001}), 413),
    ("/api/related/{paper_id}", "get", (f"/api/related/{PAPER}", {}), 200),
    (
        "/api/related/{paper_id}",
        "get",
        (f"/api/related/{PAPER}", {"params": {"diverse": "true", "details": "true"}}),
        200,
    ),
    ("/api/related/{paper_id}", "get", ("/api/related/nope", {}), 404),
    ("/api/recommend", "post", ("/api/recommend", {"json": {"likes": [PAPER], "k": 5}}), 200),
    ("/api/recommend", "post", ("/api/recommend", {"json": {"likes": ["nope"]}}), 404),
    ("/api/papers", "get", ("/api/papers", {"params": {"category": "Quantization", "details": "true"}}), 200),
    ("/api/papers", "get", ("/api/papers", {"params": {"category": "Caches", "taxonomy": "mine"}}), 200),
    ("/api/papers", "get", ("/api/papers", {"params": {"category": "Nope"}}), 400),
    ("/api/papers/{paper_id}", "get", ("/api/papers/2306.00978", {}), 200),  # labelled by the survey
    ("/api/papers/{paper_id}", "get", ("/api/papers/nope", {}), 404),
    ("/api/taxonomies", "get", ("/api/taxonomies", {}), 200),
    ("/api/taxonomy", "get", ("/api/taxonomy", {}), 200),
    ("/api/taxonomy", "get", ("/api/taxonomy", {"params": {"taxonomy": "mine"}}), 200),
    ("/api/taxonomy", "get", ("/api/taxonomy", {"params": {"taxonomy": "nope"}}), 404),
    ("/api/trends", "get", ("/api/trends", {"params": {"category": ["Quantization", "KV-Cache Optimization"]}}), 200),
    ("/api/trends", "get", ("/api/trends", {"params": {"category": "Caches", "taxonomy": "mine"}}), 200),
    ("/api/trends", "get", ("/api/trends", {"params": {"category": "Nope"}}), 400),
    ("/api/export", "get", ("/api/export", {"params": {"ids": "nope"}}), 404),
    ("/api/digests/{name}", "get", ("/api/digests/nope", {}), 404),
    ("/api/propose", "get", ("/api/propose", {"params": {"taxonomy": "nope"}}), 404),
    ("/api/gaps", "get", ("/api/gaps", {"params": {"taxonomy": "nope"}}), 404),
    ("/api/labels", "post", ("/api/labels", {"json": {"id": PAPER, "category": "Quantization"}}), 200),
    ("/api/labels", "post", ("/api/labels", {"json": {"id": PAPER, "category": "Nope"}}), 400),
    ("/api/labels", "post", ("/api/labels", {"json": {"id": PAPER, "category": "Caches", "taxonomy": "mine"}}), 200),
]


def test_every_answer_of_the_main_routes_is_what_the_schema_publishes(app):
    from fastapi.testclient import TestClient

    client = TestClient(app)
    document = client.get("/openapi.json").json()
    predicted_too = client.get("/api/papers", params={"category": "Speculative Decoding"}).json()["results"]
    predicted = [p["id"] for p in predicted_too if p["category_source"] == "predicted"][:1]
    paper_answers = [("/api/papers/{paper_id}", "get", (f"/api/papers/{i}", {}), 200) for i in predicted]
    for path, method, (url, request), status in ANSWERS + paper_answers:
        answer = client.request(method.upper(), url, **request)
        assert answer.status_code == status, (url, answer.text)
        problems = [e.message for e in published(document, path, method, status).iter_errors(answer.json())]
        assert problems == [], (url, problems[:3])
    assert predicted, "a paper placed by the classifier, whose `confidence` is a number"


def test_a_refusal_by_host_or_by_a_closed_door_is_published_too(survey_corpus_index):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    closed = TestClient(create_app(index_dir=survey_corpus_index, reload_seconds=None, writes=False, hosts=["x"]))
    document = closed.get("/openapi.json", headers={"Host": "x"}).json()
    for path, method, url, json_body, headers, status in [
        ("/api/search", "get", "/api/search?q=cache", None, {"Host": "evil.example"}, 421),
        ("/api/labels", "post", "/api/labels", {"id": PAPER, "category": "Quantization"}, {"Host": "x"}, 403),
    ]:
        answer = closed.request(method.upper(), url, json=json_body, headers=headers)
        assert answer.status_code == status
        assert list(published(document, path, method, status).iter_errors(answer.json())) == []


def test_errors_are_published_as_the_one_body_the_server_sends_not_fastapis(app):
    """FastAPI's own 422 (`{"detail": [...]}`) was published for every route, and nothing else,
    while every error is `{"error": "..."}`: 400, 404, 413, 421 and 503 were nowhere."""
    from fastapi.testclient import TestClient

    document = TestClient(app).get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(document)
    assert document["components"]["schemas"]["ErrorAnswer"] == {
        "properties": {"error": {"type": "string", "title": "Error", "examples": [
            "k: Input should be less than or equal to 100"]}},
        "additionalProperties": False, "type": "object", "required": ["error"], "title": "ErrorAnswer",
        "description": "Every refusal and failure, whatever the status: one line, naming the field for bad input.",
    }  # fmt: skip
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
            assert {"421", "422", "500"} <= set(errors), (method, path)
            for response in errors.values():
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}
                }, (method, path)


def test_the_main_answers_are_described_field_by_field_with_their_ranges(app):
    """Every 200 was `{"type": "object", "additionalProperties": true}`: a generated client was untyped."""
    from fastapi.testclient import TestClient

    document = TestClient(app).get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    answers = {
        "/api/search": "SearchAnswer", "/api/classify": "ClassifyAnswer", "/api/related/{paper_id}": "RelatedAnswer",
        "/api/recommend": "RecommendAnswer", "/api/papers": "PapersAnswer", "/api/papers/{paper_id}": "PaperAnswer",
        "/api/trends": "TrendsAnswer", "/api/health": "HealthAnswer", "/api/overview": "OverviewAnswer",
    }  # fmt: skip
    for path, name in answers.items():
        (operation,) = document["paths"][path].values()
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{name}"
        }
        assert schemas[name]["additionalProperties"] is False
    tree = document["paths"]["/api/taxonomy"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert tree["items"] == {"$ref": "#/components/schemas/TaxonomyNode"}
    score = schemas["Hit"]["properties"]["score"]
    assert (score["minimum"], score["maximum"]) == (0, 1)
    assert schemas["ClassifyAnswer"]["properties"]["in_scope"]["type"] == "boolean"
    assert schemas["ClassifyAnswer"]["properties"]["suggestions"]["maxItems"] == 3


@pytest.mark.slow
def test_schemathesis_finds_no_undocumented_status_body_or_type_at_a_real_server(survey_corpus_index, tmp_path):
    """Schemathesis's requests, generated from /openapi.json, at `semsearch serve` as a user runs it:
    every answer's status, content type and body as published, and no 5xx. (It found 13 statuses the
    schema did not name.) Not checked: whether the schema admits requests the server refuses."""
    from tests.test_server import serving

    with_a_list(survey_corpus_index, tmp_path)
    with serving(survey_corpus_index) as port:
        ran = subprocess.run(
            ["schemathesis", "run", f"http://127.0.0.1:{port}/openapi.json", "--checks",
             "status_code_conformance,response_schema_conformance,content_type_conformance,not_a_server_error",
             "--max-examples", "25", "--seed", "1", "--exclude-path", "/api/labels", "--no-color"],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:]
