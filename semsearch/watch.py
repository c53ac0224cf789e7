"""Watching arXiv: each day's new papers, placed in the taxonomy, the in-scope ones ingested.

A watch asks arXiv for papers submitted since the last successful watch of its kind (`watch_key`:
categories, taxonomy, keep_all; kept in the index), reaching back over arXiv's announcement lag
(`ANNOUNCEMENT_LAG`), page by page, oldest first. The papers of a page not placed before are
embedded once, classified, and the in-scope ones (all with keep_all) are stored with those
embeddings; those the index holds that another kind stored are placed by their stored vectors,
new to this kind. Pages and their classifications are recorded in the index as they are done
(`watch_pending:`, kept across publishes), so a watch that is interrupted, whose connection fails
part-way (the pages done are published), or that reached max_results, is gone on with at the next
page of the same window, and its digest still lists what the first attempt found. A window is done
once as many papers were read as arXiv said it holds; then its digest is saved in the index
directory (`digests/`, atomically), and the time of the watch is stored with the publish.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from semsearch import markup
from semsearch.errors import NotFound, SemsearchError, Stopped
from semsearch.index import WATCH_LOCK, drop_lock, take_lock, write_atomically
from semsearch.ingest import Ingest, IngestReport
from semsearch.paper import Paper, counted, one_line, printable, service_address, web_url
from semsearch.requests_models import DIGEST_NAME

log = logging.getLogger("semsearch.watch")

DEFAULT_CATEGORIES = ("cs.CL", "cs.LG", "cs.AI")
LAST_WATCH = "watch_last"  # index metadata: UTC time the last successful watch looked up to (any watch)
WINDOW_END = "watch_last:"  # + `watch_key`: the same for one kind of watch, where its next window starts
PENDING = "watch_pending:"  # + `watch_key`: the window, next page and entries of an unfinished watch
DIGESTS_DIR = "digests"
FIRST_WATCH_DAYS = 1
# arXiv lists a paper once it announces it, up to 3¼ days after its submission time, which is what
# a window asks for (Friday afternoon's papers appear on Monday evening, New York time). A window
# that began where the last one ended never saw the papers submitted before that watch but
# announced after it; each window now reaches back this far, and what it has seen is skipped.
ANNOUNCEMENT_LAG = timedelta(days=4)
SEEN_OUTSIDE = "watch_seen_outside:"  # + `watch_key`: papers placed out of scope and not kept, by whom
PLACED = "watch_placed:"  # + `watch_key`: papers a kind of watch placed lately (the rest held are new to it)
MAX_RESULTS = 10_000  # papers one watch reads; a day of the default categories and ANNOUNCEMENT_LAG hold ~5,000
ARXIV_BEGAN = datetime(1991, 1, 1, tzinfo=timezone.utc)  # its first papers came in August 1991


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
    # The calibrated chance that it belongs to the taxonomy at all, as classify gives it (`in_scope` is
    # scope >= its threshold); None in a digest saved before entries carried it.
    scope: float | None = None


@dataclass
class WatchReport:
    since: str
    until: str
    fetched: int
    entries: list[DigestEntry]
    ingest: IngestReport
    cut_short: str = ""  # why the window is not done (more papers than max_results), if it is not
    # When a later watch of the window (one reading on past --max, or resumed) last added papers in
    # scope to its kept digest, as "YYYY-MM-DDTHH:MM:SSZ"; "" while the digest is as first saved. The
    # digests feed dates the window's entry by it: a feed reader shows an entry again only when its
    # time moves, and the window's end does not.
    revised: str = ""

    @property
    def window(self) -> str:
        """The window watched as people read it ("1 Nov 2024 to 2 Nov 2024 08:38 UTC")."""
        return f"{human_time(self.since)} to {human_time(self.until)}"

    def summary(self) -> str:
        """The one line a finished watch says on stderr: its window in the digest's words."""
        in_scope = sum(1 for e in self.entries if e.in_scope)
        return (
            f"watched {self.window}: {self.fetched} fetched, {len(self.entries)} new, {in_scope} in scope; "
            f"{self.cut_short}{self.ingest.summary()}"
        )


def _stamp(moment: datetime) -> str:
    """YYYYMMDDHHMM, the year in four digits whatever it is (strftime's %Y leaves years before 1000
    short on Linux: 0500-06-15 became 50006150000, read back as the year 5000)."""
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}{moment.hour:02d}{moment.minute:02d}"


def _moment(stamp: str) -> datetime:
    """The naive UTC time a YYYYMMDDHHMM stamp names, `_stamp` read back (ValueError for a stamp
    naming no real minute, 202413990000 and the like)."""
    return datetime.strptime(stamp, "%Y%m%d%H%M")


