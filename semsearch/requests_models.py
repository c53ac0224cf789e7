"""The arguments every door accepts, written once: the CLI, the HTTP API and the MCP tools read
what they are given through these models, so the three refuse the same input with the same words.

A refusal is one line, "field: message" (several joined by "; "), raised as `BadRequest` by
`parse`; the HTTP API answers the same line with 422. Text is cleaned the same way everywhere:
control characters become spaces and white space is collapsed; text with nothing left is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from semsearch.errors import SemsearchError
from semsearch.paper import YEARS, one_line
from semsearch.sources.curated import MAX_NAME

MAX_K = 100
MAX_QUESTION = 2000
MAX_TITLE = 1000
MAX_ABSTRACT = 20_000
MAX_TRENDS = 3  # nodes compared at once
MAX_ID = 200
MAX_CATEGORY = MAX_NAME  # no heading of a list is named longer: every node can be named
MAX_TAXONOMY_NAME = 60
MAX_IDS = 200  # papers in one export or recommendation
MAX_LIST = 500  # papers listed under a node
WHOLE_REFUSAL = "whole_refusal"  # a model's own refusal, which names its fields itself
# A question needs a letter or digit to search by ("???" and "🚀" answered ten papers at random):
# `search.check_query` looks for one in its compatibility form, and /openapi.json publishes it as the
# question's pattern, read as Python's `re` reads it (\w: str.isalnum, and "_"). The letters left out
# are those that fold to none (U+037A, Arabic isolated marks, half-width sound marks): never in a
# folded question, so the pattern takes no question the server refuses. (A sign that folds to
# letters, "™", is searched by the server though the pattern would not take it alone.) Anchored, with
# what comes before the letter spelled out: the same questions, but schemathesis (hypothesis) gave up
# generating them from the bare class in about a third of its runs ("too many filtered out").
FOLDS_TO_NO_LETTER = r"\u037a\ufc5e-\ufc63\ufe70\ufe72\ufe74\ufe76\ufe78\ufe7a\ufe7c\ufe7e\uff9e\uff9f"
SEARCHABLE = re.compile(rf"^[\s\S]*?[^\W_{FOLDS_TO_NO_LETTER}]")
DATE = {"format": "date"}  # YYYY-MM-DD, as JSON Schema names it; `_iso_date` checks it


def check_k(k: int) -> int:
    """`k` as the library takes it: from 1 to MAX_K, as every door does. More was silently fewer:
    `Searcher.search(q, k=10**6)` ranked its candidates (223 of 424 papers) and stopped there."""
    if k < 1:
        raise SemsearchError("k must be at least 1")
    if k > MAX_K:
        raise SemsearchError(f"k must be at most {MAX_K}")
    return k


class BadRequest(SemsearchError):
    """Arguments the request models refuse; the HTTP API answers 422 like FastAPI's own checks."""

    http_status = 422


def clean_text(value: str) -> str:
    """Control characters become spaces, white space is collapsed; nothing left is refused (a
    question of NULs or tabs says nothing, and would match papers at random)."""
    text = one_line(value)
    if not text:
        raise PydanticCustomError("blank", "has no text (only white space or control characters)")
    return text


ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def iso_day(value: str) -> str | None:
    """The date `value` names as YYYY-MM-DD, None if it names none that way: Python 3.11's
    date.fromisoformat reads "20240101" and "2024-W01-1" too (3.10 refused them), which the
    published `format: date` does not name. Every door's dates (`since`, the CLI's --since)."""
    try:
        return date.fromisoformat(value).isoformat() if ISO_DAY.fullmatch(value) else None
    except ValueError:
        return None


def _iso_date(value: str) -> str:
    if (day := iso_day(value)) is None:
        raise PydanticCustomError("date", "expected a date YYYY-MM-DD")
    return day


def has_letter(value: str) -> str:
    """A paper's text needs a letter or digit, as a question does: "..." was placed with a
    confident-looking answer, at random (the rule `search.check_query` reads a question by)."""
    if not SEARCHABLE.search(unicodedata.normalize("NFKC", value)):
        raise PydanticCustomError("no_letter", "has no letter or digit")
    return value


def Text(limit: int, *checks: Any) -> Any:  # noqa: N802 - reads as a type in the models below
    """Text of at most `limit` characters as sent, cleaned by `clean_text`, then read by `checks`;
    published with the pattern of a text with a letter or digit."""
    published = Field(max_length=limit, json_schema_extra={"pattern": SEARCHABLE.pattern})
    return Annotated[(str, published, AfterValidator(clean_text), *map(AfterValidator, checks))]


