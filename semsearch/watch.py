"""Watching arXiv: each day's new papers, placed in the taxonomy, the in-scope ones ingested.

A watch asks arXiv for papers submitted since the last successful watch (kept in the index),
page by page, oldest first. Each page is embedded once, classified, and its in-scope papers (all
with keep_all) are stored with those embeddings. Pages and their classifications are recorded in
the index as they are done (`watch_pending:`, kept across publishes), so a watch that is
interrupted, or whose connection fails part-way (the pages done are published), resumes at the
next page of the same window, and its digest still lists what the first attempt found. On success
the time of the watch is stored and the digest is saved in the index directory (`digests/`).
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from semsearch.errors import NotFound, SemsearchError
from semsearch.ingest import Ingest, IngestReport

DEFAULT_CATEGORIES = ("cs.CL", "cs.LG", "cs.AI")
LAST_WATCH = "watch_last"  # index metadata: UTC time the last successful watch looked up to
PENDING = "watch_pending:"  # + categories: the window, next page and entries of an unfinished watch
DIGESTS_DIR = "digests"
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
    authors: list[str] = field(default_factory=list)
    snippet: str = ""  # the abstract's opening, for a reader to decide whether to open the paper


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
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    since: str | None = None,
    *,
    index_dir: str | Path | None = None,
    keep_all: bool = False,
    progress: bool = True,
    max_results: int = MAX_RESULTS,
    taxonomy_name: str | None = None,
) -> WatchReport:
    """Watch arXiv once (see the module); papers are placed in the survey's taxonomy, or in
    `taxonomy_name`, one added from a curated list, which then also decides what is in scope."""
    from semsearch.embeddings import embedder_for
    from semsearch.index import Index
    from semsearch.lists import classifier_for_taxonomy
    from semsearch.sources.arxiv import ArxivClient, submitted_between

    published = Index.open(index_dir)  # a watch places papers among known ones: the index must exist
    known = published.store
    embedder = embedder_for(published.manifest.model, index_dir=published.directory)
    classifier = classifier_for_taxonomy(known, taxonomy_name, embedder.encode)
    if classifier is None:
        raise SemsearchError("the index has no labelled papers to place new ones by; run `semsearch ingest survey`")
    client = ArxivClient()
    ingest = Ingest(index_dir=published.directory, model=published.manifest.model, progress=progress)
    entries: list[DigestEntry] = []
    fetched = 0
    with ingest:
        store = ingest.store
        now = datetime.now(timezone.utc)
        state_key = PENDING + ",".join(categories)
        state = json.loads(store.get_meta(state_key) or "{}")  # left by an unfinished watch
        asked = _stamp(datetime.fromisoformat(since).replace(tzinfo=timezone.utc)) if since else None
        if not state or (asked and state["since"] != asked):  # a new window
            last = known.get_meta(LAST_WATCH)
            start = datetime.fromisoformat(last) if last else now - timedelta(days=FIRST_WATCH_DAYS)
            state = {"since": asked or _stamp(start), "until": _stamp(now), "offset": 0, "entries": []}
        until = state["until"]
        entries = [DigestEntry(**e) for e in state["entries"]]
        query = submitted_between(categories, state["since"], until)
        for offset, page in client.pages(query, max_results, start=state["offset"], by_submission=True):
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
                            authors=paper.authors,
                            snippet=snippet(paper.abstract),
                        )
                    )
                if result.in_scope or keep_all:
                    keep.append((paper, vector))
            ingest.add_embedded(keep)
            state.update(offset=offset, entries=[asdict(e) for e in entries])
            store.set_meta(state_key, json.dumps(state))
            store.commit()
        store.db.execute("DELETE FROM meta WHERE key = ?", (state_key,))
        store.set_meta(LAST_WATCH, datetime.strptime(until, "%Y%m%d%H%M").replace(tzinfo=timezone.utc).isoformat())
    report = WatchReport(state["since"], until, fetched, entries, ingest.report)
    save_digest(report, index_dir=published.directory)
    return report


# --- digests kept in the index directory -----------------------------------------------------------
def save_digest(report: WatchReport, *, index_dir: Path) -> Path:
    """Keep a finished watch's digest (JSON, every entry) as digests/<since>-<until>.json."""
    folder = Path(index_dir) / DIGESTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{report.since}-{report.until}.json"
    data = {
        "since": report.since,
        "until": report.until,
        "fetched": report.fetched,
        "entries": [asdict(e) for e in report.entries],
    }
    staging = target.with_suffix(".tmp")
    staging.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    staging.replace(target)
    return target


def list_digests(*, index_dir: Path) -> list[dict]:
    """The saved digests, newest first: name, window and how many in-scope papers each lists."""
    listed = []
    for path in sorted((Path(index_dir) / DIGESTS_DIR).glob("*.json"), reverse=True):
        data = json.loads(path.read_text(encoding="utf-8"))
        in_scope = sum(1 for e in data["entries"] if e["in_scope"])
        listed.append({"name": path.stem, "since": data["since"], "until": data["until"], "papers": in_scope})
    return listed


def digest_json(name: str | None = None, *, index_dir: Path) -> dict | None:
    """A saved digest (the newest when `name` is None) as `render_digest(..., "json")` gives it;
    None when there is none yet."""
    if name is None:  # names sort by window: the newest is the largest, found without reading any
        name = max((p.stem for p in (Path(index_dir) / DIGESTS_DIR).glob("*.json")), default=None)
        if name is None:
            return None
    return json.loads(render_digest(load_digest(name, index_dir=index_dir), "json"))