def watch(
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    since: str | None = None,
    *,
    index_dir: str | Path | None = None,
    keep_all: bool = False,
    progress: bool = True,
    max_results: int = MAX_RESULTS,
    taxonomy_name: str | None = None,
    stop: threading.Event | None = None,
) -> WatchReport:
    """Watch arXiv once (see the module); papers are placed in the survey's taxonomy, or in
    `taxonomy_name`, one added from a curated list, which then also decides what is in scope.
    `stop` set, it stops at the next page (`Stopped`); the next watch resumes the window."""
    from semsearch.embeddings import embedder_for
    from semsearch.index import Index
    from semsearch.lists import classifier_for_taxonomy
    from semsearch.sources.arxiv import ArxivClient, check_categories

    categories = check_categories(categories)
    if since:
        moment = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
        if moment > (utc_now := datetime.now(timezone.utc)):
            raise SemsearchError(
                f"--since {since} is in the future: arXiv has nothing submitted after now (days are UTC days; "
                f"it is {utc_now:%Y-%m-%d %H:%M} UTC)"
            )
        if moment < ARXIV_BEGAN:  # nothing to find, and a window arXiv's query and the stamps cannot hold
            raise SemsearchError(f"--since {since} is before arXiv began ({ARXIV_BEGAN.year})")
    directory = Index.existing(index_dir)  # a watch places papers among known ones: the index must exist
    # One watch of an index at a time (the writer's lock is let go while arXiv is asked, below); the
    # index is opened once it is ours, so a watch that waited reads where the other one ended.
    one_watch = take_lock(directory / WATCH_LOCK, None, "watching arXiv for", who="watch")
    published = None
    try:
        published = Index.open(directory)
        embedder = embedder_for(published.manifest.model, index_dir=directory)
        classifier = classifier_for_taxonomy(published.store, taxonomy_name, embedder.encode)
        if classifier is None:
            raise SemsearchError("the index has no labelled papers to place new ones by; run `semsearch ingest survey`")
        with Ingest(
            index_dir=directory, model=published.manifest.model, progress=progress, prints_summary=True
        ) as ingest:
            ingest.report.carried_from_watch = False  # this watch holds the watch lock: what it finds is older
            return _watch_pages(
                ingest, ArxivClient(stop=stop), published, classifier, embedder, categories, since, keep_all,
                max_results, taxonomy_name, stop,
            )  # fmt: skip
    finally:
        if published is not None:
            published.close()  # its lease kept every later generation from being retired
        drop_lock(one_watch)


