"""`semsearch serve`: a JSON API mirroring the CLI, and a page to ask, browse and classify.

HTTP concerns only (validation, limits, one error shape, the token for writing); the answers
come from `semsearch.service`, which follows the index as it is published and runs requests in
parallel.
"""

from __future__ import annotations

import hmac
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema
from starlette.exceptions import HTTPException

from semsearch.answers import (
    BIBTEX,
    PATCH,
    ClassifyAnswer,
    DigestAnswer,
    DigestsAnswer,
    GapsAnswer,
    HealthAnswer,
    LabelAnswer,
    OverviewAnswer,
    PaperAnswer,
    PapersAnswer,
    ProposeAnswer,
    RecommendAnswer,
    RelatedAnswer,
    SearchAnswer,
    TaxonomyListed,
    TaxonomyNode,
    TrendsAnswer,
    answering,
)
from semsearch.bibtex import split_ids
from semsearch.errors import NotFound, SemsearchError
from semsearch.propose import MinConfidence, ProposeRequest
from semsearch.requests_models import (
    MAX_ID,
    BadRequest,
    ClassifyRequest,
    Day,
    DigestName,
    ExportRequest,
    LabelRequest,
    PaperId,
    PaperRequest,
    PapersRequest,
    RecommendRequest,
    RelatedOptions,
    RelatedRequest,
    SearchRequest,
    TaxonomyName,
    TaxonomyRequest,
    TrendsRequest,
    describe,
    not_a_parameter,
    parse,
)
from semsearch.service import RELOAD_SECONDS, Service
from semsearch.taxonomy import UnknownCategory

# FastAPI reads a request model given as `Annotated[Model, Query()]` through a Field that carries the
# parameter's alias; pydantic >= 2.12 warns that such an alias has no effect, on every route's first
# request (the models are built when first used). The fields' own aliases (`q`) still apply, as the
# API tests check: the warning is about FastAPI's wrapper, not about anything a user can change.
warnings.filterwarnings("ignore", message="The 'alias' attribute with value", module="pydantic")

MAX_BODY = 1_000_000  # bytes; larger bodies get 413 before they are read
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WEB = files("semsearch") / "web"
# The page runs only its own script and style, fetches only from this server, and is never framed:
# a title or URL that got past every other check still cannot run as script.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
log = logging.getLogger("semsearch.server")
ATOM_TYPE = "application/atom+xml; charset=utf-8"


# Paper ids as one value of a query gives them, `a,b`: each at most MAX_ID characters (checked once
# split, by ExportRequest and ProposeRequest). That they are at most MAX_IDS in all, no rule on one
# value can say (with `maxItems` published too, generated URLs grew past what uvicorn reads: its own 400).
ID_LIST = rf"[^,]{{0,{MAX_ID}}}(?:,[^,]{{0,{MAX_ID}}})*"
NAMING_IDS = rf"^(?=[\s\S]*[^\s,]){ID_LIST}$"  # a value of `ids` names a paper: `ids=` and `ids=,,` name none


class _ListQuery(BaseModel):
    """A query about a list's papers, checked again by ProposeRequest (the CLI's and MCP's), whose
    rules its fields take, so /openapi.json states them. A parameter it does not name is refused, as
    by every request model."""

    model_config = ConfigDict(extra="forbid")
    since: Day | None = None

    def model_dump(self, **kwargs):  # None means: the request's default; ids as `a,b` or repeated, as for export
        data = {k: v for k, v in super().model_dump(**kwargs).items() if v is not None}
        if "ids" in data:
            data["ids"] = split_ids(data["ids"])
        return data


class GapsQuery(_ListQuery):
    taxonomy: TaxonomyName = "survey"


class PatchQuery(_ListQuery):
    """`/api/propose/{taxonomy}.patch`'s query: the taxonomy is in the path."""

    ids: list[Annotated[str, Field(json_schema_extra={"pattern": NAMING_IDS})]] | None = None
    min_confidence: MinConfidence | None = None