def _not_a_boolean(value: Any) -> Any:
    """JSON's true is not the number 1 (pydantic's lax mode takes it for one)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not a boolean")
    return value


# The constraints before the validator: after it, pydantic wrote them into the JSON Schema (MCP's
# tools/list, /openapi.json) as "ge"/"le", words JSON Schema lacks, so no client saw the limits.
# A before-validator runs first wherever it stands.
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many papers."), BeforeValidator(_not_a_boolean)]
Year = Annotated[int, Field(ge=YEARS[0], le=YEARS[1]), BeforeValidator(_not_a_boolean)]
PaperId = Annotated[str, Field(min_length=1, max_length=MAX_ID, description="An arXiv id or URL, or a paper's id.")]
Category = Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY, description="A taxonomy node: path or name.")]
TaxonomyName = Annotated[
    str, Field(min_length=1, max_length=MAX_TAXONOMY_NAME, description="A taxonomy added from a list.")
]
DIGEST_NAME = re.compile(r"\d{12}-\d{12}")  # <since>-<until>, each YYYYMMDDHHMM; no backtracking
# A name of another form is no digest's (404, from `watch.load_digest`): published, not checked here.
DigestName = Annotated[
    str,
    Field(
        max_length=25,
        description="<since>-<until>, as the digests list names it.",
        json_schema_extra={"pattern": f"^{DIGEST_NAME.pattern}$"},
    ),
]
IsoDate = Annotated[str, Field(max_length=10, json_schema_extra=DATE), AfterValidator(_iso_date)]
Day = Annotated[str, Field(json_schema_extra=DATE), AfterValidator(_iso_date)]  # IsoDate of any length as sent


class Request(BaseModel):
    """A request model's validator is built when first used, not on import: a command-line
    question validates a SearchRequest only, and building the nine models cost ~25 ms of it."""

    # A parameter no model names is refused, not ignored: `/api/search?q=kv&mode=dense` answered
    # in the default mode without a word.
    model_config = ConfigDict(defer_build=True, extra="forbid")


class SearchRequest(Request):
    """A question and its filters. Over HTTP the question is the query parameter `q`."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    question: Text(MAX_QUESTION) = Field(
        alias="q",
        description="The question, in plain words, with a letter or digit (in Unicode compatibility form).",
    )  # its letter is checked by search.check_query: a 400, as it was
    k: K = 10
    year_from: Year | None = None
    year_to: Year | None = None
    category: Category | None = None
    explain: bool = False
    details: bool = Field(default=False, description="Add authors, venue and abstract to each hit.")
    taxonomy: TaxonomyName | None = None


class ClassifyRequest(Request):
    """A paper to place: its title and abstract, or the `id` of a paper the index holds (its text is
    then the index's; any name related work takes). With a text, an `id` is only echoed back."""

    # `_text_or_id`'s rule, published: a title and an abstract, or an id and neither.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["title", "abstract"],
                    "properties": {"title": {"type": "string"}, "abstract": {"type": "string"}},
                },
                {
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "title": {"type": "null"}, "abstract": {"type": "null"}},
                },
            ]
        }
    )

    id: PaperId | None = None
    title: Text(MAX_TITLE, has_letter) | None = None
    abstract: Text(MAX_ABSTRACT, has_letter) | None = None
    taxonomy: TaxonomyName | None = None

    @model_validator(mode="after")
    def _text_or_id(self) -> ClassifyRequest:
        missing = [name for name in ("title", "abstract") if getattr(self, name) is None]
        if missing and not (self.id is not None and len(missing) == 2):
            # Said as pydantic says a missing field (the words every door used before `id` was taken).
            raise PydanticCustomError(WHOLE_REFUSAL, "; ".join(f"{name}: Field required" for name in missing))
        return self


class RelatedOptions(Request):
    k: K = 10
    diverse: bool = False
    details: bool = False
    taxonomy: TaxonomyName | None = None


class RelatedRequest(RelatedOptions):
    id: PaperId | None = None  # None: the CLI's --text and --arxiv forms name no paper of the index
    text: Text(MAX_TITLE + MAX_ABSTRACT, has_letter) | None = None  # the CLI's --text: a paper's title and abstract


class PaperRequest(Request):
    id: PaperId


class DigestRequest(Request):
    """A digest of a watch of arXiv: the newest when `name` is None; a list's watch's with `taxonomy`."""

    name: DigestName | None = None
    taxonomy: TaxonomyName | None = None


def _none_is_empty(value: Any) -> Any:
    return [] if value is None else value


# Papers, none when null: what a client sends for an argument it has no value for. The MCP tool
# took null and POST /api/recommend refused it ("Input should be a valid list"); read here, both take it.
PaperIdsOrNone = Annotated[
    list[PaperId],
    Field(max_length=MAX_IDS),
    BeforeValidator(_none_is_empty, json_schema_input_type=Annotated[list[PaperId], Field(max_length=MAX_IDS)] | None),
]


class RecommendRequest(Request):
    likes: list[PaperId] = Field(min_length=1, max_length=MAX_IDS)
    dislikes: PaperIdsOrNone = Field(default_factory=list)
    k: K = 10
    since: IsoDate | None = None
    details: bool = Field(default=False, description="Add authors, venue and abstract to each hit.")