def _watch_pages(
    ingest, client, published, classifier, embedder, categories, since, keep_all, max_results, taxonomy_name=None,
    stop=None,
):  # fmt: skip
    """The pages of the watch's window, each stored as it comes. arXiv is asked, and the page
    embedded and placed, with the index's writer lock let go (`IndexWriter.released`): a label
    posted meanwhile is written at once, not refused after 10 s; what this watch staged so far is
    published with it, and its place in the window (the pending state) too."""
    from semsearch.sources.arxiv import ArxivUnavailable, submitted_between

    known = published.store
    now = datetime.now(timezone.utc)
    key = watch_key(categories, taxonomy_name, keep_all)
    state_key, notes = PENDING + key, ""
    state = json.loads(ingest.store.get_meta(state_key) or "{}")  # left by an unfinished watch
    legacy = PENDING + ",".join(categories)  # where it was left before kinds were told apart
    if not (state or taxonomy_name or keep_all) and legacy != state_key and (left := ingest.store.get_meta(legacy)):
        state = json.loads(left)
        ingest.store.set_meta(state_key, left)
        ingest.store.db.execute("DELETE FROM meta WHERE key = ?", (legacy,))
    asked = _stamp(datetime.fromisoformat(since).replace(tzinfo=timezone.utc)) if since else None
    if not state or (asked and state["since"] != asked):  # a new window
        if state:  # said, as the rest of it is never read
            notes = f"the unfinished window {human_time(state['since'])} to {human_time(state['until'])} was left "
            notes += f"after paper {state['offset']} for the one asked for; "
        # A kind's first window reaches back from the last watch of any kind (where every window
        # began before kinds were told apart; more than FIRST_WATCH_DAYS, never less).
        last = known.get_meta(WINDOW_END + key) or known.get_meta(LAST_WATCH)
        start = datetime.fromisoformat(last) - ANNOUNCEMENT_LAG if last else now - timedelta(days=FIRST_WATCH_DAYS)
        state = {"since": asked or _stamp(start), "until": _stamp(now), "offset": 0, "entries": []}
        if asked:  # kept at once: a watch stopped before its first page left the next one a day's window
            ingest.store.set_meta(state_key, json.dumps(state))
            ingest.store.commit()
    until = state["until"]
    entries = [DigestEntry(**e) for e in state["entries"]]
    shown = state.get("shown", 0)  # entries a watch that left this window open already reported
    listed = {e.id for e in entries}  # a paper arXiv sends twice (in a page or across pages) is one line
    placed_now: set[str] = set()  # ... and is placed once, new or not
    # Judged by another classifier (another taxonomy, labels or corpus since), or with keep_all (which
    # keeps them), papers turned away before are placed again.
    judge = hashlib.sha1(classifier.to_bytes()).hexdigest()
    recent = min(state["since"], _stamp(now - ANNOUNCEMENT_LAG - timedelta(days=1)))
    seen_key = SEEN_OUTSIDE + key  # each kind of watch its own: alternating kinds wiped each other's
    seen_outside = {} if keep_all else _seen_outside(ingest.store, seen_key, judge, recent)
    # A paper another kind of watch (or an ingest) stored is new to this kind: listed, placed by its
    # stored vector. A kind that watched before this record was kept lists only what it stores, as
    # it did, this once: its record begins with this watch.
    placed_key = PLACED + key
    placed_by_kind, list_stored = _placed_by_kind(ingest.store, placed_key, recent)
    list_stored = list_stored or (known.get_meta(WINDOW_END + key) is None and not state.get("offset"))
    fetched = state.get("fetched", 0)  # a resumed window counts the pages its first attempt read too
    query = submitted_between(categories, state["since"], until)
    # max_results is what one watch reads: a window holding more stays open, and the next watch
    # reads on from where this one stopped, as a resumed one does.
    cap = state["offset"] + max_results
    pages = client.pages(query, cap, start=state["offset"], by_submission=True)
    most = 0  # the most papers arXiv said the window holds, this run (an empty answer may say 0, or nothing)

    def stopping() -> None:  # between pages, and before a page is embedded (the one long step)
        if stop is not None and stop.is_set():
            raise Stopped("the watch was stopped; the next watch resumes its window")

    while True:
        stopping()
        with ingest.writer.released():
            item = next(pages, None)
        if item is None:
            break
        stopping()
        offset, page = item
        most = max(most, client.total_results or 0)
        # What this window or an earlier one (they overlap: ANNOUNCEMENT_LAG) placed already is not
        # embedded again; a paper whose text arXiv changed is, to store the new text. Placed means
        # published: what an interrupted watch of another window staged is placed and listed again.
        arrived = len(page)
        page, stored = _unseen(page, known, listed | placed_now, seen_outside, placed_by_kind)
        # Held already with other text (a list's title alone, say) and never placed by this kind:
        # new to it, as a paper held with the same text is (stored, below).
        new_to_kind = {p.id for p in page if list_stored and p.id not in placed_by_kind}
        placed_now.update(p.id for p in page + stored)
        placed_by_kind.update((p.id, until) for p in page + stored)
        stored = stored if list_stored else []
        fetched += arrived
        texts, vectors, placed, seconds = [p.embedding_text() for p in page], [], [], 0.0
        if texts:
            with ingest.writer.released():
                started = time.perf_counter()
                vectors = embedder.encode(texts)
                seconds = time.perf_counter() - started
                placed = classifier.classify(texts, vectors, [p.id for p in page])
        # Embedded here, not by the ingest: counted and shown as its own are (the bar's end is what
        # arXiv says the window holds, up to max_results).
        total = client.total_results
        to_come = None if total is None else max(min(total, cap) - offset, 0)
        ingest.count_embedded(len(texts), seconds, to_come=to_come, passed=arrived - len(texts))
        new = [(p, r) for p, r in zip(page, placed, strict=True) if p.id in new_to_kind or known.vec_id(p.id) is None]
        if stored:  # held already, new to this kind: placed by their stored vectors, not stored again
            vec_ids = [known.vec_id(p.id) for p in stored]
            held = known.embeddings_for(vec_ids)
            texts_held, vectors_held = [p.embedding_text() for p in stored], [held[v] for v in vec_ids]
            new += zip(stored, classifier.classify(texts_held, vectors_held, [p.id for p in stored]), strict=True)
        for paper, result in new:  # worth a line in the digest
            listed.add(paper.id)
            entries.append(_entry(paper, result))
        keep = []
        for paper, vector, result in zip(page, vectors, placed, strict=True):
            # A paper the index holds is stored with arXiv's new text whatever its scope: left out,
            # search, related and classify went on answering from words arXiv no longer gives.
            if result.in_scope or keep_all or known.vec_id(paper.id) is not None:
                keep.append((paper, vector))
            else:
                seen_outside[paper.id] = f"{until}|{_text_digest(paper)}"
        ingest.add_embedded(keep)
        state.update(offset=offset, entries=[asdict(e) for e in entries], fetched=fetched, total=most)
        ingest.store.set_meta(state_key, json.dumps(state))
        if not keep_all:
            ingest.store.set_meta(seen_key, json.dumps({"judge": judge, "papers": seen_outside}))
        ingest.store.set_meta(placed_key, json.dumps(placed_by_kind))
        ingest.store.commit()
    # Empty pages end the paging: done only once as many papers were read as arXiv said the window
    # holds (the most it said this run; a run told nothing, the most an earlier attempt was told).
    total = max(most, client.total_results or 0) or state.get("total", 0)
    if state["offset"] < min(total, cap):
        raise ArxivUnavailable(
            f"arXiv stopped sending papers at result {state['offset']} of the {total} it holds for the window; "
            "what arrived is kept, and the next watch reads on from there (if arXiv keeps saying so, "
            "`--since` starts another window)"
        )
    if state["offset"] < total:  # stopped by max_results: the window stays open
        notes += (
            f"the window holds {total} papers, more than --max {max_results}: the next watch reads on from "
            f"paper {state['offset'] + 1}; "
        )
    # The digest is saved before the watch is published as done: a watch killed in between
    # resumes this window and saves the same digest again (saved after, a kill would lose it). A
    # window left open saves what it found so far; the watch that ends it saves it whole.
    save_digest(
        WatchReport(state["since"], until, fetched, entries, IngestReport()),
        index_dir=published.directory,
        taxonomy=taxonomy_name,
    )
    if state["offset"] < total:
        ingest.store.set_meta(state_key, json.dumps(state | {"shown": len(entries)}))
    else:
        ingest.store.db.execute("DELETE FROM meta WHERE key = ?", (state_key,))
        ended = _moment(until).replace(tzinfo=timezone.utc).isoformat()
        ingest.store.set_meta(WINDOW_END + key, ended)
        ingest.store.set_meta(LAST_WATCH, ended)
    return WatchReport(state["since"], until, fetched, entries[shown:], ingest.report, notes)


def watch_key(categories: Sequence[str], taxonomy_name: str | None, keep_all: bool) -> str:
    """Whose windows these are: a set of categories (in any order), the taxonomy that judges, and
    whether everything is kept. Each follows its own: a weekly cs.LG watch began where the daily
    cs.CL one had ended, and a survey watch finished (and claimed) a list's window."""
    return ",".join(sorted(categories)) + (f"|{taxonomy_name}" if taxonomy_name else "") + ("|all" if keep_all else "")


def _text_digest(paper: Paper) -> str:
    return hashlib.sha1(paper.embedding_text().encode()).hexdigest()[:16]


