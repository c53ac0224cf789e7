"""What the HTTP API answers, as /openapi.json publishes it: one model per answer (a `TextAnswer`
for BibTeX and a patch) and the one error body, for the routes of `semsearch.server`.

The models only describe answers: each route sends the service's dict as it is (the bytes the CLI's
--json and MCP give, and no model built per hit), published under the model's name (`answering`).
tests/test_openapi.py validates real answers against the published schema, so the two cannot drift
apart silently: a field these models do not name fails it (extra="forbid").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from semsearch.requests_models import DigestName

Share = Annotated[float, Field(ge=0, le=1)]
Moment = Annotated[str, Field(pattern=r"^\d{12}$", description="YYYYMMDDHHMM, UTC.")]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorAnswer(_Answer):
    """Every refusal and failure, whatever the status: one line, naming the field for bad input."""

    error: str = Field(examples=["k: Input should be less than or equal to 100"])


class Explanation(_Answer):
    """Why a hit ranks where it does (`explain=true`), as `search --explain` shows it."""

    dense: float = Field(description="Cosine of the question's and the paper's embeddings.")
    lexical: float = Field(ge=0, description="Raw BM25 of the question's words in the paper.")
    lexical_share: Share = Field(description="BM25 relative to the best match for the question.")
    category: str | None = Field(description="The paper's category that matched the question.")
    category_probability: Share = Field(description="The chance that the paper sits in the question's leaf.")
    direct: bool = Field(description="The best direct match of a question taken for one about a single paper.")
    question: Literal["an arXiv id", "one paper", "a kind of work", "not judged"]
    one_paper: Share = Field(description="The chance that the question asks about one paper.")
    taxonomy_weight: float = Field(ge=0, description="What the category evidence weighed for this question.")
    named: bool = Field(description="The question names this paper.")
    title_share: Share = Field(description="The share of the question's words (by IDF) its title holds.")
    beside_named: bool = Field(description="The question is a name alone: ranked by nearness to the named paper.")


class Hit(_Answer):
    """A paper in a list of results; `details=true` adds authors, venue, abstract and publication date."""

    id: str
    title: str
    score: Share = Field(description="Falls down the list.")
    year: int | None
    categories: list[str] = Field(description="Its taxonomy nodes (paths), in the taxonomy asked for.")
    category_source: str | None = Field(description='"survey", "user", "predicted" or "list": who placed it there.')
    url: str | None = Field(description="An http(s) link, never another kind.")
    explain: Explanation = Field(default=None, description="With explain=true.")
    authors: list[str] = Field(default=None, description="With details=true.")
    venue: str | None = Field(default=None, description="With details=true.")
    abstract: str = Field(default=None, description='With details=true ("" when the index has none).')
    published: str | None = Field(default=None, description="With details=true: the first version's date.")


class SearchAnswer(_Answer):
    query: str = Field(description="The question as it was read (cleaned, compatibility characters folded).")
    explanation: str = Field(default=None, description="With explain=true: in words, what put the first results first.")
    results: list[Hit]


class Suggestion(_Answer):
    category: str
    score: Share


class PathStep(_Answer):
    node: str
    probability: Share


class Neighbour(_Answer):
    id: str
    title: str
    categories: list[str]
    similarity: float = Field(description="Cosine of the two papers' embeddings.")


class ClassifyAnswer(_Answer):
    id: str | None = Field(description="The paper named, or the `id` sent with a text.")
    suggestions: list[Suggestion] = Field(max_length=3, description="Leaves, the likeliest first.")
    confidence: Share
    scope: Share = Field(description="The calibrated chance that the paper is about efficient LLMs at all.")
    scope_threshold: Share
    in_scope: bool = Field(description="scope >= scope_threshold.")
    path: list[PathStep] = Field(description="The first suggestion's ancestors and itself, each with its probability.")
    neighbours: list[Neighbour] = Field(description="The closest labelled papers.")


class RelatedAnswer(_Answer):
    id: str = Field(description="The paper's own id, however it was named.")
    results: list[Hit]


class RecommendAnswer(_Answer):
    likes: list[str]
    dislikes: list[str]
    results: list[Hit]


class PapersAnswer(_Answer):
    category: str = Field(description="The node's path.")
    results: list[Hit]


class Links(_Answer):
    arxiv: str = None
    pdf: str = None
    code: str = None
    page: str = None


class PaperAnswer(_Answer):
    id: str
    title: str
    year: int | None
    categories: list[str]
    category_source: str | None
    url: str | None
    authors: list[str]
    venue: str | None
    abstract: str
    published: str | None
    links: Links
    confidence: Share | None = Field(description="The classifier's, when its categories are predicted.")
    bibtex: str


class TaxonomyNode(_Answer):
    path: str
    name: str
    description: str | None
    papers: int = Field(ge=0, description="Papers under the node (in its subtree).")
    labelled: int = Field(ge=0, description="Of them, labelled (the rest predicted there).")
    children: list[TaxonomyNode]


class TaxonomyListed(_Answer):
    name: str
    nodes: list[str]
    papers: int = Field(ge=0)
    source: str = Field(default=None, description="Where a list was read from.")


class TrendsAnswer(_Answer):
    trends: dict[str, dict[str, Annotated[int, Field(ge=0)]]] = Field(description="{node path: {year: papers}}")


class HealthAnswer(_Answer):
    status: Literal["ok", "degraded"]
    generation: str
    papers: int = Field(default=None, ge=0)
    model: str = None
    reload_error: str = None
    integrity: str = None
    watch: dict[str, Any] = Field(default=None, description="With serve --watch-every: the watcher's state.")


class ClosestKnown(_Answer):
    id: str
    title: str
    categories: list[str]


class DigestPaper(_Answer):
    """A new paper a watch placed in scope, as its digest lists it."""

    id: str
    title: str
    url: str | None = Field(description="An http(s) link, never another kind.")
    category: str = Field(description="The taxonomy node it was placed under (its group's).")
    confidence: Share
    in_scope: bool = Field(description="Always true: a digest lists the papers in scope.")
    closest: list[ClosestKnown] = Field(description="The closest papers the index knew.")
    authors: list[str]
    snippet: str = Field(description="The opening of its abstract.")
    scope: Share | None = Field(
        description="The calibrated chance that it belongs to the taxonomy at all, as classify gives it "
        "(null in a digest saved before entries carried it)."
    )


class OverviewAnswer(_Answer):
    papers: int = Field(ge=0)
    with_abstract: int = Field(ge=0)
    survey_labelled: int = Field(ge=0)
    user_labelled: int = Field(ge=0)
    predicted: int = Field(ge=0)
    last_watch: str | None
    new_papers: dict[str, list[DigestPaper]] = Field(description="The last digest's papers by taxonomy node.")


class DigestListed(_Answer):
    name: DigestName = Field(description="<since>-<until>: what /api/digests/{name} takes.")
    since: Moment
    until: Moment
    papers: int = Field(ge=0, description="The new papers in scope it lists.")


class DigestSkipped(_Answer):
    file: str = Field(description="A file of the digests folder that is no readable digest.")
    reason: str


class DigestsAnswer(_Answer):
    digests: list[DigestListed] = Field(description="Newest first (by the end of its window).")
    skipped: list[DigestSkipped]


class DigestAnswer(_Answer):
    since: Moment
    until: Moment
    window: str = Field(description='The window in words: "1 Nov 2024 to 2 Nov 2024 08:38 UTC".')
    fetched: int = Field(ge=0, description="The papers read from arXiv in the window.")
    groups: dict[str, list[DigestPaper]] = Field(description="{taxonomy node: its new papers, most confident first}")


class Proposal(_Answer):
    id: str
    title: str
    node: str = Field(description="The list's heading it would go under.")
    confidence: Share
    line: str = Field(description='The line in the list\'s own format ("" when unsure: left out of the patch).')
    unsure: bool = Field(description="Placed with less than min_confidence.")


class ProposeAnswer(_Answer):
    taxonomy: str
    proposals: list[Proposal] = Field(description="Papers the index holds that the list lacks.")
    patch: str = Field(description="A unified diff against the list's README, of the proposals not unsure.")
    unsure: int = Field(ge=0, description="How many proposals are unsure.")
    removed: list[str] = Field(
        description="Papers the list's maintainers took out of its README (arXiv ids, else normalised titles): "
        "proposed again only when asked for by id."
    )


class GapPaper(_Answer):
    id: str
    title: str


class Gap(_Answer):
    name: str = Field(description="A suggested heading.")
    terms: list[str] = Field(description="The words its papers share.")
    parent: str = Field(description='The heading it would sit under ("" for the top level).')
    papers: list[GapPaper]


class GapsAnswer(_Answer):
    taxonomy: str
    papers: int = Field(ge=0, description="The papers the list lacks, that were looked at.")
    gaps: list[Gap] = Field(description="Topics the list has not named, nearest its own topic first.")


class LabelAnswer(_Answer):
    id: str
    category: str
    in_effect: bool = Field(description="False when the survey, or the list, files the paper otherwise.")
    taxonomy: str = None


class DiffResponse(PlainTextResponse):
    """A proposal's patch, as the type a diff is: so /openapi.json says the type the route sends."""

    media_type = "text/x-diff"


