"""`semsearch serve`: a JSON API mirroring the CLI, and a page to ask, browse and classify.

The index and the models are loaded once; requests are answered one at a time (a search takes a
few tens of milliseconds, and SQLite connections are not shared safely between concurrent calls).
"""

from __future__ import annotations

import threading
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from semsearch.errors import NotFound, SemsearchError

MAX_K = 100
MAX_TEXT = 20_000
WEB = files("semsearch") / "web"


class ClassifyRequest(BaseModel):
    title: str = Field(min_length=1, max_length=1000)
    abstract: str = Field(min_length=1, max_length=MAX_TEXT)


class RecommendRequest(BaseModel):
    likes: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=200)
    dislikes: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=200)
    k: int = Field(default=10, ge=1, le=MAX_K)
    since: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


def create_app(index_dir: str | Path | None = None) -> FastAPI:
    from semsearch.index import Index
    from semsearch.related import RelatedFinder
    from semsearch.search import Filters, Searcher
    from semsearch.taxonomy import load_taxonomy

    index = Index.open(index_dir)
    searcher = Searcher(index)
    finder = RelatedFinder(index, searcher.embedder)
    lock = threading.Lock()
    app = FastAPI(
        title="semsearch",
        description="Semantic search, taxonomy suggestions and related work for the efficient-LLM literature.",
        version="0.1.0",
    )

    @app.exception_handler(SemsearchError)
    async def user_error(request: Request, err: SemsearchError) -> JSONResponse:
        status = 404 if isinstance(err, NotFound) else 400
        return JSONResponse({"error": str(err)}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:  # never a stack trace to the client
        return JSONResponse({"error": "internal error"}, status_code=500)

    def paper_by_id(paper_id: str):
        vec_id = finder.resolve(paper_id)
        return searcher.hits([(vec_id, 1.0)])[0]

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "papers": index.manifest.count, "model": index.manifest.model}

    @app.get("/api/search")
    def search(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="The question.")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        year_from: Annotated[int | None, Query(ge=1900, le=2100)] = None,
        year_to: Annotated[int | None, Query(ge=1900, le=2100)] = None,
        category: Annotated[str | None, Query(max_length=300)] = None,
        explain: bool = False,
    ) -> dict:
        with lock:
            hits = searcher.search(q, k, Filters(year_from, year_to, category))
        return {"query": " ".join(q.split()), "results": [h.to_dict(explain) for h in hits]}

    @app.post("/api/classify")
    def classify(request: ClassifyRequest) -> dict:
        from semsearch.classify import classify_texts

        with lock:
            item = (None, request.title, request.abstract)
            result = classify_texts(index, [item], searcher.embedder, searcher.classifier)[0]
        data = result.to_dict()
        data["neighbours"] = [
            {"id": n.id, "title": n.title, "categories": n.categories, "similarity": round(n.similarity, 4)}
            for n in result.neighbours
        ]
        return data

    @app.get("/api/related/{paper_id:path}")
    def related(paper_id: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10, diverse: bool = False) -> dict:
        with lock:
            hits = finder.related_to(paper_id, k, diverse=diverse)
        return {"id": paper_id, "results": [h.to_dict() for h in hits]}

    @app.post("/api/recommend")
    def recommend(request: Annotated[RecommendRequest, Body()]) -> dict:
        with lock:
            hits = finder.recommend(request.likes, request.dislikes, request.k, since=request.since)
        return {"likes": request.likes, "dislikes": request.dislikes, "results": [h.to_dict() for h in hits]}

    @app.get("/api/papers")
    def papers_under(
        category: Annotated[str, Query(min_length=1, max_length=300)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict:
        """Papers under a taxonomy node (labelled there by the survey or a user, or predicted there)."""
        node = load_taxonomy().resolve(category)
        with lock:
            vec_ids = index.store.vec_ids_where(categories=[node])[:limit]
            hits = searcher.hits([(v, 1.0) for v in vec_ids])
        return {"category": node, "results": [h.to_dict() for h in hits]}

    @app.get("/api/papers/{paper_id:path}")
    def paper(paper_id: str) -> dict:
        from semsearch.bibtex import to_bibtex

        with lock:
            hit = paper_by_id(paper_id)
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

        with lock:
            return index_tree(index.store)

    @app.get("/api/export", response_class=PlainTextResponse)
    def export(ids: Annotated[list[str], Query(min_length=1, max_length=200)]) -> str:
        from semsearch.bibtex import to_bibtex

        with lock:
            hits = [paper_by_id(i) for i in ids]
        return to_bibtex(h.paper for h in hits)

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


def serve(index_dir: str | Path | None, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(index_dir), host=host, port=port, log_level="warning")