def _seen_outside(store, key: str, judge: str, after: str) -> dict[str, str]:
    """{id: "end of its window|digest of its text"} of the papers that `judge` (a classifier's
    digest) placed out of scope and that were not kept (so the index does not hold them), from
    windows that ended after `after`: older ones cannot come again in this window or a regular
    later one (a `--since` window further back places them again). Anything else in the record
    (another judge's, an index's from elsewhere) is dropped: it only spares placing a paper again."""
    try:
        record = json.loads(store.get_meta(key) or "{}")
    except ValueError:
        return {}
    if not isinstance(record, dict) or record.get("judge") != judge or not isinstance(record.get("papers"), dict):
        return {}
    return _recent(record["papers"], r"\d{12}\|[0-9a-f]{16}", after)


def _placed_by_kind(store, key: str, after: str) -> tuple[dict[str, str], bool]:
    """({id: end of its window} of the papers a kind of watch placed in windows that ended after
    `after`: older ones cannot come again in a regular window), and whether the record was kept
    (papers the index held already are listed as new to the kind only then). Anything unreadable
    is an empty record: it only spares listing a paper again."""
    raw = store.get_meta(key)
    if raw is None:
        return {}, False
    try:
        record = json.loads(raw)
    except ValueError:
        return {}, True
    return (_recent(record, r"\d{12}", after) if isinstance(record, dict) else {}), True


def _recent(record: dict, form: str, after: str) -> dict[str, str]:
    """The entries of a watch's record whose value has its `form` (a window's end first) and whose
    window ended after `after`: anything else (an index's from elsewhere, damage) is dropped."""
    return {k: v for k, v in record.items() if isinstance(v, str) and re.fullmatch(form, v) and v >= after}


def _entry(paper: Paper, result) -> DigestEntry:
    """A paper's line in the digest, as `result` (a classification) placed it."""
    return DigestEntry(
        id=paper.id,
        title=paper.title,
        url=paper.link(),
        category=result.category,
        confidence=round(result.confidence, 4),
        in_scope=result.in_scope,
        scope=result.scope,
        closest=[{"id": n.id, "title": n.title, "categories": n.categories} for n in result.neighbours],
        authors=paper.authors,
        snippet=snippet(paper.abstract),
    )


def _unseen(
    page: Sequence[Paper], store, seen: set[str], outside: dict[str, str], placed_by_kind: dict[str, str]
) -> tuple[list[Paper], list[Paper]]:
    """The papers of a page not placed before, none twice, none in `seen` (listed by this window or
    placed by this run): (those to embed and place: not in `store`, the published index, nor turned
    away (`outside`) with the same text; those `store` holds with the same text that this kind of
    watch has not placed (`placed_by_kind`))."""
    fresh, stored = [], []
    for paper in page:
        if paper.id in seen:
            continue
        seen.add(paper.id)
        held = store.get(paper.id)
        # Turned away with this text: passed over, unless the index holds the paper (with its old
        # text, which a watch before this rule left there).
        if held is None and paper.id in outside and outside[paper.id].endswith(_text_digest(paper)):
            continue
        if held is None or held.embedding_text() != paper.embedding_text():
            fresh.append(paper)
        elif paper.id not in placed_by_kind:
            stored.append(paper)
    return fresh, stored


# --- digests kept in the index directory -----------------------------------------------------------
# A digest is digests/<since>-<until>.json. Anything else found there (a stray file, one cut short
# by a crash, garbage) is skipped with a note: one bad file must not take the API down with it.
MAX_DIGEST_BYTES = 64 * 1024 * 1024  # a watch of MAX_RESULTS papers writes a few MB


class DamagedDigest(SemsearchError):
    """A digest file that cannot be read as one (cut short, garbage, not a digest): 422."""

    http_status = 422


# A digest file may come from a copied index: its text is shown as a stored paper's is (control and
# bidirectional characters as spaces), its link only when it is a web address.
_Text = Annotated[str, AfterValidator(printable)]


class _Closest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: _Text
    title: _Text
    categories: list[_Text] = Field(default_factory=list)


class _StoredEntry(BaseModel):
    """A digest entry as saved; checked before it is rendered (the renderers trust their input)."""

    model_config = ConfigDict(extra="ignore")
    id: _Text
    title: _Text
    url: Annotated[str | None, AfterValidator(web_url)]
    category: _Text
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    in_scope: bool
    closest: list[_Closest] = Field(default_factory=list)
    authors: list[_Text] = Field(default_factory=list)
    snippet: _Text = ""
    scope: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)


