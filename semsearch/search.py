"""Answering questions: embed the question, search the vector index, apply filters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semsearch.errors import SemsearchError
from semsearch.index import Index
from semsearch.paper import Paper
from semsearch.store import Prediction
from semsearch.taxonomy import resolve_node

MAX_QUERY_CHARS = 2000


@dataclass
class Hit:
    paper: Paper
    score: float
    prediction: Prediction | None = None  # for papers the survey does not label
    vec_id: int | None = None

    @property
    def categories(self) -> list[str]:
        """The survey's categories, else the predicted one when the paper is in scope."""
        if self.paper.survey_categories:
            return list(self.paper.survey_categories)
        if self.prediction and self.prediction.in_scope:
            return [self.prediction.category]
        return []

    @property
    def category_source(self) -> str | None:
        if self.paper.survey_categories:
            return "survey"
        return "predicted" if self.categories else None

    def to_dict(self) -> dict:
        return {
            "id": self.paper.id,
            "title": self.paper.title,
            "score": round(float(self.score), 6),
            "year": self.paper.year,
            "categories": self.categories,
            "category_source": self.category_source,
            "url": self.paper.link(),
        }


@dataclass
class Filters:
    year_from: int | None = None
    year_to: int | None = None
    category: str | None = None

    def active(self) -> bool:
        return any(value is not None for value in (self.year_from, self.year_to, self.category))


def check_query(query: str) -> str:
    text = " ".join(query.split())
    if not text:
        raise SemsearchError("the question is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise SemsearchError(f"the question is longer than {MAX_QUERY_CHARS} characters")
    return text


class Searcher:
    """Loads the embedding model once and answers any number of questions against one index."""

    def __init__(self, index: Index, embedder=None):
        from semsearch.embeddings import Embedder

        self.index = index
        self.embedder = embedder or Embedder(index.manifest.model)

    def embed_query(self, query: str) -> np.ndarray:
        vector = self.embedder.encode([check_query(query)])
        if vector.shape[1] != self.index.manifest.dimension:
            raise SemsearchError(
                f"model {self.embedder.model_name!r} gives {vector.shape[1]}-d vectors but the index holds "
                f"{self.index.manifest.dimension}-d ones"
            )
        return vector

    def allowed_vec_ids(self, filters: Filters) -> np.ndarray | None:
        if not filters.active():
            return None
        categories = [resolve_node(filters.category)] if filters.category else []
        ids = self.index.store.vec_ids_where(
            year_from=filters.year_from, year_to=filters.year_to, categories=categories
        )
        return np.asarray(ids, dtype=np.int64)

    def nearest(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(vec_id, cosine) of the k nearest papers, optionally only among `allowed` vec_ids."""
        import faiss

        vectors = self.index.vectors
        k = min(k, vectors.ntotal if allowed is None else len(allowed))
        if k <= 0:
            return []
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        scores, ids = vectors.search(np.ascontiguousarray(vector, dtype=np.float32), k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        store = self.index.store
        papers = store.papers_by_vec_id(vec_id for vec_id, _ in ranked)
        predictions = store.predictions(v for v, _ in ranked if v in papers and not papers[v].survey_categories)
        return [Hit(papers[v], score, predictions.get(v), v) for v, score in ranked if v in papers]

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        if k < 1:
            raise SemsearchError("k must be at least 1")
        vector = self.embed_query(query)
        return self.hits(self.nearest(vector, k, self.allowed_vec_ids(filters or Filters())))