def load_digest(name: str, *, index_dir: Path) -> WatchReport:
    if not re.fullmatch(r"\d{12}-\d{12}", name):
        raise NotFound(f"no digest {name!r}")
    path = Path(index_dir) / DIGESTS_DIR / f"{name}.json"
    if not path.exists():
        raise NotFound(f"no digest {name!r}")
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = [DigestEntry(**e) for e in data["entries"]]
    return WatchReport(data["since"], data["until"], data["fetched"], entries, IngestReport())


def parse_interval(text: str) -> float:
    """Seconds in an interval such as 90s, 30m, 24h or 1d."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text or "")
    if not match or float(match.group(1)) <= 0:
        raise SemsearchError(f"cannot read the interval {text!r} (e.g. 30m, 24h, 1d)")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def watch_every(
    seconds: float,
    stop: threading.Event,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    on_done: Callable[[WatchReport | None, Exception | None], None] | None = None,
    *,
    index_dir: str | Path | None = None,
    **options,
) -> None:
    """Watch now and then every `seconds` until `stop` is set (`options` go to `watch`). A failed
    watch is reported and tried again at the next turn, where it resumes."""
    while not stop.is_set():
        try:
            report, error = watch(categories, index_dir=index_dir, progress=False, **options), None
        except Exception as err:  # noqa: BLE001 - the schedule outlives one bad connection
            report, error = None, err
        if on_done:
            on_done(report, error)
        stop.wait(seconds)


SNIPPET_CHARS = 300
PAPER_VIEW = "http://127.0.0.1:8000/paper/"  # where `semsearch serve` shows a paper, for links in digests


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The opening of an abstract, cut at a word."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def human_time(stamp: str) -> str:
    """202411280000 → "28 Nov 2024"; with a time of day when there is one ("28 Nov 2024 20:53 UTC")."""
    moment = datetime.strptime(stamp, "%Y%m%d%H%M")
    day = f"{moment.day} {moment:%b %Y}"
    return day if (moment.hour, moment.minute) == (0, 0) else f"{day} {moment:%H:%M} UTC"


def _authors(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (" et al." if len(names) > most else "")


DIGEST_STYLE = """body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
color:#1f2328;background:#fff}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;color:#57606a}
li{margin:.9rem 0}small,.meta{color:#57606a}a{color:#0969da}p{margin:.2rem 0}
@media (prefers-color-scheme: dark){body{color:#e6edf3;background:#0d1117}
h2,small,.meta{color:#9198a1}a{color:#4493f8}}"""


def render_digest(
    report: WatchReport, fmt: str = "markdown", min_confidence: float = 0.0, paper_view: str = PAPER_VIEW
) -> str:
    """The digest of a watch: in-scope new papers grouped by taxonomy node, most confident first,
    each with its authors, the opening of its abstract and links to arXiv and to its paper view."""
    shown = [e for e in report.entries if e.in_scope and e.confidence >= min_confidence]
    groups: dict[str, list[DigestEntry]] = {}
    for entry in sorted(shown, key=lambda e: (e.category, -e.confidence)):
        groups.setdefault(entry.category, []).append(entry)
    window = f"{human_time(report.since)} to {human_time(report.until)}"
    papers = f"{len(shown)} new paper{'' if len(shown) == 1 else 's'}"
    if fmt == "json":
        return json.dumps(
            {
                "since": report.since,
                "until": report.until,
                "window": window,
                "fetched": report.fetched,
                "groups": {node: [asdict(e) for e in items] for node, items in groups.items()},
            },
            ensure_ascii=False,
        )
    if fmt == "html":
        esc = html.escape
        parts = [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>semsearch digest, {esc(window)}</title><style>{DIGEST_STYLE}</style></head><body>",
            f"<h1>semsearch digest: {papers}, {esc(window)}</h1>",
        ]
        for node, items in groups.items():
            parts.append(f"<h2>{esc(node.replace('/', ' › '))}</h2><ul>")
            for e in items:
                link = f"<a href='{esc(e.url or paper_view + e.id)}'>{esc(e.title)}</a>"
                closest = "; ".join(esc(c["title"]) for c in e.closest)
                parts.append(
                    f"<li>{link}<p class='meta'>{esc(_authors(e.authors))} · {esc(e.id)} · "
                    f"confidence {e.confidence:.2f} · <a href='{esc(paper_view + e.id)}'>view in semsearch</a></p>"
                    f"<p>{esc(e.snippet)}</p><small>closest known: {closest}</small></li>"
                )
            parts.append("</ul>")
        return "\n".join(parts + ["</body></html>"]) + "\n"
    if fmt != "markdown":
        raise SemsearchError(f"unknown digest format {fmt!r} (markdown, json or html)")
    lines = [f"# semsearch digest: {papers}, {window}", ""]
    for node, items in groups.items():
        lines += [f"## {node.replace('/', ' › ')}", ""]
        for e in items:
            lines.append(f"- **[{e.title}]({e.url or paper_view + e.id})** ({e.id}), confidence {e.confidence:.2f}")
            if e.authors:
                lines.append(f"  {_authors(e.authors)} · [view in semsearch]({paper_view + e.id})")
            if e.snippet:
                lines.append(f"  > {e.snippet}")
            lines.append("  - closest known: " + "; ".join(c["title"] for c in e.closest))
        lines.append("")
    return "\n".join(lines)