class _StoredDigest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    since: str
    until: str
    fetched: int = Field(ge=0)
    entries: list[_StoredEntry]
    revised: str = Field(default="", pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?$")

    @field_validator("since", "until")
    @classmethod
    def _a_time(cls, value: str) -> str:
        if not re.fullmatch(r"\d{12}", value):
            raise ValueError("not a YYYYMMDDHHMM time")
        _moment(value)
        return value


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a digest holds")


def _printable(name: str) -> str:
    """A file name as text that encodes (names that are not UTF-8 carry surrogates)."""
    return os.fsencode(name).decode("utf-8", "replace")


def _one_line(err: BaseException) -> str:
    """An error as one short line for a log or the watch status (its own text may span lines)."""
    text = one_line(str(err)) or type(err).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def _read_small(path: Path, limit: int) -> bytes:
    """A regular file's bytes, up to `limit`: a FIFO, a device (a link to /dev/zero) or a huge
    file would hang or exhaust a request (ValueError says which)."""
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO does not block the open
    with os.fdopen(handle, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"over {limit} bytes")
    return data


def read_digest_file(path: Path) -> WatchReport:
    """The digest saved at `path`, checked whole; DamagedDigest (one line, no file content) when
    it cannot be read as one."""
    try:
        data = json.loads(_read_small(path, MAX_DIGEST_BYTES).decode("utf-8"), parse_constant=_refuse_constant)
        stored = _StoredDigest.model_validate(data)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates (\ud800) cannot be served
    except ValidationError as err:
        first = err.errors()[0]  # its location and message, never the offending value
        where = ".".join(str(p) for p in first.get("loc", ())) or "top level"
        raise DamagedDigest(f"digest {_printable(path.stem)} is not a digest ({where}: {first['msg']})") from None
    except OSError as err:
        raise DamagedDigest(f"cannot read digest {_printable(path.stem)}: {err.strerror or err}") from None
    except (ValueError, RecursionError) as err:  # not UTF-8, not JSON (cut short, garbage), too deep
        raise DamagedDigest(
            f"digest {_printable(path.stem)} is damaged ({type(err).__name__}: {_one_line(err)[:120]})"
        ) from None
    if f"{stored.since}-{stored.until}" != path.stem:
        raise DamagedDigest(f"digest {_printable(path.stem)} holds the window {stored.since}-{stored.until}")
    entries = [DigestEntry(**e.model_dump()) for e in stored.entries]
    return WatchReport(stored.since, stored.until, stored.fetched, entries, IngestReport(), revised=stored.revised)


_noted: set[tuple[str, int, int]] = set()  # (path, mtime, size) of the files already warned about
_noted_lock = threading.Lock()


def _note_skipped(path: Path, reason: str) -> None:
    """Warn once per file version: a server lists digests on every request."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(path), 0, 0)
    with _noted_lock:
        if key in _noted:
            return
        if len(_noted) > 1000:  # a file rewritten again and again: forget, rather than grow without end
            _noted.clear()
        _noted.add(key)
    log.warning("semsearch: skipping %s: %s", _printable(str(path)), reason)


def _digests_folder(*, index_dir: Path, taxonomy: str | None = None) -> Path:
    """Where one kind of watch keeps its digests: the survey's in digests/, a curated list's in
    digests/<name>/. Its entries are placed in that list: kept with the survey's, the page showed a
    list's placements as the survey's, and two kinds of watch in one minute wrote one file."""
    from semsearch.lists import SURVEY, check_name

    folder = Path(index_dir) / DIGESTS_DIR
    return folder if taxonomy in (None, SURVEY) else folder / check_name(taxonomy)


def save_digest(report: WatchReport, *, index_dir: Path, taxonomy: str | None = None) -> Path:
    """Keep a finished watch's digest (JSON, every entry) as <since>-<until>.json in its kind's
    folder (`_digests_folder`); a digest of the same window already there keeps its entries (an
    empty second run wrote over the first)."""
    folder = _digests_folder(index_dir=index_dir, taxonomy=taxonomy)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a writer killed mid-write; none takes an hour
        try:
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink()
        except OSError:
            pass
    target = folder / f"{report.since}-{report.until}.json"
    entries, fetched, revised = report.entries, report.fetched, ""
    if target.exists():  # the window read on (--max), resumed, or watched twice in one minute
        try:
            kept = read_digest_file(target)
        except DamagedDigest:
            kept = None  # not a digest to keep; written over
        if kept is not None:
            fresh = {e.id for e in entries}
            entries, fetched = [e for e in kept.entries if e.id not in fresh] + entries, max(kept.fetched, fetched)
            grew = {e.id for e in entries if e.in_scope} - {e.id for e in kept.entries if e.in_scope}
            revised = _revised_after(kept) if grew else kept.revised
    data = {"since": report.since, "until": report.until, "fetched": fetched, "entries": [asdict(e) for e in entries]}
    if revised:
        data["revised"] = revised
    write_atomically(target, json.dumps(data, ensure_ascii=False).encode("utf-8"))
    return target


def _revised_after(kept: WatchReport) -> str:
    """Now, as the digest's `revised` time, and later than the time its feed entry showed before
    (the window's end, or the last revision), so that the entry's time moves even within a second."""
    if kept.revised:
        before = datetime.strptime(kept.revised, "%Y-%m-%dT%H:%M:%SZ")
    else:
        before = _moment(kept.until)
    moment = max(datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None), before + timedelta(seconds=1))
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


_summaries: dict[str, tuple[tuple, dict | None, str | None]] = {}  # path -> (version, listed, reason)
_summaries_lock = threading.Lock()


def _summary(path: Path) -> tuple[dict | None, str | None]:
    """(its line in the listing, or why it is skipped), read once per version of the file: a
    server lists the digests on every request, and a year of them is hundreds of files."""
    try:
        status = path.stat()
        version = (status.st_ino, status.st_mtime_ns, status.st_size)
    except OSError:
        version = None
    with _summaries_lock:
        known = _summaries.get(str(path))
    if version is not None and known is not None and known[0] == version:
        return known[1], known[2]
    try:
        if not DIGEST_NAME.fullmatch(path.stem):
            raise DamagedDigest(f"{_printable(path.name)} is not named like a digest (<since>-<until>.json)")
        report = read_digest_file(path)
        in_scope = sum(1 for e in report.entries if e.in_scope)
        listed, reason = {"name": path.stem, "since": report.since, "until": report.until, "papers": in_scope}, None
    except DamagedDigest as err:
        _note_skipped(path, str(err))
        listed, reason = None, str(err)
    if version is not None:
        with _summaries_lock:
            if len(_summaries) > 10_000:
                _summaries.clear()
            _summaries[str(path)] = (version, listed, reason)
    return listed, reason


def scan_digests(*, index_dir: Path, taxonomy: str | None = None) -> tuple[list[dict], list[dict]]:
    """(the readable digests of a kind of watch newest first: name, window, in-scope papers; the
    files skipped, each with its name and why). A file skipped is also logged, once."""
    listed, skipped = [], []
    folder = _digests_folder(index_dir=index_dir, taxonomy=taxonomy)
    for path in sorted(folder.glob("*.json"), key=lambda p: _newest(p.stem), reverse=True):
        line, reason = _summary(path)
        if line is not None:
            listed.append(dict(line))
        else:
            skipped.append({"file": _printable(path.name), "reason": reason})
    return listed, skipped


def _newest(name: str) -> tuple[str, str]:
    """A digest's place, newest first: by the end of its window, then its start (<since>-<until>):
    by the start, a window reaching back further (a backfill with --since, or the first after a
    first watch) sorted below older ones."""
    return (name[13:], name[:12]) if DIGEST_NAME.fullmatch(name) else (name, "")


def list_digests(*, index_dir: Path, taxonomy: str | None = None) -> list[dict]:
    """The saved digests, newest first: name, window and how many in-scope papers each lists."""
    return scan_digests(index_dir=index_dir, taxonomy=taxonomy)[0]


def digest_json(name: str | None = None, *, index_dir: Path, taxonomy: str | None = None) -> dict | None:
    """A saved digest (the newest readable one when `name` is None) as `render_digest(..., "json")`
    gives it; None when there is none yet."""
    if name is not None:
        return json.loads(render_digest(load_digest(name, index_dir=index_dir, taxonomy=taxonomy), "json"))
    folder = _digests_folder(index_dir=index_dir, taxonomy=taxonomy)
    names = sorted((p.stem for p in folder.glob("*.json") if DIGEST_NAME.fullmatch(p.stem)), key=_newest, reverse=True)
    for candidate in names:  # the newest window first, the damaged ones passed over
        try:
            report = read_digest_file(folder / f"{candidate}.json")
        except DamagedDigest as err:
            _note_skipped(folder / f"{candidate}.json", str(err))
            continue
        return json.loads(render_digest(report, "json"))
    return None


def load_digest(name: str, *, index_dir: Path, taxonomy: str | None = None) -> WatchReport:
    """The digest called `name`; NotFound for a name not of the digest form (no path reaches
    outside digests/) or not there, DamagedDigest for a file that cannot be read as one."""
    if not DIGEST_NAME.fullmatch(name):
        raise NotFound(f"no digest {name!r}")
    path = _digests_folder(index_dir=index_dir, taxonomy=taxonomy) / f"{name}.json"
    if not path.exists():
        raise NotFound(f"no digest {name!r}")
    return read_digest_file(path)


MAX_INTERVAL_DAYS = 366
# Between two watches of arXiv itself: its API asks for 3 s between requests and announces new
# papers once a day, so a shorter turn only asks for the same listing again; a minute also keeps a
# watch that fails at once (arXiv down, no network) to one request a minute, not thousands a second.
MIN_WATCH_SECONDS = 60


def parse_interval(text: str) -> float:
    """Seconds in an interval such as 90s, 30m, 24h or 1d, at most MAX_INTERVAL_DAYS (the next turn
    must be a time the clock can hold)."""
    # ASCII digits, as every number semsearch reads: `\d` took "٣h" (Arabic-Indic) for three hours.
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*", text or "")
    if not match:
        raise SemsearchError(f"cannot read the interval {text!r} (e.g. 30m, 24h, 1d)")
    if float(match.group(1)) <= 0:  # read well enough: it is the length that is wrong
        raise SemsearchError(f"the interval {text.strip()!r} is no time at all: give one longer than zero (e.g. 24h)")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds > MAX_INTERVAL_DAYS * 86400:
        raise SemsearchError(f"the interval {text.strip()!r} is longer than {MAX_INTERVAL_DAYS} days")
    return seconds


def watch_interval(text: str) -> float:
    """`watch --every` and `serve --watch-every`: the interval in seconds (`parse_interval`), at least
    MIN_WATCH_SECONDS when the watch asks arXiv itself; a mirror or stub named by SEMSEARCH_ARXIV_URL
    is its owner's to pace. `--every 0.001s` turned a failing watch into thousands of requests a second."""
    from semsearch.sources.arxiv import asks_arxiv_itself

    seconds = parse_interval(text)
    if seconds < MIN_WATCH_SECONDS and asks_arxiv_itself():
        raise SemsearchError(
            f"the interval {text.strip()!r} is shorter than a minute: arXiv asks for 3 s between requests and "
            "announces new papers once a day (e.g. 24h)"
        )
    return seconds


def watch_every(
    seconds: float,
    stop: threading.Event,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    on_done: Callable[[WatchReport | None, Exception | None], None] | None = None,
    *,
    index_dir: str | Path | None = None,
    on_start: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Watch now and then every `seconds` until `stop` is set (`options` go to `watch`). A failed
    watch, whatever the exception, is reported and tried again at the next turn, where it resumes;
    a failing `on_start`/`on_done` is logged in one line and does not end the schedule either,
    unless it raises a SemsearchError (the user's to fix)."""
    while not stop.is_set():
        _quietly(on_start)
        try:
            report, error = watch(categories, index_dir=index_dir, progress=False, stop=stop, **options), None
        except Stopped:
            return
        except Exception as err:  # noqa: BLE001 - the schedule outlives one bad connection or answer
            report, error = None, err
        if on_done:
            _quietly(on_done, report, error)
        stop.wait(seconds)


def _quietly(callback: Callable[..., None] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except SemsearchError:
        raise  # the user's to fix (e.g. `watch --every --output` to a file that cannot be written): stop
    except Exception as err:  # noqa: BLE001 - a report that fails otherwise must not stop the schedule
        log.warning("semsearch: reporting a watch failed: %s: %s", type(err).__name__, _one_line(err))


# --- `serve --watch-every`: the schedule and its status --------------------------------------------
STATUS_FILE = "watch-status.json"  # in the index directory; written only by the process that watches
STOP_WAIT = 60.0  # seconds a stopping server waits for its watch to stop (a page embedded, an answer from arXiv)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _with_state(status: dict) -> dict:
    """Add `state`: stopped (the server stopped it), dead (the schedule ended while it should run),
    running, failing (the last watch failed; the next turn retries) or ok."""
    if not status.get("alive", False):
        state = "stopped" if status.get("stopped") else "dead"
    elif status.get("running"):
        state = "running"
    elif status.get("last_error"):
        state = "failing"
    else:
        state = "ok"
    return {**status, "state": state}


class Watcher:
    """`serve --watch-every`: `watch_every` in a daemon thread, and what it last did (`status`) for
    /api/health. The status is also written to STATUS_FILE in the index directory, atomically, so
    that `serve --workers N`'s processes, which do not watch (the parent does), can report it:
    this object is that file's one writer, `read_watch_status` its readers."""

    def __init__(
        self,
        seconds: float,
        categories: Sequence[str] = DEFAULT_CATEGORIES,
        *,
        index_dir: str | Path,
        **options: Any,
    ):
        self.directory = Path(index_dir)
        self.seconds = seconds
        self.categories = list(categories)
        self.options = options
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._status: dict = {
            "every": seconds,
            "pid": os.getpid(),
            "started": _now(),
            "alive": True,
            "running": False,
            "runs": 0,
            "failures": 0,
            "last_run": None,
            "last_success": None,
            "last_error": None,
            "next_run": _now(),
        }
        self._unwritable = False
        self.thread = threading.Thread(target=self._run, name="semsearch-watch", daemon=True)

    def start(self) -> Watcher:
        """Start watching; `close()` stops."""
        self._publish()  # before any worker starts: none reads the status a previous server left
        self.thread.start()
        return self

    def close(self, seconds: float = STOP_WAIT) -> None:
        """Stop, and wait for the watch to stop at its next page: a server stopped with Ctrl-C while
        its watch embedded ended in an abort (the interpreter left the thread inside the encoder)."""
        before = self.status()
        self.stop.set()
        if self.thread.ident is None:
            return
        self.thread.join(seconds)
        if self.thread.is_alive():
            log.warning(
                "semsearch serve: the watch did not stop within %d s; what it embedded waits in staging/ for the "
                "next watch",
                seconds,
            )
        elif before["running"] and _turns(self.status()) == _turns(before):
            # Said, as `watch` says it: the server's stop was silent about the watch it cut short. Not
            # said of a turn that ended meanwhile (its last page had come, it was publishing): that
            # watch is done, and the next one does not resume it.
            log.warning("semsearch serve: the watch was stopped mid-run; the next watch resumes its window")

    def status(self) -> dict:
        with self._lock:
            status = dict(self._status)
        if status["alive"] and self.thread.ident is not None and not self.thread.is_alive():
            status["alive"] = False  # ended without a word (cannot happen short of a BaseException)
        return _with_state(status)

    def _run(self) -> None:
        try:
            watch_every(
                self.seconds, self.stop, self.categories, on_done=self._done, on_start=self._starting,
                index_dir=self.directory, **self.options,
            )  # fmt: skip
        except BaseException as err:
            log.error("semsearch serve: the watch schedule ended: %s", _one_line(err))
            self._update(last_error=f"the watch schedule ended: {_one_line(err)}")  # logged: not raised again
        finally:
            self._update(alive=False, running=False, stopped=self.stop.is_set(), next_run=None)

    def _starting(self) -> None:
        self._update(running=True, last_run=_now())

    def _done(self, report: WatchReport | None, error: Exception | None) -> None:
        next_run = (datetime.now(timezone.utc) + timedelta(seconds=self.seconds)).isoformat(timespec="seconds")
        if error is None:
            self._update(running=False, last_error=None, last_success=_now(), next_run=next_run, increment="runs")
            log.info(
                "semsearch serve: watched %s: %d fetched, %d new", report.window, report.fetched, len(report.entries)
            )
            return
        problem = (
            _one_line(error) if isinstance(error, SemsearchError) else f"{type(error).__name__}: {_one_line(error)}"
        )
        self._update(running=False, last_error=problem, next_run=next_run, increment="failures")
        log.warning("semsearch serve: the watch failed: %s; next try at %s", problem, next_run)

    def _update(self, *, increment: str | None = None, **changes: Any) -> None:
        with self._lock:
            self._status.update(changes)
            if increment:
                self._status[increment] += 1
        self._publish()

    def _publish(self) -> None:
        with self._lock:
            data = json.dumps(self._status).encode("utf-8")
        try:
            write_atomically(self.directory / STATUS_FILE, data)
        except OSError as err:
            if not self._unwritable:  # said once; the status in memory still serves this process
                log.warning("semsearch serve: cannot write the watch status: %s", _one_line(err))
            self._unwritable = True


class _WatchStatus(BaseModel):
    """The status file as the Watcher writes it; anything else there is reported as unknown."""

    model_config = ConfigDict(extra="ignore")
    every: float | None = Field(default=None, allow_inf_nan=False)
    pid: int = Field(gt=0, lt=2**31)  # os.kill(0 or -1, 0) would ask about whole process groups
    started: str | None = None
    alive: bool
    stopped: bool = False
    running: bool = False
    runs: int = 0
    failures: int = 0
    last_run: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    next_run: str | None = None


def _turns(status: dict) -> int:
    """The watch's turns ended so far, done or failed, by its status."""
    return status["runs"] + status["failures"]


def read_watch_status(*, index_dir: str | Path, watcher: int | None = None) -> dict:
    """The watch status another process of this server wrote (see `Watcher`): `state` dead when
    the watching process is gone, unknown when the file cannot be read, or when it was written by
    another process than `watcher` (the pid of this server's watching process, when known)."""
    path = Path(index_dir) / STATUS_FILE
    try:
        data = json.loads(_read_small(path, 64 * 1024).decode("utf-8"), parse_constant=_refuse_constant)
        status = _WatchStatus.model_validate(data).model_dump()
        json.dumps(status, ensure_ascii=False).encode("utf-8")  # served as it is: it must encode
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "top level"
        return {"state": "unknown", "last_error": f"cannot read the watch status ({where}: {first['msg']})"}
    except (OSError, ValueError, RecursionError) as err:
        return {"state": "unknown", "last_error": f"cannot read the watch status: {_one_line(err)[:200]}"}
    if watcher is not None and status["pid"] != watcher:
        # A second server watching this index (its own --watch-every) writes the same file: its
        # state was reported as this server's (a day "stopped" after it stopped, with a 24h turn).
        return {
            "state": "unknown",
            "last_error": f"the watch status was last written by another server's watch (pid {status['pid']}) of "
            f"this index; this server's (pid {watcher}) writes it again at its next turn",
        }
    if status["alive"] and not _pid_alive(status["pid"]):
        status.update(alive=False, stopped=False)  # the watching process went without a word (killed)
    return _with_state(status)


SNIPPET_CHARS = 300
SITE = "http://127.0.0.1:8000"  # where `semsearch serve` listens by default: digests link to its paper view


def paper_view(site: str | None) -> str | None:
    """The address of a paper's view under `site` (a digest's "view in semsearch" link), or None
    for no such link: `site` is empty, or None. Only an http(s) address with a host (the rule of
    every link, `paper.service_address`: no query or fragment to append a path to)."""
    if not site:
        return None
    address = site.strip()
    if service_address(address) is None:
        raise SemsearchError(
            f"site {site!r} (--site or $SEMSEARCH_SITE): expected an http(s) address such as {SITE}, or '' for no links"
        )
    return address.rstrip("/") + "/paper/"


PAPER_VIEW = paper_view(SITE)


def _paper_link(entry: DigestEntry, paper_view: str | None) -> str:
    """Where a digest's title links: the paper's own address, else its view, else arXiv's page."""
    return entry.url or (paper_view + entry.id if paper_view else f"https://arxiv.org/abs/{entry.id}")


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The opening of an abstract, cut at a word."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def human_time(stamp: str) -> str:
    """202411280000 → "28 Nov 2024"; with a time of day when there is one ("28 Nov 2024 20:53 UTC")."""
    moment = _moment(stamp)
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
    report: WatchReport, fmt: str = "markdown", min_confidence: float = 0.0, paper_view: str | None = PAPER_VIEW
) -> str:
    """The digest of a watch: in-scope new papers grouped by taxonomy node, most confident first,
    each with its authors, the opening of its abstract and links to arXiv and to its paper view
    (none when `paper_view` is None: no server to show it)."""
    shown = [e for e in report.entries if e.in_scope and e.confidence >= min_confidence]
    groups: dict[str, list[DigestEntry]] = {}
    for entry in sorted(shown, key=lambda e: (e.category, -e.confidence)):
        groups.setdefault(entry.category, []).append(entry)
    window = report.window
    papers = counted(len(shown), "new paper")
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
                link = f"<a href='{esc(_paper_link(e, paper_view))}'>{esc(e.title)}</a>"
                closest = "; ".join(esc(c["title"]) for c in e.closest)
                view = f" · <a href='{esc(paper_view + e.id)}'>view in semsearch</a>" if paper_view else ""
                parts.append(
                    f"<li>{link}<p class='meta'>{esc(_authors(e.authors))} · {esc(e.id)} · "
                    f"confidence {e.confidence:.2f}{view}</p>"
                    f"<p>{esc(e.snippet)}</p><small>closest known: {closest}</small></li>"
                )
            parts.append("</ul>")
        return "\n".join(parts + ["</body></html>"]) + "\n"
    if fmt != "markdown":
        raise SemsearchError(f"unknown digest format {fmt!r} (markdown, json or html)")
    lines = [f"# semsearch digest: {papers}, {window}", ""]
    for node, items in groups.items():
        lines += [f"## {markup.text(node.replace('/', ' › '))}", ""]
        for e in items:
            target = _md_url(_paper_link(e, paper_view))
            lines.append(
                f"- **[{markup.text(e.title)}]({target})** ({markup.text(e.id)}), confidence {e.confidence:.2f}"
            )
            if e.authors:
                view = f" · [view in semsearch]({_md_url(paper_view + e.id)})" if paper_view else ""
                lines.append(f"  {markup.text(_authors(e.authors))}{view}")
            if e.snippet:
                lines.append(f"  > {markup.text(e.snippet)}")
            lines.append("  - closest known: " + "; ".join(markup.text(c["title"]) for c in e.closest))
        lines.append("")
    return "\n".join(lines)


def _md_url(url: str) -> str:
    """A link target that ends where it should: spaces and brackets percent-encoded."""
    return url.translate({ord(" "): "%20", ord("("): "%28", ord(")"): "%29", ord("<"): "%3C", ord(">"): "%3E"})
