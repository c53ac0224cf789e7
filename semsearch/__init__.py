"""semsearch: local semantic search, categories and related work for the efficient-LLM literature.

The public API, importable from here (each name is imported on first use, so `import semsearch`
loads nothing heavy)::

    from semsearch import Index, Searcher, Filters, ingest_survey
    ingest_survey(index_dir="index", offline=True)
    hits = Searcher(Index.open("index")).search("pruning attention heads", k=5, filters=Filters(year_from=2023))
"""

from __future__ import annotations

import importlib

_HOMES = {
    "Index": "semsearch.index",
    "Searcher": "semsearch.search",
    "Filters": "semsearch.search",
    "Hit": "semsearch.search",
    "RelatedFinder": "semsearch.related",
    "ingest_jsonl": "semsearch.ingest",
    "ingest_arxiv": "semsearch.ingest",
    "ingest_survey": "semsearch.ingest",
    "label_paper": "semsearch.ingest",
    "classify_texts": "semsearch.classify",
    "watch": "semsearch.watch",
    "render_digest": "semsearch.watch",
    "add_list": "semsearch.lists",
    "refresh_survey": "semsearch.lists",
    "Service": "semsearch.service",
    "SemsearchError": "semsearch.errors",
    "NotFound": "semsearch.errors",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")
