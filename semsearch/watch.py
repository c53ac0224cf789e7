"""Watching arXiv: each day's new papers, placed in the taxonomy, the in-scope ones ingested.

A watch asks arXiv for papers submitted since the last successful watch (kept in the index),
page by page, oldest first. Each page is embedded once, classified, and its in-scope papers (all
with keep_all) are stored with those embeddings. Pages and their classifications are recorded in
the staging generation as they are done, so an interrupted watch resumes at the next page and its
digest still lists what the first attempt found. The time of the watch is stored on success.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from semsearch.errors import SemsearchError
from semsearch.ingest import RESUME_PREFIX, Ingest, IngestReport

DEFAULT_CATEGORIES = ("cs.CL", "cs.LG", "cs.AI")
LAST_WATCH = "watch_last"  # index metadata: UTC time the last successful watch looked up to
FIRST_WATCH_DAYS = 1
MAX_RESULTS = 5000


@dataclass
class DigestEntry:
    id: str
    title: str
    url: str | None
    category: str
    confidence: float
    in_scope: bool
    closest: list[dict] = field(default_factory=list)  # id, title, categories of the nearest known papers


@dataclass
class WatchReport:
    since: str
    until: str
    fetched: int
    entries: list[DigestEntry]
    ingest: IngestReport


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M")


def watch(
    index_dir: str | Path | None = None,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    since: str | None = None,
    *,
    keep_all: bool = False,
    progress: bool = True,
    max_results: int = MAX_RESULTS,
) -> WatchReport:
    from semsearch.classify import classifier_for
    from semsearch.embeddings import Embedder
    from semsearch.index import Index
    from semsearch.sources.arxiv import ArxivClient, submitted_between
    from semsearch.taxonomy import load_taxonomy

    published = Index.open(index_dir)  # a watch places papers among known ones: the index must exist
    known = published.store
    embedder = Embedder(published.manifest.model)
    classifier = classifier_for(known, load_taxonomy(), embedder.encode)
    if classifier is None:
        raise SemsearchError("the index has no labelled papers to place new ones by; run `semsearch ingest survey`")
    client = ArxivClient()
    ingest = Ingest(published.directory, published.manifest.model, progress=progress)
    entries: list[DigestEntry] = []
    fetched = 0
    with ingest:
        store = ingest.store
        now = datetime.now(timezone.utc)
        start = (
            datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
            if since
            else datetime.fromisoformat(known.get_meta(LAST_WATCH))
            if known.get_meta(LAST_WATCH)
            else now - timedelta(days=FIRST_WATCH_DAYS)
        )
        state_key = f"{RESUME_PREFIX}watch:{','.join(categories)}:{_stamp(start)}"
        state = json.loads(store.get_meta(state_key) or "{}")  # left by an interrupted watch
        until = state.get("until") or _stamp(now)
        entries = [DigestEntry(**e) for e in state.get("entries", [])]
        query = submitted_between(categories, _stamp(start), until)
        for offset, page in client.pages(query, max_results, start=state.get("offset", 0), by_submission=True):
            fetched += len(page)
            texts = [p.embedding_text() for p in page]
            vectors = embedder.encode(texts)
            placed = classifier.classify(texts, vectors, [p.id for p in page])
            keep = []
            for paper, vector, result in zip(page, vectors, placed, strict=True):
                if known.vec_id(paper.id) is None:  # new to the index: worth a line in the digest
                    entries.append(
                        DigestEntry(
                            id=paper.id,
                            title=paper.title,
                            url=paper.link(),
                            category=result.category,
                            confidence=round(result.confidence, 4),
                            in_scope=result.in_scope,
                            closest=[
                                {"id": n.id, "title": n.title, "categories": n.categories} for n in result.neighbours
                            ],
                        )
                    )
                if result.in_scope or keep_all:
                    keep.append((paper, vector))
            ingest.add_embedded(keep)
            store.set_meta(
                state_key, json.dumps({"until": until, "offset": offset, "entries": [asdict(e) for e in entries]})
            )
            store.commit()
        store.set_meta(LAST_WATCH, datetime.strptime(until, "%Y%m%d%H%M").replace(tzinfo=timezone.utc).isoformat())
    return WatchReport(_stamp(start), until, fetched, entries, ingest.report)


def render_digest(report: WatchReport, fmt: str = "markdown", min_confidence: float = 0.0) -> str:
    """The digest of a watch: in-scope new papers grouped by taxonomy node, most confident first."""
    shown = [e for e in report.entries if e.in_scope and e.confidence >= min_confidence]
    groups: dict[str, list[DigestEntry]] = {}
    for entry in sorted(shown, key=lambda e: (e.category, -e.confidence)):
        groups.setdefault(entry.category, []).append(entry)
    window = f"{report.since} to {report.until} (UTC)"
    if fmt == "json":
        return json.dumps(
            {
                "since": report.since,
                "until": report.until,
                "fetched": report.fetched,
                "groups": {node: [asdict(e) for e in items] for node, items in groups.items()},
            },
            ensure_ascii=False,
        )
    if fmt == "html":
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>semsearch digest</title></head><body>",
            f"<h1>semsearch digest: {len(shown)} new papers, {html.escape(window)}</h1>",
        ]
        for node, items in groups.items():
            parts.append(f"<h2>{html.escape(node.replace('/', ' › '))}</h2><ul>")
            for e in items:
                link = f"<a href='{html.escape(e.url or '')}'>{html.escape(e.title)}</a>"
                closest = "; ".join(html.escape(c["title"]) for c in e.closest)
                parts.append(
                    f"<li>{link} ({html.escape(e.id)}), confidence {e.confidence:.2f}"
                    f"<br><small>closest: {closest}</small></li>"
                )
            parts.append("</ul>")
        return "\n".join(parts + ["</body></html>"]) + "\n"
    if fmt != "markdown":
        raise SemsearchError(f"unknown digest format {fmt!r} (markdown, json or html)")
    lines = [f"# semsearch digest: {len(shown)} new papers, {window}", ""]
    for node, items in groups.items():
        lines += [f"## {node.replace('/', ' › ')}", ""]
        for e in items:
            lines.append(f"- **{e.title}** ([{e.id}]({e.url})), confidence {e.confidence:.2f}")
            lines.append("  - closest known: " + "; ".join(c["title"] for c in e.closest))
        lines.append("")
    return "\n".join(lines)