@dataclass(frozen=True)
class TextAnswer:
    """An answer that is text, not JSON: sent as `response_class`, published as a string of its type."""

    response_class: type[PlainTextResponse]
    description: str


BIBTEX = TextAnswer(PlainTextResponse, "BibTeX entries for the papers named, in the order named.")
PATCH = TextAnswer(DiffResponse, "The proposals as a unified diff against the list's README, to download.")

ERRORS = {
    400: "Not answerable as asked: an unknown category, years the wrong way round, a question with no letter.",
    403: "Writing is closed, or needs the server's token; or a page of another site asked (Sec-Fetch-Site).",
    404: "No such paper, taxonomy or digest.",
    408: "The request did not arrive whole within 30 s (its connection is closed).",
    413: "The body is over 1 MB (refused before it is read).",
    415: "The body is not sent as JSON (`Content-Type: application/json`).",
    421: "The Host header names another server.",
    422: "A parameter refused, named first (or one the route does not take).",
    431: "The request line and headers are over 128 KiB (refused before they are read whole).",
    500: "Internal error (logged; no trace is sent).",
    503: "The index cannot answer now (damaged with nothing intact, or busy writing): try again.",
}
EVERY_ROUTE = (403, 408, 413, 421, 422, 431, 500)  # 413: any body over the limit, a GET's too


def answering(model: Any = None, *errors: int) -> dict:
    """A route's options for /openapi.json: its answer published as `model` while the dict is sent
    as it is (the `dict` response model keeps FastAPI's serialisation, and so the bytes, as they
    were), and the statuses it can give besides, each with the one error body. A `TextAnswer`
    route's errors are JSON all the same (FastAPI would say text/plain, its answer's type)."""
    text = isinstance(model, TextAnswer)
    as_json = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}}
    responses: dict[int | str, dict] = {
        code: {"description": ERRORS[code], **(as_json if text else {"model": ErrorAnswer})}
        for code in sorted({*EVERY_ROUTE, *errors})
    }
    if text:
        sent = {model.response_class.media_type: {"schema": {"type": "string"}}}
        return {
            "response_class": model.response_class,
            "responses": {200: {"description": model.description, "content": sent}, **responses},
        }
    if model is None:
        return {"responses": responses}
    listed = get_origin(model) is list
    item = get_args(model)[0] if listed else model
    ref = {"$ref": f"#/components/schemas/{item.__name__}"}
    sent = Annotated[list[dict] if listed else dict, WithJsonSchema({"type": "array", "items": ref} if listed else ref)]
    return {"response_model": sent, "responses": {200: {"model": model}, **responses}}