class ProposeQuery(PatchQuery):
    taxonomy: TaxonomyName = "survey"


class DigestsQuery(BaseModel):
    """Whose digests: the survey's watch, or a curated list's (`watch --taxonomy NAME`)."""

    model_config = ConfigDict(extra="forbid")
    taxonomy: TaxonomyName | None = None


class ExportQuery(BaseModel):
    """ExportRequest's `ids` as a query gives them, checked by it once split (its refusals as they
    were); published as ID_LIST, each value naming a paper."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(json_schema_extra={"pattern": NAMING_IDS})]] = Field(
        description="Papers to cite: `ids=a,b`, or `ids=a&ids=b`, or both.", json_schema_extra={"minItems": 1}
    )


def published_as(annotation: Any) -> WithJsonSchema:
    """A path parameter checked inside its route by a request model (so a refusal names the model's
    field, `id`, at every door), published with that model's rules."""
    return WithJsonSchema(TypeAdapter(annotation).json_schema())


def _no_stray_parameters(request: Request) -> None:
    """An API route that takes no query parameter refuses one, as the request models refuse a
    parameter they do not name (`/api/taxonomies?taxonomy=kv` answered as if none was given). The
    page's own routes are left alone: its script reads their query."""
    route = request.scope.get("route")
    if not request.url.path.startswith("/api/") or route is None:
        return
    if not route.dependant.query_params:
        for name in request.query_params:
            raise BadRequest(not_a_parameter(name))
    # A parameter of one value given twice (`q=kv&q=quant`) is refused: the last silently won.
    given = Counter(name for name, _ in request.query_params.multi_items())  # counted once, not rescanned per name
    for name in (name for name, times in given.items() if times > 1):
        if name in _single_parameters(route):
            raise BadRequest(not_a_parameter(name, "is given more than once (it takes one value)"))


