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
DIGEST = "202411010000-202411020000"  # the watch's digest the app's index keeps


@pytest.fixture
def app(survey_corpus_index, tmp_path):
    """The app over an index holding a curated list (`mine`, whose README it keeps) and a watch's
    digest (beside a stray file its listing skips), with the Host check `serve` sets."""
    from semsearch.ingest import IngestReport
    from semsearch.server import create_app
    from semsearch.watch import DigestEntry, WatchReport, save_digest

    with_a_list(survey_corpus_index, tmp_path)
    entry = DigestEntry(
        "2411.00001", "Evicting tokens", "https://arxiv.org/abs/2411.00001", "Model-Centric Methods/KV-Cache", 0.8,
        True, closest=[{"id": PAPER, "title": "T", "categories": ["Model-Centric Methods"]}], authors=["G. Hopper"],
        snippet="We keep heavy hitters.",
    )  # fmt: skip
    save_digest(WatchReport(*DIGEST.split("-"), 1, [entry], IngestReport()), index_dir=survey_corpus_index)
    (survey_corpus_index / "digests" / "zzz.json").write_text("not a digest")
    return create_app(index_dir=survey_corpus_index, reload_seconds=None, hosts=["testserver"])


def published(
    document: dict, path: str, method: str, status: int, media: str = "application/json"
) -> Draft202012Validator:
    """The validator of the answer (JSON, or text of type `media`) `document` publishes for (path,
    method, status); a status or type it does not name for the route fails."""
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} gives {status}, not in /openapi.json"
    assert media in responses[str(status)]["content"], f"{method.upper()} {path} sends {media}, not in /openapi.json"
    schema = responses[str(status)]["content"][media]["schema"]
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
    # Any request with a body over the limit, a GET's too, is refused before it is read.
    ("/api/search", "get", ("/api/search", {"params": {"q": "x"}, "content": b"x" * 1_000_001}), 413),
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
    ("/api/export", "get", ("/api/export", {"params": {"ids": [PAPER, "2306.00978"]}}), 200),  # BibTeX, as text
    ("/api/export", "get", ("/api/export", {"params": {"ids": "nope"}}), 404),
    ("/api/digests", "get", ("/api/digests", {}), 200),  # one digest, one file skipped
    ("/api/digests", "get", ("/api/digests", {"params": {"taxonomy": "mine"}}), 200),  # none
    ("/api/digests/{name}", "get", (f"/api/digests/{DIGEST}", {}), 200),
    ("/api/digests/{name}", "get", ("/api/digests/nope", {}), 404),
    ("/api/propose", "get", ("/api/propose", {"params": {"taxonomy": "mine", "min_confidence": 0.6}}), 200),
    ("/api/propose", "get", ("/api/propose", {"params": {"taxonomy": "survey"}}), 400),  # no README kept
    ("/api/propose", "get", ("/api/propose", {"params": {"taxonomy": "nope"}}), 404),
    ("/api/propose/{taxonomy}.patch", "get", ("/api/propose/mine.patch", {}), 200),  # a diff, as text
    ("/api/gaps", "get", ("/api/gaps", {"params": {"taxonomy": "survey"}}), 200),  # a gap
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
        media = answer.headers["content-type"].partition(";")[0]
        body = answer.json() if media == "application/json" else answer.text
        problems = [e.message for e in published(document, path, method, status, media).iter_errors(body)]
        assert problems == [], (url, problems[:3])
    assert predicted, "a paper placed by the classifier, whose `confidence` is a number"
    gaps = client.get("/api/gaps", params={"taxonomy": "survey"}).json()["gaps"]
    listed = client.get("/api/digests").json()
    assert gaps and gaps[0]["papers"] and listed["digests"] and listed["skipped"], "answers with every part to check"
    assert client.get("/api/overview").json()["new_papers"], "the digest's papers, as the overview shows them"


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
        "/api/digests": "DigestsAnswer", "/api/digests/{name}": "DigestAnswer", "/api/propose": "ProposeAnswer",
        "/api/gaps": "GapsAnswer",
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
    assert schemas["OverviewAnswer"]["properties"]["new_papers"]["additionalProperties"]["items"] == {
        "$ref": "#/components/schemas/DigestPaper"
    }
    for path, media in [("/api/export", "text/plain"), ("/api/propose/{taxonomy}.patch", "text/x-diff")]:
        (operation,) = document["paths"][path].values()
        answer = operation["responses"]["200"]
        assert list(answer["content"]) == [media] and answer["content"][media]["schema"]["type"] == "string"
        assert answer["description"] != "Successful Response", path  # says what the text is


