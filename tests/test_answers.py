"""What `answering` gives a route (semsearch/answers.py), in-process: the options FastAPI reads to
publish /openapi.json. tests/test_openapi.py checks the published document against real answers;
this pins the options themselves, whole, in a few milliseconds."""

from __future__ import annotations

from typing import Annotated

from fastapi.responses import PlainTextResponse
from pydantic import WithJsonSchema

from semsearch.answers import (
    BIBTEX,
    ERRORS,
    PATCH,
    DiffResponse,
    ErrorAnswer,
    HealthAnswer,
    TaxonomyListed,
    answering,
)

EVERY = [403, 408, 413, 421, 422, 431, 500]


def _errors(*codes: int) -> dict:
    return {code: {"description": ERRORS[code], "model": ErrorAnswer} for code in codes}


def test_a_route_without_a_model_publishes_only_the_errors_every_route_can_give_in_order():
    assert answering() == {"responses": _errors(*EVERY)}
    assert list(answering(None, 503, 404, 403)["responses"]) == [403, 404, 408, 413, 421, 422, 431, 500, 503]


def test_a_json_answer_is_sent_as_the_dict_it_is_and_published_under_its_models_name():
    options = answering(HealthAnswer, 503)
    assert options == {
        "response_model": Annotated[dict, WithJsonSchema({"$ref": "#/components/schemas/HealthAnswer"})],
        "responses": {200: {"model": HealthAnswer}, **_errors(403, 408, 413, 421, 422, 431, 500, 503)},
    }
    assert list(options["responses"]) == [200, 403, 408, 413, 421, 422, 431, 500, 503]


def test_a_list_answer_is_published_as_an_array_of_its_items_model():
    options = answering(list[TaxonomyListed], 404)
    schema = {"type": "array", "items": {"$ref": "#/components/schemas/TaxonomyListed"}}
    assert options == {
        "response_model": Annotated[list[dict], WithJsonSchema(schema)],
        "responses": {200: {"model": list[TaxonomyListed]}, **_errors(403, 404, 408, 413, 421, 422, 431, 500)},
    }


def test_a_text_answer_is_published_as_a_string_of_its_type_and_its_errors_still_as_json():
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}}
    for text, media in ((BIBTEX, "text/plain"), (PATCH, "text/x-diff")):
        options = answering(text, 404)
        assert options == {
            "response_class": text.response_class,
            "responses": {
                200: {"description": text.description, "content": {media: {"schema": {"type": "string"}}}},
                **{code: {"description": ERRORS[code], **error} for code in (403, 404, 408, 413, 421, 422, 431, 500)},
            },
        }
    assert (BIBTEX.response_class, PATCH.response_class) == (PlainTextResponse, DiffResponse)