def _json_body(request: Request) -> None:
    """A route that reads a JSON body takes only a body that says it is JSON (`Content-Type:
    application/json`). A form's body (`curl -d`) was refused as "body: Input should be a valid
    dictionary", which did not say what was wrong; and a body saying nothing was read as JSON by
    FastAPI before 0.132, so a page on any site could post a label to a server on loopback without
    asking first (a browser sends a Blob with no type across sites without a preflight)."""
    route = request.scope.get("route")
    if route is None or getattr(route, "body_field", None) is None:
        return
    given = request.headers.get("content-type", "")
    kind = given.partition(";")[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        shown = repr(given[:60]) if given else "none"
        raise UnsupportedMediaType(f"body: send it as JSON, with Content-Type: application/json (given: {shown})")


def _single_parameters(route) -> set[str]:
    """The query parameters of `route` that take one value, by name and alias (not `ids=a&ids=b`)."""
    names = set()
    for parameter in route.dependant.query_params:
        model = parameter.field_info.annotation
        for name, field in getattr(model, "model_fields", {}).items():
            if not (get_origin(field.annotation) is list or list in map(get_origin, get_args(field.annotation))):
                names |= {name, field.alias or name}
    return names


def _safe_file(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "list"


class Forbidden(SemsearchError):
    http_status = 403


class UnsupportedMediaType(SemsearchError):
    http_status = 415


class LimitBody:
    """ASGI middleware: a body over MAX_BODY bytes is refused with 413 before it is parsed."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        received, too_large = 0, False

        async def counted():  # a body without a declared length is counted as it arrives
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                too_large = True
                return {"type": "http.disconnect"}  # the app stops reading; its answer is replaced below
            return message

        async def unless_too_large(message):
            if not too_large:
                await send(message)

        try:
            await self.app(scope, counted, unless_too_large)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send) -> None:
        response = JSONResponse({"error": f"the request body is over {self.limit} bytes"}, status_code=413)
        await response(scope, receive, send)


def host_name(header: str) -> str:
    """The name a Host header gives, lower case, without port or brackets: "[::1]:8000" -> "::1"."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:  # name:port (a bare IPv6 address has more colons and no port)
        value = value.partition(":")[0]
    return value.rstrip(".")


class CheckHost:
    """ASGI middleware: a request whose Host header is not one of `names` (any port) is refused
    with 421. A page on another site that rebinds its DNS name to 127.0.0.1 reaches this server
    with its own name in Host, so it can neither read the index nor post labels."""

    def __init__(self, app, names: Iterable[str]):
        # An empty name is no name: '' (from `serve --host ''`) admitted a request with an empty Host.
        self.app, self.names = app, frozenset(host_name(n) for n in names) - {""}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = [value.decode("latin-1") for name, value in scope.get("headers") or [] if name == b"host"]
        header = given[0] if given else ""
        if len(given) == 1 and host_name(header) in self.names:
            return await self.app(scope, receive, send)
        if len(given) > 1:  # checked by one, URLs built from another: a foreign name got into feed links
            message = f"a request names one host; this one gave {len(given)} Host headers"
        else:
            shown = header[:100] if given else "(none)"
            message = f"the Host header {shown!r} is not this server's name (serve --allow-host NAME admits one)"
        await JSONResponse({"error": message}, status_code=421)(scope, receive, send)


class SameSiteOnly:
    """ASGI middleware: a browser's request made by a page of another site (`Sec-Fetch-Site:
    cross-site`), other than following a link to this server (`Sec-Fetch-Mode: navigate` to a whole
    window, `Sec-Fetch-Dest: document`), is refused with 403. Such a page cannot read the answers (no
    CORS header is sent), but while it was open it could make the server work for it, unseen: each
    `GET /api/gaps` costs seconds of CPU, and a frame it loads (dest `iframe`) navigates too.
    Tools (curl, feed readers, MCP) send no such header; this server's own page is same-origin."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            mode, dest = headers.get(b"sec-fetch-mode"), headers.get(b"sec-fetch-dest", b"document")
            followed = mode == b"navigate" and dest == b"document"
            if headers.get(b"sec-fetch-site") == b"cross-site" and not followed:
                message = "a page of another site cannot ask this server (Sec-Fetch-Site: cross-site)"
                return await JSONResponse({"error": message}, status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)


class NoSniff:
    """ASGI middleware: every answer says `X-Content-Type-Options: nosniff`, so a browser never
    runs JSON or text it was given as script or a page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, with_header)


class HeadAsGet:
    """ASGI middleware: HEAD is answered wherever GET is (RFC 9110), with GET's status and headers
    (its content-length too) and no body, so no route has to list HEAD (FastAPI's routes answered
    it 405)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def without_body(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server's own scope still says HEAD, so it sends no body whatever it is given.
        await self.app({**scope, "method": "GET"}, receive, without_body)


def unreadable_body(cause: BaseException | None) -> str:
    """Why a JSON body could not be read, by what the parser raised: every one of them was called
    "a byte that is not UTF-8", a body 2,000 arrays deep (4 kB) or with a number of 5,000 digits too."""
    if isinstance(cause, RecursionError):
        return "body: is nested too deep to read (arrays or objects inside one another)"
    if isinstance(cause, ValueError) and not isinstance(cause, UnicodeError) and "digits" in str(cause):
        return "body: holds a number of more digits than can be read (4,300 at most)"
    if isinstance(cause, UnicodeError):
        return "body: is not valid JSON (a byte that is not UTF-8)"
    return "body: is not valid JSON"


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether `authorization` is `Bearer TOKEN`, compared as bytes: hmac.compare_digest takes no
    non-ASCII str (a 500). The header is the bytes the client sent (the ASGI server reads them as
    Latin-1); the token is the UTF-8 a client sends for it, and an argument that was no UTF-8 its
    own bytes again (surrogateescape, as Python read it)."""
    try:
        given = (authorization or "").encode("latin-1")
    except UnicodeEncodeError:  # not a header's bytes: no client could have sent the token
        return False
    # The scheme in any case, then one space or more (RFC 9110, 11.4): `bearer TOKEN` was refused.
    scheme, _, credentials = given.partition(b" ")
    credentials = credentials.lstrip(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(credentials, token.encode("utf-8", "surrogateescape"))


def create_app(
    *,
    index_dir: str | Path | None = None,
    reload_seconds: float | None = RELOAD_SECONDS,
    watch_seconds: float | None = None,
    token: str | None = None,
    writes: bool = True,
    hosts: Iterable[str] | None = None,
    watched_elsewhere: bool = False,
    watcher_pid: int | None = None,
) -> FastAPI:
    """The app over the index at `index_dir`. Writing endpoints (labels) need `Authorization:
    Bearer TOKEN` when a token is set, and are closed when `writes` is False. `hosts`: the names a
    request's Host header may give (any port); None admits any, for an app mounted in another
    server or a test client (`serve` always passes them). With `watch_seconds` it watches arXiv
    itself; `watched_elsewhere` says another process does (health reports it), `watcher_pid` which one."""
    service = Service(index_dir=index_dir)
    stopping: list[Callable[[], None]] = []  # called at shutdown: the reload thread and the watch stop

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if watch_seconds:
            # Begun here, once the server takes Ctrl-C and SIGTERM as its own stop (uvicorn's handlers),
            # not as the app was made: Ctrl-C in the server's first second, its watch already asking
            # arXiv, ended the process there ("interrupted", or uvicorn's exit 3), the watch's thread cut
            # where it stood and its status left saying "running".
            stopping.append(_start_watching(service.directory, watch_seconds, service).close)
        yield
        for stop in stopping:
            stop()

    app = FastAPI(
        title="semsearch",
        description="Semantic search, taxonomy suggestions and related work for the efficient-LLM literature.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: blank offline. The page documents the
        redoc_url=None,  # API itself at /docs, from /openapi.json, with nothing from another host.
        dependencies=[Depends(_no_stray_parameters), Depends(_json_body)],
    )
    app.state.service = service
    if reload_seconds:
        stopping.append(service.follow(reload_seconds).set)
    if watched_elsewhere and not watch_seconds:  # `serve --workers N`: the parent watches, its status beside the index
        from semsearch.watch import read_watch_status

        service.watch_status = lambda: read_watch_status(index_dir=service.directory, watcher=watcher_pid)
    app.add_middleware(LimitBody)
    app.add_middleware(SameSiteOnly)  # before the body is read
    app.add_middleware(NoSniff)
    if hosts is not None:
        app.add_middleware(CheckHost, names=hosts)  # outside the others: refused before anything is read
    app.add_middleware(HeadAsGet)  # the outermost: every answer to HEAD (a 421 or 413 too) loses its body

    @app.exception_handler(SemsearchError)
    async def user_error(request: Request, err: SemsearchError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": describe(err.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:  # never a stack trace to the client
        log.exception("semsearch serve: internal error", exc_info=err)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:  # unknown routes, wrong methods
        if err.status_code == 400 and err.detail == "There was an error parsing the body":  # FastAPI's words
            # for a body its JSON parser could not read; one that is not JSON at all was already 422 in ours
            return JSONResponse({"error": unreadable_body(err.__cause__)}, status_code=422)
        headers = dict(err.headers or {})  # a 405's Allow: the methods the route does take
        if "GET" in headers.get("Allow", "").split(", "):
            headers["Allow"] += ", HEAD"  # answered by HeadAsGet
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=headers)

    def check_token(authorization: str | None) -> None:
        if not writes:
            raise Forbidden("writing is closed: serving beyond loopback (--host, --allow-host) needs --token")
        if token is not None and not token_matches(authorization, token):
            raise Forbidden("writing needs the server's token (Authorization: Bearer TOKEN)")

    @app.get("/api/health", **answering(HealthAnswer))
    def health() -> dict:
        return service.health()

    @app.get("/api/overview", **answering(OverviewAnswer, 503))
    def overview() -> dict:
        """What the index holds, the last watch, and the new papers it found."""
        return service.overview()

    @app.get("/api/search", **answering(SearchAnswer, 400, 404, 503))
    def search(request: Annotated[SearchRequest, Query()]) -> dict:
        return service.search(
            request.question, request.k, year_from=request.year_from, year_to=request.year_to,
            category=request.category, explain=request.explain, details=request.details, taxonomy=request.taxonomy,
        )  # fmt: skip

    @app.post("/api/classify", **answering(ClassifyAnswer, 400, 404, 415, 503))
    def classify(request: ClassifyRequest) -> dict:
        return service.classify(request.title, request.abstract, request.taxonomy, paper_id=request.id)

    @app.get("/api/related/{paper_id:path}", **answering(RelatedAnswer, 400, 404, 503))
    def related(paper_id: Annotated[str, published_as(PaperId)], options: Annotated[RelatedOptions, Query()]) -> dict:
        request = parse(RelatedRequest, id=paper_id, **options.model_dump())
        return service.related(
            request.id, request.k, diverse=request.diverse, details=request.details, taxonomy=request.taxonomy
        )

    @app.post("/api/recommend", **answering(RecommendAnswer, 400, 404, 415, 503))
    def recommend(request: Annotated[RecommendRequest, Body()]) -> dict:
        return service.recommend(request.likes, request.dislikes, request.k, request.since, details=request.details)

    @app.get("/api/papers", **answering(PapersAnswer, 400, 404, 503))
    def papers_under(request: Annotated[PapersRequest, Query()]) -> dict:
        """Papers under a taxonomy node (labelled there by the survey or a user, or predicted there)."""
        return service.papers_under(request.category, request.limit, details=request.details, taxonomy=request.taxonomy)

    @app.get("/api/papers/{paper_id:path}", **answering(PaperAnswer, 404, 503))
    def paper(paper_id: Annotated[str, published_as(PaperId)]) -> dict:
        return service.paper(parse(PaperRequest, id=paper_id).id)

    @app.post("/api/labels", **answering(LabelAnswer, 400, 403, 404, 415, 503))
    def label(request: LabelRequest, authorization: Annotated[str | None, Header()] = None) -> dict:
        """Confirm a paper's category (stored as your label; it trains later suggestions)."""
        check_token(authorization)
        return service.label(request.id, request.category, request.taxonomy)

    @app.get("/api/taxonomies", **answering(list[TaxonomyListed], 503))
    def taxonomies() -> list[dict]:
        """The survey's taxonomy and those added from curated lists: name, nodes, papers."""
        return service.taxonomies()

    @app.get("/api/taxonomy", **answering(list[TaxonomyNode], 404, 503))
    def taxonomy(request: Annotated[TaxonomyRequest, Query()]) -> list[dict]:
        """The taxonomy (the survey's, or `taxonomy`, a list's) as a tree with its paper counts."""
        return service.taxonomy(request.taxonomy)

    @app.get("/api/trends", **answering(TrendsAnswer, 400, 404, 503))
    def trends(request: Annotated[TrendsRequest, Query()]) -> dict:
        """Papers per year under each node: `{"trends": {node path: {year: count}}}`."""
        return service.trends(request.category, request.taxonomy)

    @app.get("/api/export", **answering(BIBTEX, 404, 503))
    def export(request: Annotated[ExportQuery, Query()]) -> str:
        """BibTeX entries for the papers named, in the order named."""
        return service.export(parse(ExportRequest, ids=split_ids(request.ids)).ids)

    @app.get("/api/digests", **answering(DigestsAnswer, 404, 503))
    def digests(request: Annotated[DigestsQuery, Query()]) -> dict:
        """The digests of finished watches (the survey's, or `taxonomy`'s), newest first."""
        return service.digests(request.taxonomy)

    @app.get("/api/digests/{name}", **answering(DigestAnswer, 404, 503))
    def digest(name: Annotated[str, published_as(DigestName)], request: Annotated[DigestsQuery, Query()]) -> dict:
        """One digest: its in-scope new papers grouped by taxonomy node."""
        return service.digest(name, request.taxonomy)

    @app.get("/api/propose", **answering(ProposeAnswer, 400, 404, 503))
    def propose(request: Annotated[ProposeQuery, Query()]) -> dict:
        """The papers a list lacks, placed under its headings: {"proposals": [...], "patch", "unsure"}."""
        return service.propose(parse(ProposeRequest, **request.model_dump()))

    @app.get("/api/propose/{taxonomy}.patch", **answering(PATCH, 400, 404, 503))
    def propose_patch(
        taxonomy: Annotated[str, published_as(TaxonomyName)], request: Annotated[PatchQuery, Query()]
    ) -> PlainTextResponse:
        """The proposals as a unified diff against the list's README, to download."""
        found = service.propose(parse(ProposeRequest, **(request.model_dump() | {"taxonomy": taxonomy})))
        return PlainTextResponse(
            found["patch"],
            media_type="text/x-diff",
            headers={"Content-Disposition": f'attachment; filename="{_safe_file(taxonomy)}.patch"'},
        )

    @app.get("/api/gaps", **answering(GapsAnswer, 400, 404, 503))
    def gaps(request: Annotated[GapsQuery, Query()]) -> dict:
        """Topics the list has not named: groups of papers it lacks, with a name and a parent heading."""
        checked = parse(ProposeRequest, **request.model_dump())
        return service.gaps(checked.taxonomy, checked.since)

    @app.get("/feeds/digests.atom", include_in_schema=False)
    def digests_feed(request: Request, taxonomy: Annotated[TaxonomyName | None, Query()] = None) -> Response:
        # Other parameters are left alone, as on the page's routes: feed readers add their own (utm_...).
        return Response(service.digests_feed(str(request.base_url), taxonomy), media_type=ATOM_TYPE)

    @app.get("/feeds/{taxonomy}/{node:path}", include_in_schema=False)
    def node_feed(taxonomy: str, node: str, request: Request) -> Response:
        """The newest papers under a node, as Atom: /feeds/{taxonomy}/{node path}.atom."""
        if not node.endswith(".atom"):
            raise NotFound("a feed's address ends in .atom")
        checked = parse(PapersRequest, category=node.removesuffix(".atom"), taxonomy=taxonomy)
        try:
            body = service.node_feed(checked.category, checked.taxonomy, str(request.base_url))
        except UnknownCategory as err:  # the feed's address names nothing
            raise NotFound(str(err)) from None
        return Response(body, media_type=ATOM_TYPE)

    def web_file(name: str, media_type: str) -> FileResponse:
        return FileResponse(str(WEB / name), media_type=media_type, headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return web_file("index.html", "text/html")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> FileResponse:  # the page's API view, rendered from /openapi.json
        return web_file("index.html", "text/html")

    @app.get("/paper/{paper_id:path}", include_in_schema=False)
    def paper_page(paper_id: str) -> FileResponse:  # the page shows the paper view for this path
        return web_file("index.html", "text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        allowed = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
        if name not in allowed:
            raise NotFound(f"no file {name}")
        return web_file(name, allowed[name])

    return app


def _start_watching(directory: Path, seconds: float, service: Service | None = None):
    """`serve --watch-every`: the watch in a daemon thread (its status in `service`'s health, its
    failures one log line each, retried at the next turn); what it publishes is picked up by the
    reload like any other publish. The Watcher returned stops with `close()`."""
    import semsearch.sources.arxiv  # noqa: F401 - imported here, not first in the watch's thread (below)
    from semsearch.watch import Watcher

    # `requests` silences urllib3's "SOCKS support requires PySocks" DependencyWarning with a global
    # filter as it is imported; imported in the watch's thread while the server's own imports saved
    # and restored the filters (`warnings.catch_warnings`, not thread-safe), the filter was lost and
    # most starts printed that warning on stderr.
    watcher = Watcher(seconds, index_dir=directory)
    if service is not None:
        service.watch_status = watcher.status
    return watcher.start()


PARENT_CHECK_SECONDS = 1.0  # how often a worker of `serve --workers N` looks for the server that started it


def _end_with_parent(parent: int) -> None:
    """End this worker of `serve --workers N` once the server that started it is gone. Killed with
    SIGKILL (the OOM killer, `kill -9`), the server left its workers serving its port, and starting
    it again failed ("address already in use") until someone found and killed them by hand."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own shutdown: requests under way are answered

    threading.Thread(target=watch, name="semsearch-parent", daemon=True).start()


def app_from_environment() -> FastAPI:
    """The app for each of `serve --workers N`'s processes (uvicorn imports it by name)."""
    parent = int(os.environ.get("SEMSEARCH_SERVE_PARENT") or 0)
    if parent and parent != os.getpid():  # a worker uvicorn started, not the server's own process
        _end_with_parent(parent)
    watcher = int(os.environ.get("SEMSEARCH_SERVE_WATCHED") or 0)  # the parent's pid when it watches
    return create_app(  # one watcher: `serve` runs it in the parent
        index_dir=os.environ["SEMSEARCH_SERVE_INDEX"],
        token=os.environ.get("SEMSEARCH_TOKEN") or None,
        writes=os.environ.get("SEMSEARCH_SERVE_WRITES") == "1",
        hosts=os.environ["SEMSEARCH_SERVE_HOSTS"].split(","),
        watched_elsewhere=watcher > 0,
        watcher_pid=watcher or None,
    )


def check_host_names(names: Iterable[str]) -> None:
    """Each of `names` is a host name or address (compared with each request's Host header), not
    a URL or a list."""
    for name in names:
        if not name or not all(c.isalnum() or c in "-._:[]" for c in name):
            raise SemsearchError(f"--allow-host {name!r}: expected a host name or address, e.g. example.org")


def check_listen_host(host: str) -> None:
    """`serve --host ''` is a mistake, not a choice: the socket bound every interface (0.0.0.0 and ::)
    and the start-up line said `http://:PORT/`. Every interface is asked for by name, 0.0.0.0."""
    if not host.strip():
        raise SemsearchError("--host '': expected an address to listen on, e.g. 127.0.0.1 or 0.0.0.0")


def check_token_given(token: str | None) -> None:
    """An empty or blank token is refused, never served: it is what `--token "$UNSET_VARIABLE"` (or
    `SEMSEARCH_TOKEN=` from one) passes. Taken as a token, `--workers N` opened writing to anyone (its
    workers read "no token") while one process closed it, and the start-up note said "closed"."""
    if token is not None and not token.strip():
        raise SemsearchError(
            "--token is empty (is the variable you passed set?): give a token, or neither --token nor SEMSEARCH_TOKEN"
        )
    # A token read with its file's line break ("abc\n") started a server no client could write to:
    # a header's value carries no control character and loses white space at its ends (all 403).
    if token is not None and (token != token.strip() or any(ord(c) < 32 or ord(c) == 127 for c in token)):
        raise SemsearchError(
            "--token has white space at an end or a control character (a line break read with it?), which no "
            "Authorization header can carry: give the token alone"
        )


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process holds before saying where we serve (`serve`): uvicorn found out
    only after "serving http://..." was printed, and a user could open that page and reach the other
    process."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except socket.gaierror:
            raise SemsearchError(f"cannot serve on {host}: no such host name here (give another --host)") from None
        except OSError as err:
            raise SemsearchError(f"cannot serve on {host}:{port}: {err.strerror} (give another --port)") from None


def http_protocol():
    """uvicorn's HTTP protocol for `serve`: httptools' with each request's head bounded
    (`bounded_http`), or h11, which bounds it itself, where httptools is missing."""
    try:
        from semsearch.bounded_http import BoundedHead
    except ImportError:
        return "h11"
    return BoundedHead


def raise_open_files_limit() -> None:
    """Let `serve` hold as many connections as the system allows this process: every connection is
    an open file, and at the usual soft limit of 1,024 a client opening a thousand connections left
    nothing for other clients (refused) or for reading the index ("CURRENT cannot be read (Too many
    open files)"). The hard limit is the most a process may raise itself to; where that cannot be set
    (macOS refuses more than OPEN_MAX), the limit stays as it was."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass


def page_url(host: str, port: int) -> str:
    """Where the page is: an IPv6 address goes in brackets."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    host: str,
    port: int,
    *,
    index_dir: str | Path | None = None,
    workers: int = 1,
    watch_seconds: float | None = None,
    token: str | None = None,
    allow_hosts: Iterable[str] = (),
) -> None:
    """Serve the app; requests must name `host`, a loopback name or one of `allow_hosts` in Host."""
    check_listen_host(host)
    check_token_given(token)
    check_port_free(host, port)
    raise_open_files_limit()  # before the workers start: they inherit it
    print(f"semsearch: serving {page_url(host, port)} (API docs at /docs); Ctrl-C stops", file=sys.stderr)
    import uvicorn

    from semsearch.index import resolve_index_dir

    check_host_names(allow_hosts)
    # A name beyond loopback in --allow-host is how the server is reached through a proxy on this
    # machine (the documented way behind one): its clients are not this machine's, however it listens.
    # Writing was left open to them without a token, as if only this machine could ask.
    named = [name for name in allow_hosts if host_name(name) not in LOOPBACK]
    writes = (host in LOOPBACK and not named) or token is not None
    hosts = sorted({*LOOPBACK, host, *allow_hosts})
    if host not in LOOPBACK or named:
        log.warning(
            "note: serving %s: reading needs no authentication (anyone who can reach this address can search "
            "the index); writing (labels) %s; requests must name it in their Host header as one of %s "
            "(--allow-host NAME adds one)",
            f"on {host}" if host not in LOOPBACK else f"as {', '.join(named)} (--allow-host)",
            "needs the token" if token else "is closed without --token",
            ", ".join(hosts),
        )
    if workers == 1:
        app = create_app(index_dir=index_dir, watch_seconds=watch_seconds, token=token, writes=writes, hosts=hosts)
        uvicorn.run(app, host=host, port=port, log_level="warning", http=http_protocol())
        return
    directory = resolve_index_dir(index_dir)
    os.environ.update(SEMSEARCH_SERVE_INDEX=str(directory), SEMSEARCH_SERVE_WRITES="1" if writes else "0")
    os.environ["SEMSEARCH_SERVE_HOSTS"] = ",".join(hosts)
    if token is not None:  # and none inherited when there is none: each worker reads only what this says
        os.environ["SEMSEARCH_TOKEN"] = token
    else:
        os.environ.pop("SEMSEARCH_TOKEN", None)
    os.environ["SEMSEARCH_SERVE_WATCHED"] = str(os.getpid()) if watch_seconds else "0"  # the watcher: this process
    os.environ["SEMSEARCH_SERVE_PARENT"] = str(os.getpid())  # the workers end when it is gone
    # One watcher for all workers, started before them: its status file is fresh when they read it.
    watcher = _start_watching(directory, watch_seconds) if watch_seconds else None
    try:
        uvicorn.run(
            "semsearch.server:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            http=http_protocol(),
        )
    finally:
        if watcher is not None:
            watcher.close()