MISSING = object()  # a parameter left out
# What the server refuses by a request's form alone, as the published schema must refuse it too:
# (route, method, parameter or "body", the value as the schema reads it, the request as sent, status,
# error). A generated client (or schemathesis's positive data) sent these as valid and was refused.
REFUSED_BY_FORM = [
    ("/api/search", "get", "q", "???", ("/api/search", {"params": {"q": "???"}}), 400,
     "the question has no letter or digit to search by"),
    ("/api/search", "get", "q", "🚀", ("/api/search", {"params": {"q": "🚀"}}), 400,
     "the question has no letter or digit to search by"),
    ("/api/search", "get", "q", " \t", ("/api/search", {"params": {"q": " \t"}}), 422,
     "question: has no text (only white space or control characters)"),
    ("/api/classify", "post", "body", {}, ("/api/classify", {"json": {}}), 422,
     "title: Field required; abstract: Field required"),
    ("/api/classify", "post", "body", {"id": None}, ("/api/classify", {"json": {"id": None}}), 422,
     "title: Field required; abstract: Field required"),
    ("/api/classify", "post", "body", {"id": PAPER, "title": "T"},
     ("/api/classify", {"json": {"id": PAPER, "title": "T"}}), 422, "abstract: Field required"),
    ("/api/classify", "post", "body", {"title": " ", "abstract": "A"},
     ("/api/classify", {"json": {"title": " ", "abstract": "A"}}), 422,
     "title: has no text (only white space or control characters)"),
    ("/api/classify", "post", "body", {"title": "T", "abstract": "\u200b\x00"},
     ("/api/classify", {"json": {"title": "T", "abstract": "\u200b\x00"}}), 422,
     "abstract: has no text (only white space or control characters)"),
    ("/api/related/{paper_id}", "get", "paper_id", "x" * 201, ("/api/related/" + "x" * 201, {}), 422,
     "id: String should have at most 200 characters"),
    ("/api/papers/{paper_id}", "get", "paper_id", "x" * 201, ("/api/papers/" + "x" * 201, {}), 422,
     "id: String should have at most 200 characters"),
    ("/api/recommend", "post", "body", {"likes": [PAPER], "since": "2024-13-01"},
     ("/api/recommend", {"json": {"likes": [PAPER], "since": "2024-13-01"}}), 422, "since: expected a date YYYY-MM-DD"),
    ("/api/propose", "get", "since", "2024-13-01", ("/api/propose", {"params": {"since": "2024-13-01"}}), 422,
     "since: expected a date YYYY-MM-DD"),
    ("/api/propose", "get", "min_confidence", 2, ("/api/propose", {"params": {"min_confidence": 2}}), 422,
     "min_confidence: Input should be less than or equal to 1"),
    ("/api/propose", "get", "taxonomy", "x" * 61, ("/api/propose", {"params": {"taxonomy": "x" * 61}}), 422,
     "taxonomy: String should have at most 60 characters"),
    ("/api/propose/{taxonomy}.patch", "get", "min_confidence", -1,
     ("/api/propose/mine.patch", {"params": {"min_confidence": -1}}), 422,
     "min_confidence: Input should be greater than or equal to 0"),
    ("/api/propose/{taxonomy}.patch", "get", "since", "soon",
     ("/api/propose/mine.patch", {"params": {"since": "soon"}}), 422, "since: expected a date YYYY-MM-DD"),
    ("/api/propose/{taxonomy}.patch", "get", "taxonomy", "x" * 61, (f"/api/propose/{'x' * 61}.patch", {}), 422,
     "taxonomy: String should have at most 60 characters"),
    ("/api/gaps", "get", "since", "2024-02-30", ("/api/gaps", {"params": {"since": "2024-02-30"}}), 422,
     "since: expected a date YYYY-MM-DD"),
    # Python 3.11's date.fromisoformat reads ISO 8601's other forms too (3.10 refused them): taken by one
    # server and refused by another, and never what the schema's `date` (YYYY-MM-DD) names.
    ("/api/recommend", "post", "body", {"likes": [PAPER], "since": "20240101"},
     ("/api/recommend", {"json": {"likes": [PAPER], "since": "20240101"}}), 422, "since: expected a date YYYY-MM-DD"),
    ("/api/gaps", "get", "since", "2024-W01-1", ("/api/gaps", {"params": {"since": "2024-W01-1"}}), 422,
     "since: expected a date YYYY-MM-DD"),
    ("/api/gaps", "get", "taxonomy", "", ("/api/gaps", {"params": {"taxonomy": ""}}), 422,
     "taxonomy: String should have at least 1 character"),
    ("/api/export", "get", "ids", MISSING, ("/api/export", {}), 422, "ids: Field required"),
    ("/api/export", "get", "ids", [" ", ","], ("/api/export", {"params": {"ids": [" ", ","]}}), 422,
     "ids: List should have at least 1 item after validation, not 0"),
    ("/api/export", "get", "ids", ["a," + "x" * 201], ("/api/export", {"params": {"ids": "a," + "x" * 201}}), 422,
     "ids.1: String should have at most 200 characters"),
    ("/api/propose", "get", "ids", ["x" * 201], ("/api/propose", {"params": {"ids": "x" * 201}}), 422,
     "ids.0: String should have at most 200 characters"),
    # `ids=` named no paper, and was taken for no `ids`: every paper proposed (the CLI refused it).
    ("/api/propose", "get", "ids", [""], ("/api/propose", {"params": {"ids": ""}}), 422,
     "ids: List should have at least 1 item after validation, not 0"),
    ("/api/propose", "get", "ids", [",,"], ("/api/propose", {"params": {"ids": ",,"}}), 422,
     "ids: List should have at least 1 item after validation, not 0"),
    ("/api/digests/{name}", "get", "name", "nope", ("/api/digests/nope", {}), 404, "no digest 'nope'"),
]  # fmt: skip
# ...and what it takes of the same parameters, which the schema must take too.
TAKEN = [
    ("/api/search", "get", "q", ["量子化", "4?", "🚀 faster decoding", "GPTQ"]),
    ("/api/classify", "post", "body", [CLASSIFY, {"id": PAPER}, {"id": PAPER, "title": None, "abstract": None},
                                       {**CLASSIFY, "id": None}, {"title": "Ω?", "abstract": "é"}]),
    ("/api/related/{paper_id}", "get", "paper_id", [PAPER, "https://arxiv.org/abs/2306.00978v2"]),
    ("/api/recommend", "post", "body", [{"likes": [PAPER], "since": "2024-02-29"}]),
    ("/api/propose", "get", "min_confidence", [0, 0.5, 1]),
    ("/api/propose", "get", "since", ["2024-01-01"]),
    ("/api/export", "get", "ids", [["a,b"], ["a", " b "], [",".join(["x" * 200] * 3)]]),
    ("/api/propose", "get", "ids", [[], ["a,b"], ["a", " b "]]),
    ("/api/digests/{name}", "get", "name", ["202411010000-202411050000"]),
]  # fmt: skip


