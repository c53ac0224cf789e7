"""`semsearch serve`: a JSON API mirroring the CLI, and a page to ask, browse and classify.

The models are loaded once. Requests run in parallel (each thread reads SQLite through its own
connection; FAISS, ONNX Runtime and the classifier are only read). The service follows the index:
when an ingest, watch or label publishes a new generation, it is loaded beside the old one and
swapped in within RELOAD_SECONDS; requests already running finish on the old one, which is then
closed (and only then may a writer remove it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from semsearch.errors import NotFound, SemsearchError

MAX_K = 100
MAX_TEXT = 20_000
MAX_BODY = 1_000_000  # bytes; larger bodies get 413 before they are read
RELOAD_SECONDS = 1.0
SESSION_THREADS = 1  # per question: concurrent requests use the cores better than one request split
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WEB = files("semsearch") / "web"
log = logging.getLogger("semsearch.server")


class ClassifyRequest(BaseModel):
    title: str = Field(min_length=1, max_length=1000)
    abstract: str = Field(min_length=1, max_length=MAX_TEXT)


class RecommendRequest(BaseModel):
    likes: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=200)
    dislikes: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=200)
    k: int = Field(default=10, ge=1, le=MAX_K)
    since: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Generation:
    """One published generation, loaded, with the requests now using it."""

    index: object
    searcher: object
    finder: object
    users: int = 0
    retired: bool = False

    @property
    def name(self) -> str:
        return self.index.generation_dir.name


class Service:
    """The generation that answers requests, swapped for the newest published one by `refresh`."""

    def __init__(self, index_dir: str | Path | None):
        import faiss

        from semsearch.index import Index

        faiss.omp_set_num_threads(SESSION_THREADS)
        self._lock = threading.Lock()
        self.current = self._load(Index.open(index_dir), embedder=None)
        self.directory = self.current.index.directory
        self.reload_error: str | None = None
        self._unloadable: str | None = None

    @staticmethod
    def _load(index, embedder) -> Generation:
        from semsearch.related import RelatedFinder
        from semsearch.search import Searcher

        try:
            if embedder is None:
                from semsearch.embeddings import query_embedder

                embedder = query_embedder(index.directory, index.manifest.model, threads=SESSION_THREADS)
            searcher = Searcher(index, embedder)
            # Everything a request needs is loaded now, not by the first request (nor in two threads at once).
            for name, owner in (
                ("embedder", searcher),
                ("classifier", searcher),
                ("vectors", index),
                ("lexical", index),
            ):
                getattr(owner, name)
        except BaseException:
            index.close()
            raise
        return Generation(index, searcher, RelatedFinder(index, searcher=searcher))

    @contextmanager
    def use(self) -> Iterator[Generation]:
        with self._lock:
            generation = self.current
            generation.users += 1
        try:
            yield generation
        finally:
            with self._lock:
                generation.users -= 1
                done = generation.retired and generation.users == 0
            if done:
                generation.index.close()

    def refresh(self) -> bool:
        """Load and swap in the newest published generation, if it is newer; True when swapped.
        A generation that cannot be loaded leaves the current one serving (`reload_error` says why)."""
        from semsearch.index import Index, current_generation

        newest = current_generation(self.directory)
        if newest in (None, self.current.name, self._unloadable):
            return False
        try:
            index = Index.open(self.directory)
            same_model = index.manifest.model == self.current.index.manifest.model
            fresh = self._load(index, self.current.searcher.embedder if same_model else None)
        except Exception as err:  # noqa: BLE001 - keep answering from what works
            self._unloadable = newest  # tried once; the next publish is tried afresh
            self.reload_error = f"{newest}: {err}"
            log.warning("semsearch serve: cannot load %s; still serving %s", self.reload_error, self.current.name)
            return False
        with self._lock:
            old, self.current = self.current, fresh
            old.retired = True
            done = old.users == 0
        self.reload_error = None
        if done:
            old.index.close()
        return True

    def follow(self, interval: float = RELOAD_SECONDS) -> threading.Event:
        """Refresh every `interval` seconds in a daemon thread until the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.refresh()

        threading.Thread(target=loop, name="semsearch-reload", daemon=True).start()
        return stop


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
    index_dir: str | Path | None = None,
    *,
    reload_seconds: float | None = RELOAD_SECONDS,
    watch_seconds: float | None = None,
) -> FastAPI:
    from semsearch.search import Filters
    from semsearch.taxonomy import load_taxonomy

    service = Service(index_dir)
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
        background.append(_start_watching(service.directory, watch_seconds))
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

    def paper_by_id(live: Generation, paper_id: str):
        vec_id = live.finder.resolve(paper_id)
        return live.searcher.hits([(vec_id, 1.0)])[0]

    @app.get("/api/health")
    def health() -> dict:
        with service.use() as live:
            manifest = live.index.manifest
            answer = {"status": "ok", "papers": manifest.count, "model": manifest.model, "generation": live.name}
        if service.reload_error:
            answer["reload_error"] = service.reload_error
        return answer

    @app.get("/api/search")
    def search(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="The question.")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        year_from: Annotated[int | None, Query(ge=1900, le=2100)] = None,
        year_to: Annotated[int | None, Query(ge=1900, le=2100)] = None,
        category: Annotated[str | None, Query(max_length=300)] = None,
        explain: bool = False,
    ) -> dict:
        from semsearch.search import check_query

        with service.use() as live:
            hits = live.searcher.search(q, k, Filters(year_from, year_to, category))
        return {"query": check_query(q), "results": [h.to_dict(explain) for h in hits]}

    @app.post("/api/classify")
    def classify(request: ClassifyRequest) -> dict:
        from semsearch.classify import classify_texts

        with service.use() as live:
            item = (None, request.title, request.abstract)
            result = classify_texts(live.index, [item], live.searcher.embedder, live.searcher.classifier)[0]
        data = result.to_dict()
        data["neighbours"] = [
            {"id": n.id, "title": n.title, "categories": n.categories, "similarity": round(n.similarity, 4)}
            for n in result.neighbours
        ]
        return data

    @app.get("/api/related/{paper_id:path}")
    def related(paper_id: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10, diverse: bool = False) -> dict:
        with service.use() as live:
            hits = live.finder.related_to(paper_id, k, diverse=diverse)
        return {"id": paper_id, "results": [h.to_dict() for h in hits]}

    @app.post("/api/recommend")
    def recommend(request: Annotated[RecommendRequest, Body()]) -> dict:
        with service.use() as live:
            hits = live.finder.recommend(request.likes, request.dislikes, request.k, since=request.since)
        return {"likes": request.likes, "dislikes": request.dislikes, "results": [h.to_dict() for h in hits]}

    @app.get("/api/papers")
    def papers_under(
        category: Annotated[str, Query(min_length=1, max_length=300)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict:
        """Papers under a taxonomy node (labelled there by the survey or a user, or predicted there)."""
        node = load_taxonomy().resolve(category)
        with service.use() as live:
            vec_ids = live.index.store.vec_ids_where(categories=[node])[:limit]
            hits = live.searcher.hits([(v, 1.0) for v in vec_ids])
        return {"category": node, "results": [h.to_dict() for h in hits]}

    @app.get("/api/papers/{paper_id:path}")
    def paper(paper_id: str) -> dict:
        from semsearch.bibtex import to_bibtex

        with service.use() as live:
            hit = paper_by_id(live, paper_id)
        data = hit.to_dict()
        data.pop("score")
        data.update(
            abstract=hit.paper.abstract,
            authors=hit.paper.authors,
            venue=hit.paper.venue,
            bibtex=to_bibtex([hit.paper]),
        )
        return data

    @app.get("/api/taxonomy")
    def taxonomy() -> list[dict]:
        from semsearch.taxonomy import index_tree

        with service.use() as live:
            return index_tree(live.index.store)

    @app.get("/api/export", response_class=PlainTextResponse)
    def export(ids: Annotated[list[str], Query(min_length=1, max_length=200)]) -> str:
        from semsearch.bibtex import to_bibtex

        with service.use() as live:
            hits = [paper_by_id(live, i) for i in ids]
        return to_bibtex(h.paper for h in hits)

    @app.get("/api/digests")
    def digests() -> dict:
        """The digests of finished watches, newest first."""
        from semsearch.watch import list_digests

        return {"digests": list_digests(service.directory)}

    @app.get("/api/digests/{name}")
    def digest(name: str) -> dict:
        """One digest: its in-scope new papers grouped by taxonomy node."""
        import json

        from semsearch.watch import load_digest, render_digest

        return json.loads(render_digest(load_digest(service.directory, name), "json"))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(WEB / "index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        allowed = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in allowed:
            raise NotFound(f"no file {name}")
        return FileResponse(str(WEB / name), media_type=allowed[name])

    return app


def _start_watching(directory: Path, seconds: float) -> threading.Event:
    """`serve --watch-every`: the daily watch in a daemon thread; what it publishes is picked up by
    the reload like any other publish."""
    from semsearch.watch import watch_every

    def done(report, error) -> None:
        if error is not None:
            log.warning("semsearch serve: the watch failed (%s); it resumes at the next turn", error)
        else:
            log.warning(
                "semsearch serve: watched %s–%s, %d new papers", report.since, report.until, len(report.entries)
            )

    stop = threading.Event()
    thread = threading.Thread(
        target=watch_every, args=(directory, seconds, stop), kwargs={"on_done": done}, daemon=True
    )
    thread.start()
    return stop


def app_from_environment() -> FastAPI:
    """The app for each of `serve --workers N`'s processes (uvicorn imports it by name)."""
    return create_app(os.environ["SEMSEARCH_SERVE_INDEX"])  # one watcher: `serve` runs it in the parent


def serve(
    index_dir: str | Path | None, host: str, port: int, *, workers: int = 1, watch_seconds: float | None = None
) -> None:
    import uvicorn

    from semsearch.index import resolve_index_dir

    if host not in LOOPBACK:
        print(
            f"note: serving on {host}: the API has no authentication; anyone who can reach this address can read "
            "the index",
            file=sys.stderr,
        )
    if workers == 1:
        uvicorn.run(create_app(index_dir, watch_seconds=watch_seconds), host=host, port=port, log_level="warning")
        return
    directory = resolve_index_dir(index_dir)
    os.environ["SEMSEARCH_SERVE_INDEX"] = str(directory)
    stop = _start_watching(directory, watch_seconds) if watch_seconds else None  # one watcher for all workers
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
