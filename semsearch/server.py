"""`semsearch serve`: a JSON API mirroring the CLI, and a page to ask, browse and classify.

HTTP concerns only (validation, limits, one error shape, the token for writing); the answers
come from `semsearch.service`, which follows the index as it is published and runs requests in
parallel.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from semsearch.errors import NotFound, SemsearchError
from semsearch.service import RELOAD_SECONDS, Service

MAX_K = 100
MAX_TEXT = 20_000
MAX_BODY = 1_000_000  # bytes; larger bodies get 413 before they are read
MAX_TRENDS = 3  # nodes compared at once
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WEB = files("semsearch") / "web"
log = logging.getLogger("semsearch.server")


class ClassifyRequest(BaseModel):
    title: str = Field(min_length=1, max_length=1000)
    abstract: str = Field(min_length=1, max_length=MAX_TEXT)
    taxonomy: str | None = Field(default=None, max_length=60)


class RecommendRequest(BaseModel):
    likes: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=200)
    dislikes: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=200)
    k: int = Field(default=10, ge=1, le=MAX_K)
    since: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class LabelRequest(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=300)


class Forbidden(SemsearchError):
    http_status = 403


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


def _field_errors(err: RequestValidationError) -> str:
    parts = []
    for problem in err.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(
    *,
    index_dir: str | Path | None = None,
    reload_seconds: float | None = RELOAD_SECONDS,
    watch_seconds: float | None = None,
    token: str | None = None,
    writes: bool = True,
    watched_elsewhere: bool = False,
) -> FastAPI:
    """The app over the index at `index_dir`. Writing endpoints (labels) need `Authorization:
    Bearer TOKEN` when a token is set, and are closed when `writes` is False. With `watch_seconds`
    it watches arXiv itself; `watched_elsewhere` says another process does (health reports it)."""
    service = Service(index_dir=index_dir)
    background: list[threading.Event] = []  # set at shutdown: the reload and watch threads stop

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for stop in background:
            stop.set()

    app = FastAPI(
        title="semsearch",
        description="Semantic search, taxonomy suggestions and related work for the efficient-LLM literature.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = service
    if reload_seconds:
        background.append(service.follow(reload_seconds))
    if watch_seconds:
        background.append(_start_watching(service.directory, watch_seconds, service))
    elif watched_elsewhere:  # `serve --workers N`: the parent watches and writes its status beside the index
        from semsearch.watch import read_watch_status

        service.watch_status = lambda: read_watch_status(index_dir=service.directory)
    app.add_middleware(LimitBody)

    @app.exception_handler(SemsearchError)
    async def user_error(request: Request, err: SemsearchError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _field_errors(err)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:  # never a stack trace to the client
        log.exception("semsearch serve: internal error", exc_info=err)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:  # unknown routes, wrong methods
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    def check_token(authorization: str | None) -> None:
        if not writes:
            raise Forbidden("writing is closed: serving beyond loopback needs --token")
        if token is not None and not hmac.compare_digest(authorization or "", f"Bearer {token}"):
            raise Forbidden("writing needs the server's token (Authorization: Bearer TOKEN)")

    @app.get("/api/health")
    def health() -> dict:
        return service.health()

    @app.get("/api/overview")
    def overview() -> dict:
        """What the index holds, the last watch, and the new papers it found."""
        return service.overview()

    @app.get("/api/search")
    def search(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="The question.")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        year_from: Annotated[int | None, Query(ge=1900, le=2100)] = None,
        year_to: Annotated[int | None, Query(ge=1900, le=2100)] = None,
        category: Annotated[str | None, Query(max_length=300)] = None,
        explain: bool = False,
        details: Annotated[bool, Query(description="Add authors, venue and abstract to each hit.")] = False,
        taxonomy: Annotated[str | None, Query(max_length=60, description="A taxonomy added from a list.")] = None,
    ) -> dict:
        return service.search(
            q, k, year_from=year_from, year_to=year_to, category=category, explain=explain, details=details,
            taxonomy=taxonomy,
        )  # fmt: skip

    @app.post("/api/classify")
    def classify(request: ClassifyRequest) -> dict:
        return service.classify(request.title, request.abstract, request.taxonomy)

    @app.get("/api/related/{paper_id:path}")
    def related(
        paper_id: str,
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        diverse: bool = False,
        details: bool = False,
        taxonomy: Annotated[str | None, Query(max_length=60)] = None,
    ) -> dict:
        return service.related(paper_id, k, diverse=diverse, details=details, taxonomy=taxonomy)

    @app.post("/api/recommend")
    def recommend(request: Annotated[RecommendRequest, Body()]) -> dict:
        return service.recommend(request.likes, request.dislikes, request.k, request.since)

    @app.get("/api/papers")
    def papers_under(
        category: Annotated[str, Query(min_length=1, max_length=300)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        details: bool = False,
        taxonomy: Annotated[str | None, Query(max_length=60)] = None,
    ) -> dict:
        """Papers under a taxonomy node (labelled there by the survey or a user, or predicted there)."""
        return service.papers_under(category, limit, details=details, taxonomy=taxonomy)

    @app.get("/api/papers/{paper_id:path}")
    def paper(paper_id: str) -> dict:
        return service.paper(paper_id)

    @app.post("/api/labels")
    def label(request: LabelRequest, authorization: Annotated[str | None, Header()] = None) -> dict:
        """Confirm a paper's category (stored as your label; it trains later suggestions)."""
        check_token(authorization)
        return service.label(request.id, request.category)

    @app.get("/api/taxonomies")
    def taxonomies() -> list[dict]:
        """The survey's taxonomy and those added from curated lists: name, nodes, papers."""
        return service.taxonomies()

    @app.get("/api/taxonomy")
    def taxonomy() -> list[dict]:
        return service.taxonomy()

    @app.get("/api/trends")
    def trends(category: Annotated[list[str], Query(min_length=1, max_length=MAX_TRENDS)]) -> dict:
        """Papers per year under each node: `{"trends": {node path: {year: count}}}`."""
        return service.trends(category)

    @app.get("/api/export", response_class=PlainTextResponse)
    def export(ids: Annotated[list[str], Query(min_length=1, max_length=200)]) -> str:
        return service.export(ids)

    @app.get("/api/digests")
    def digests() -> dict:
        """The digests of finished watches, newest first."""
        return service.digests()

    @app.get("/api/digests/{name}")
    def digest(name: str) -> dict:
        """One digest: its in-scope new papers grouped by taxonomy node."""
        return service.digest(name)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(WEB / "index.html"), media_type="text/html")

    @app.get("/paper/{paper_id:path}", include_in_schema=False)
    def paper_page(paper_id: str) -> FileResponse:  # the page shows the paper view for this path
        return FileResponse(str(WEB / "index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        allowed = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
        if name not in allowed:
            raise NotFound(f"no file {name}")
        return FileResponse(str(WEB / name), media_type=allowed[name])

    return app


def _start_watching(directory: Path, seconds: float, service: Service | None = None) -> threading.Event:
    """`serve --watch-every`: the watch in a daemon thread (its status in `service`'s health, its
    failures one log line each, retried at the next turn); what it publishes is picked up by the
    reload like any other publish. Set the returned event to stop it."""
    from semsearch.watch import Watcher

    watcher = Watcher(seconds, index_dir=directory)
    if service is not None:
        service.watch_status = watcher.status
    return watcher.start()


def app_from_environment() -> FastAPI:
    """The app for each of `serve --workers N`'s processes (uvicorn imports it by name)."""
    return create_app(  # one watcher: `serve` runs it in the parent
        index_dir=os.environ["SEMSEARCH_SERVE_INDEX"],
        token=os.environ.get("SEMSEARCH_TOKEN") or None,
        writes=os.environ.get("SEMSEARCH_SERVE_WRITES") == "1",
        watched_elsewhere=os.environ.get("SEMSEARCH_SERVE_WATCHED") == "1",
    )


def serve(
    host: str,
    port: int,
    *,
    index_dir: str | Path | None = None,
    workers: int = 1,
    watch_seconds: float | None = None,
    token: str | None = None,
) -> None:
    import uvicorn

    from semsearch.index import resolve_index_dir

    writes = host in LOOPBACK or token is not None
    if host not in LOOPBACK:
        log.warning(
            "note: serving on %s: reading needs no authentication (anyone who can reach this address can search "
            "the index); writing (labels) %s",
            host,
            "needs the token" if token else "is closed without --token",
        )
    if workers == 1:
        app = create_app(index_dir=index_dir, watch_seconds=watch_seconds, token=token, writes=writes)
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    directory = resolve_index_dir(index_dir)
    os.environ.update(SEMSEARCH_SERVE_INDEX=str(directory), SEMSEARCH_SERVE_WRITES="1" if writes else "0")
    if token:
        os.environ["SEMSEARCH_TOKEN"] = token
    os.environ["SEMSEARCH_SERVE_WATCHED"] = "1" if watch_seconds else "0"
    # One watcher for all workers, started before them: its status file is fresh when they read it.
    stop = _start_watching(directory, watch_seconds) if watch_seconds else None
    try:
        uvicorn.run(
            "semsearch.server:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if stop is not None:
            stop.set()