class PapersRequest(Request):
    category: Category
    limit: int = Field(default=50, ge=1, le=MAX_LIST)
    details: bool = False
    taxonomy: TaxonomyName | None = None


class TrendsRequest(Request):
    category: list[Category] = Field(min_length=1, max_length=MAX_TRENDS)
    taxonomy: TaxonomyName | None = None  # a curated list's nodes (`taxonomy add`); the survey's when None


class TaxonomyRequest(Request):
    """Which taxonomy's tree: a curated list's (`taxonomy show NAME`), the survey's when None."""

    taxonomy: TaxonomyName | None = None


class ExportRequest(Request):
    ids: list[PaperId] = Field(min_length=1, max_length=MAX_IDS)


class LabelRequest(Request):
    id: PaperId
    category: Category
    taxonomy: TaxonomyName | None = None  # a curated list's (`taxonomy add`); the survey's when None


def _iso_moment(value: str) -> str:
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise PydanticCustomError(
            "datetime", "expected a date and time (ISO 8601, as `semsearch labels` writes)"
        ) from None


class LabelRecord(LabelRequest):
    """A line of `semsearch labels`, read back by `labels import`: strings as written (an id of
    null or 2402.01530 as a number was taken as "None" or "2402.0153"), its time checked (it is
    stored and shown), its "title" for people only."""

    model_config = ConfigDict(extra="ignore", strict=True)

    labelled_at: Annotated[str, Field(max_length=40), AfterValidator(_iso_moment)] | None = None


def _aliases(models: Iterable[type[BaseModel]]) -> dict[str, str]:
    return {f.alias: name for m in models for name, f in m.model_fields.items() if f.alias and f.alias != name}


ALIASES = _aliases([SearchRequest])  # a refusal names the field, not the HTTP spelling of it
# Every field a door may be given: a command-line option of one of these names is refused in its words.
FIELD_NAMES = frozenset(
    name
    for model in (
        SearchRequest,
        ClassifyRequest,
        RelatedRequest,
        PaperRequest,
        DigestRequest,
        RecommendRequest,
        PapersRequest,
        TrendsRequest,
        TaxonomyRequest,
        ExportRequest,
        LabelRequest,
    )  # fmt: skip
    for name in model.model_fields
)


def not_a_parameter(name: str, problem: str = "is not a parameter") -> str:
    """The refusal of a parameter (or argument) no model names, in the same words at every door;
    the name as sent, quoted when it is not a plain one (it may hold anything)."""
    return f"{name if name.isidentifier() and len(name) <= 40 else repr(name[:40])}: {problem}"


# pydantic says "unable to parse raw data as a unicode string": a command line's byte that is not
# UTF-8 (Python keeps it as a lone surrogate) or a JSON body's lone "\ud800".
NOT_UNICODE = "is not valid text (a byte that is not UTF-8, or a lone surrogate)"


def describe(errors: Iterable[dict]) -> str:
    """Pydantic's (or FastAPI's) errors as one line: "field: message; field: message". A field is
    named as every door knows it ("question", over HTTP `q`); a parameter no model takes, as sent."""
    parts = []
    for problem in errors:
        if problem.get("type") == "json_invalid":  # FastAPI's loc is ("body", character offset)
            parts.append("body: is not valid JSON")
            continue
        loc = [str(p) for p in problem.get("loc", ())]
        if len(loc) > 1 and loc[0] in ("query", "body", "path"):  # FastAPI's: where it was sent, then what
            loc = loc[1:]  # (a parameter of one of these names is named: it was "''")
        if problem.get("type") == WHOLE_REFUSAL:
            parts.append(problem["msg"])
            continue
        if problem.get("type") == "extra_forbidden":
            parts.append(not_a_parameter(".".join(loc)))
            continue
        if loc:
            loc[0] = ALIASES.get(loc[0], loc[0])
        message = NOT_UNICODE if problem.get("type") == "string_unicode" else problem.get("msg", "invalid")
        parts.append(f"{'.'.join(loc) or 'body'}: {message}")
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def as_utf8(value: Any) -> Any:
    """A command-line argument as the UTF-8 its bytes are: under a locale that is not UTF-8
    (`LC_ALL=C PYTHONUTF8=0`) Python reads `Nyströmformer` byte by byte as lone surrogates, which
    were refused as "not valid text". Bytes that are no UTF-8 stay as they were (and are refused);
    lists are read item by item."""
    if isinstance(value, list):
        return [as_utf8(item) for item in value]
    if not isinstance(value, str) or not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value


def parse(model: type[M], **arguments: Any) -> M:
    """`model` from the arguments a door was given, or `BadRequest` with the one-line refusal. An
    argument given as None is left out: a required one is then "Field required", as over HTTP."""
    try:
        return model.model_validate({name: as_utf8(value) for name, value in arguments.items() if value is not None})
    except ValidationError as err:
        raise BadRequest(describe(err.errors())) from None