def request_schema(document: dict, path: str, method: str, where: str) -> tuple[Draft202012Validator, bool]:
    """The validator of a route's published parameter `where` (or its JSON body), formats checked
    as a generated client checks them, and whether the parameter is required."""
    operation = document["paths"][path][method]
    if where == "body":
        schema, required = operation["requestBody"]["content"]["application/json"]["schema"], True
    else:
        (parameter,) = [p for p in operation.get("parameters", []) if p["name"] == where]
        schema, required = parameter["schema"], parameter.get("required", False)
    checker = Draft202012Validator.FORMAT_CHECKER
    return Draft202012Validator({**schema, "components": document["components"]}, format_checker=checker), required


def test_what_the_server_refuses_by_its_form_the_schema_refuses_too(app):
    """The schema took a question of no letter or digit (`q=???`), a `since` of any text, a
    `min_confidence` of 7, a classify body of neither text nor id, an export without ids...: each
    refused by the server, as generated clients found out only by sending them. Each such refusal
    is now in /openapi.json, and the server's answer is as it was."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    document = client.get("/openapi.json").json()
    for path, method, where, value, (url, request), status, error in REFUSED_BY_FORM:
        validator, required = request_schema(document, path, method, where)
        if value is MISSING:
            assert required, (path, where)
        else:
            assert not validator.is_valid(value), (path, where, value)
        answer = client.request(method.upper(), url, **request)
        assert (answer.status_code, answer.json()) == (status, {"error": error}), (path, where, value)
    for path, method, where, values in TAKEN:
        validator, _ = request_schema(document, path, method, where)
        for value in values:
            assert validator.is_valid(value), (path, where, value, [e.message for e in validator.iter_errors(value)])


def test_the_questions_published_pattern_takes_no_question_the_server_refuses():
    """The pattern is read on the question as sent, the server's check on its compatibility form
    ("ＧＰＴＱ" is GPTQ): a letter that folds to no letter (U+FF9E, a half-width sound mark) is
    left out of the pattern, so no question it takes is then refused."""
    import re
    import sys
    import unicodedata

    from semsearch.requests_models import SEARCHABLE, SearchRequest
    from semsearch.search import check_query

    published = SearchRequest.model_json_schema()["properties"]["q"]["pattern"]
    assert published == SEARCHABLE.pattern
    pattern = re.compile(published)
    for c in map(chr, range(sys.maxunicode + 1)):
        if not "\ud800" <= c <= "\udfff" and unicodedata.normalize("NFKC", c) != c and pattern.search(c):
            assert check_query(c), hex(ord(c))  # refused: raises
    assert not pattern.search("\uff9e") and pattern.search("ｶﾞ") and pattern.search("量")


@pytest.mark.slow
def test_schemathesis_finds_no_undocumented_status_body_or_type_at_a_real_server(survey_corpus_index, tmp_path):
    """Schemathesis's requests, generated from /openapi.json, at `semsearch serve` as a user runs it:
    every answer's status, content type and body as published, and no 5xx. (It found 13 statuses the
    schema did not name.) A request the schema admits is answered, or refused only for what the
    index alone can tell (400: a category it lacks, a list whose README it does not keep; 404): no 422
    (it found eleven, from `q=` to `since=000000000`)."""
    from tests.test_server import serving

    with_a_list(survey_corpus_index, tmp_path)
    (tmp_path / "schemathesis.toml").write_text(
        '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "400", "404"]\n'
    )
    with serving(survey_corpus_index) as port:
        ran = subprocess.run(
            ["schemathesis", "run", f"http://127.0.0.1:{port}/openapi.json", "--checks",
             "status_code_conformance,response_schema_conformance,content_type_conformance,not_a_server_error,"
             "positive_data_acceptance",
             "--max-examples", "25", "--seed", "1", "--exclude-path", "/api/labels", "--no-color"],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:]
