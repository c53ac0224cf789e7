"""Papers from the arXiv API, through the `arxiv` package: rate-limited, with timeouts and retries
(waiting what arXiv's Retry-After asks, up to MAX_RETRY_AFTER; asked for longer, it stops at once).

Settings come from the environment so that tests and mirrors can redirect the client:
`SEMSEARCH_ARXIV_URL` (API base URL), `SEMSEARCH_ARXIV_DELAY` (seconds between requests, default 3,
as arXiv's terms ask), `SEMSEARCH_ARXIV_TIMEOUT` (seconds per HTTP call, default 30).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import arxiv
import requests

from semsearch.errors import SemsearchError, Stopped, Unreachable, network_reason
from semsearch.fetch import BoundedSession, TooLarge
from semsearch.paper import Paper, normalize_title, parse_arxiv_id, service_address, year_from_arxiv_id

SOURCE = "arxiv"
DEFAULT_URL = "https://export.arxiv.org/api/query"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
ID_CHUNK = 50  # ids per request: keeps the URL short and each page small
TITLE_CHUNK = 8  # titles per request when looking papers up by title
QUERY_PAGE = 100
MAX_ANSWER_BYTES = 64 * 2**20  # a page of 100 papers is about 300 KB; more than this is not arXiv
ATOM_FEED = "{http://www.w3.org/2005/Atom}feed"
TOTAL_RESULTS = "{http://a9.com/-/spec/opensearch/1.1/}totalResults"
FEED_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?feed\s*>\s*\Z")  # a whole feed ends with its root's end tag
# The longest Retry-After (429, 503) waited out. arXiv's throttling asks for seconds; a longer wait
# (maintenance, a block) is said at once rather than slept through by a command or a request
# someone waits on, or by a scheduled watch that would then hold the index's writer lock meanwhile.
MAX_RETRY_AFTER = 60.0


# arXiv asks for one request every 3 s from a client, so the pacing is shared by every client here.
_pace_lock = threading.Lock()
_last_request_at = 0.0


class ArxivUnavailable(Unreachable):
    """arXiv could not be reached at all (no network, DNS failure, or every retry failed)."""


@dataclass
class FetchResult:
    papers: list[Paper] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the rest was not fetched, when arXiv stopped answering part-way

    @property
    def why_missing(self) -> str:
        """Why ids are missing, in brackets after their count, when arXiv stopped part-way; else empty."""
        return f" ({self.stopped})" if self.stopped else ""


class NotAFeed(requests.RequestException):
    """An answer that is not arXiv's Atom feed (a proxy's or captive portal's page, garbage, nothing):
    the `arxiv` package reads it as a page without papers, which a watch took for "nothing new"."""


# Per thread, about the current call: what its answer said beyond the status that the `arxiv`
# package drops: Retry-After and totalResults.
_calls = threading.local()


class _TimeoutSession(BoundedSession):
    """Every call whole within `timeout` seconds (`BoundedSession`), at most MAX_ANSWER_BYTES, and
    an Atom feed when HTTP 200."""

    def __init__(self, timeout: float, pace: Callable[[], None], stop: threading.Event | None = None):
        super().__init__(timeout, MAX_ANSWER_BYTES, stop)
        self.pace = pace

    def before_redirect(self) -> None:
        self.pace()

    def on_headers(self, response) -> None:
        _calls.retry_after = response.headers.get("Retry-After")

    def request(self, method, url, **kwargs):
        _calls.retry_after = None
        try:
            response = super().request(method, url, **kwargs)
        except TooLarge as err:
            raise NotAFeed(str(err)) from None
        if response.status_code == 200:
            root = _atom_feed(response.content)
            if root is None:
                kind = response.headers.get("content-type", "no content type")
                raise NotAFeed(f"its answer is not an Atom feed ({kind}, {len(response.content):,} bytes)")
            total = _total_results(root)
            if total is not None:  # the most any answer of one page said (`ArxivClient._page`)
                _calls.most_total = max(total, getattr(_calls, "most_total", None) or 0)
        return response


def _atom_feed(content: bytes):
    """The document's root when it is an Atom <feed> (what arXiv sends, with or without entries),
    else None. Parsed as the `arxiv` package parses it: no entities expanded, nothing fetched."""
    from lxml import etree

    if not FEED_END.search(content[-4096:]):  # cut short (a connection closed mid-answer): read leniently, the
        return None  # bytes before the cut were a feed whose last entry stopped mid-abstract, stored as a paper
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError:
        return None
    return root if root is not None and root.tag == ATOM_FEED else None


def _total_results(feed) -> int | None:
    """How many results the feed says its query has (opensearch:totalResults), if it says."""
    text = (feed.findtext(TOTAL_RESULTS) or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def retry_after(value: str | None, now: datetime | None = None) -> tuple[float, str] | None:
    """A Retry-After header as (seconds to wait, what arXiv asked in words): delay-seconds
    ("120") or an HTTP date ("Wed, 21 Oct 2026 07:28:00 GMT", a past one meaning now). None when
    absent or unreadable, which leaves the wait to the backoff."""
    value = (value or "").strip()
    if re.fullmatch(r"[0-9]+", value):
        words = f"{int(value):,} seconds" if len(value) <= 15 else f"a {len(value)}-digit number of seconds"
        return float(value), words
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:  # HTTP dates are GMT
            moment = moment.replace(tzinfo=timezone.utc)
        # In UTC inside the try: 31 Dec 9999 23:59 -0100 is past the last day a datetime can hold.
        moment = moment.astimezone(timezone.utc)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    return max(seconds, 0.0), f"until {moment:%d %b %Y %H:%M:%S} UTC"


def _env_float(name: str, default: float, *, positive: bool = False) -> float:
    """A number of seconds from the environment: finite and not negative (`positive`: above 0)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= 86400 or (seconds == 0 and positive):
        raise SemsearchError(f"{name} must be a number of seconds from 0 to 86400 (a timeout above 0): {value!r}")
    return seconds


def validate_ids(values: Iterable[str]) -> list[str]:
    """Versionless arXiv ids, in order, without repeats; an invalid one is a user error."""
    ids: list[str] = []
    for value in values:
        arxiv_id = parse_arxiv_id(value)
        if arxiv_id is None:
            raise SemsearchError(f"invalid arXiv id: {value!r} (expected e.g. 2308.13137 or hep-th/9901001)")
        if arxiv_id not in ids:
            ids.append(arxiv_id)
    return ids


MAX_ABSTRACT_CHARS = 20_000  # arXiv caps abstracts at 1,920 characters; more is not an abstract


def paper_from_result(result: arxiv.Result) -> Paper | None:
    """The paper an entry describes; None for what is not one: an error entry (arXiv reports errors
    as entries with a non-paper id), an entry without a title (an entity the parser would not
    expand left one empty) or with one longer than every door takes (MAX_TITLE)."""
    from semsearch.requests_models import MAX_TITLE

    arxiv_id = parse_arxiv_id(result.entry_id)
    title = " ".join(result.title.split())
    if arxiv_id is None or not title or len(title) > MAX_TITLE:
        return None
    return Paper(
        id=arxiv_id,
        title=title,
        abstract=" ".join(result.summary[:MAX_ABSTRACT_CHARS].split()),
        authors=[author.name for author in result.authors],
        published=result.published.date().isoformat() if result.published else None,
        updated=result.updated.date().isoformat() if result.updated else None,
        arxiv_categories=list(result.categories),
        year=year_from_arxiv_id(arxiv_id),
        url=f"https://arxiv.org/abs/{arxiv_id}",
        sources=[SOURCE],
    )


def _is_name_resolution_failure(err: Exception) -> bool:
    text = repr(err)
    return "NameResolutionError" in text or "Name or service not known" in text or "gaierror" in text


def api_url() -> str:
    """The API every request goes to: $SEMSEARCH_ARXIV_URL (a mirror, a test's stub), else arXiv's."""
    return os.environ.get("SEMSEARCH_ARXIV_URL") or DEFAULT_URL


def asks_arxiv_itself() -> bool:
    """Whether requests go to arXiv's own API, whose terms set the pace (`watch.watch_interval`): by
    its host, however the URL is spelt (`…/query/`, http, capitals passed for a mirror's)."""
    host = (urlsplit(api_url()).hostname or "").rstrip(".")
    return host == "arxiv.org" or host.endswith(".arxiv.org")


class ArxivClient:
    def __init__(
        self,
        base_url: str | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        retries: int = 4,
        backoff: float | None = None,
        stop: threading.Event | None = None,
    ):
        self.stop = stop  # set (a server stopping its watch): every wait here, for arXiv too, ends at once, in Stopped
        self.base_url = base_url or api_url()
        if service_address(self.base_url) is None:  # a setting, not the network, is wrong: said at once
            shown = re.sub(r"//[^/@]*@", "//…@", self.base_url)  # a password in it is not repeated
            raise SemsearchError(
                f"SEMSEARCH_ARXIV_URL {shown!r}: expected an http(s) address with a host (a port from 1 to 65535, "
                f"no query or fragment), such as {DEFAULT_URL}"
            )
        self.delay = delay if delay is not None else _env_float("SEMSEARCH_ARXIV_DELAY", 3.0)
        self.timeout = timeout if timeout is not None else _env_float("SEMSEARCH_ARXIV_TIMEOUT", 30.0, positive=True)
        self.retries = retries
        # Back off from the pacing interval: a server that paces us at 3 s is retried at 3, 6, 12 s...
        self.backoff = backoff if backoff is not None else max(self.delay, 0.0)
        self.total_results: int | None = None  # what arXiv said the last query has (totalResults), if it said
        self._client = arxiv.Client(delay_seconds=self.delay, num_retries=0)
        self._client.query_url_format = self.base_url.rstrip("?") + "?{}"
        self._client._session = _TimeoutSession(self.timeout, self._wait_turn, stop)

    def _wait_turn(self) -> None:
        global _last_request_at
        with _pace_lock:
            wait = _last_request_at + self.delay - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            _last_request_at = time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Wait, unless `stop` is set first: a server stopped while arXiv failed sat out the retries'
        backoff (40 s and more) before it exited, then logged a "next try" that would never come."""
        if self.stop is None:
            time.sleep(seconds)
        elif self.stop.wait(seconds):
            raise Stopped("the watch was stopped; the next watch resumes its window")

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (from 1): doubling from `backoff`. The one
        policy of every retry here, unless arXiv's own Retry-After asks for longer."""
        return self.backoff * 2 ** (attempt - 1)

    def _page(self, search: arxiv.Search, offset: int, size: int) -> list[arxiv.Result]:
        """One page of results, retrying throttling, server errors, timeouts and dropped connections;
        a Retry-After is waited out up to MAX_RETRY_AFTER, and longer is ArxivUnavailable at once."""
        self._client.page_size = size
        last_error: Exception | None = None
        asked = 0.0  # what the last answer's Retry-After asked for
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(max(asked, self._backoff(attempt)))
            asked = 0.0
            self._wait_turn()
            page: list[arxiv.Result] = []
            _calls.most_total = None
            try:
                # The package asks for the next page itself when one comes short of the total it was
                # told; an empty one then raises: what this call already has is its page (it was
                # thrown away, and the same page asked for again on every attempt and every watch).
                try:
                    page.extend(itertools.islice(self._client.results(search, offset), size))
                except arxiv.UnexpectedEmptyPageError:
                    if not page:
                        raise
                self.total_results = getattr(_calls, "most_total", None)
                return page
            except arxiv.HTTPError as err:
                if err.status not in RETRYABLE_STATUS:
                    raise SemsearchError(f"arXiv answered HTTP {err.status} for {err.url}") from None
                last_error = err
                wait = retry_after(getattr(_calls, "retry_after", None))
                if wait is not None and wait[0] > MAX_RETRY_AFTER:
                    raise ArxivUnavailable(
                        f"arXiv asked to wait {wait[1]} before asking again (HTTP {err.status}), longer than "
                        f"semsearch waits ({MAX_RETRY_AFTER:g} s); try again later"
                    ) from None
                asked = wait[0] if wait is not None else 0.0
            except arxiv.UnexpectedEmptyPageError as err:
                last_error = err
            except requests.RequestException as err:  # before ValueError: requests' InvalidSchema is one too
                if _is_name_resolution_failure(err):
                    raise ArxivUnavailable(f"arXiv is unreachable ({self.base_url}): name resolution failed") from None
                last_error = err
            except (ValueError, TypeError) as err:
                # An entry the `arxiv` package cannot read ("published: not-a-date") ends its whole
                # page in a traceback; a feed like that is as unusable as a portal's page.
                last_error = NotAFeed(f"an entry it could not read ({type(err).__name__}: {str(err)[:80]})")
        reason = network_reason(last_error) if isinstance(last_error, requests.RequestException) else last_error
        failed = "gave no usable answer" if isinstance(last_error, NotAFeed) else "did not answer"
        raise ArxivUnavailable(f"arXiv {failed} after {self.retries + 1} tries: {reason}")

    def fetch_ids(self, ids: Iterable[str], on_papers: Callable[[list[Paper]], None] | None = None) -> FetchResult:
        """Fetch papers by id in chunks; ids missing from an answer (arXiv sometimes sends empty
        pages) are asked for again. Papers are handed to `on_papers` as they arrive."""
        wanted = validate_ids(ids)
        result = FetchResult()
        for start in range(0, len(wanted), ID_CHUNK):
            pending = wanted[start : start + ID_CHUNK]
            for attempt in range(self.retries + 1):
                if attempt:
                    self._sleep(self._backoff(attempt))
                try:
                    page = self._page(arxiv.Search(id_list=pending, max_results=len(pending)), 0, len(pending))
                except ArxivUnavailable as err:
                    if not result.papers:
                        raise
                    # What arrived so far is kept; everything not yet fetched is reported missing, and why.
                    result.missing.extend(pending + wanted[start + ID_CHUNK :])
                    result.stopped = str(err)
                    return result
                arrived = [p for p in map(paper_from_result, page) if p and p.id in pending]
                if arrived:
                    result.papers.extend(arrived)
                    if on_papers:
                        on_papers(arrived)
                got = {p.id for p in arrived}
                pending = [i for i in pending if i not in got]
                if not pending:
                    break
            result.missing.extend(pending)
        return result

    def find_titles(self, titles: Iterable[str]) -> dict[str, Paper]:
        """Papers looked up by exact title (for papers known without an arXiv id), keyed by the
        normalised title. Titles arXiv does not have are left out."""
        wanted = list(dict.fromkeys(t for t in map(normalize_title, titles) if t))
        found: dict[str, Paper] = {}
        for start in range(0, len(wanted), TITLE_CHUNK):
            chunk = wanted[start : start + TITLE_CHUNK]
            query = " OR ".join(f'ti:"{title}"' for title in chunk)
            for paper in self.search(query, max_results=3 * len(chunk)):
                key = normalize_title(paper.title)
                if key in chunk and key not in found:
                    found[key] = paper
        return found

    def search(self, query: str, max_results: int = 100) -> Iterator[Paper]:
        """Papers matching an arXiv query (arXiv's own syntax, e.g. `ti:"speculative decoding"`)."""
        for _, page in self.pages(query, max_results):
            yield from page

    def pages(
        self, query: str, max_results: int = 100, *, start: int = 0, by_submission: bool = False
    ) -> Iterator[tuple[int, list[Paper]]]:
        """(offset after the page, papers) for each page of a query, from result `start` on;
        `by_submission` orders results by submission date, oldest first (for watching). A page that
        brings no paper not already sent is ArxivUnavailable: a server that ignores `start` was
        asked up to max_results / QUERY_PAGE times for the same page, and ending the paging as if
        done would have closed a watch's window on the papers not yet sent."""
        if not query.strip():
            raise SemsearchError("the arXiv query is empty")
        order = {}
        if by_submission:
            order = {"sort_by": arxiv.SortCriterion.SubmittedDate, "sort_order": arxiv.SortOrder.Ascending}
        search = arxiv.Search(query=query, max_results=max_results, **order)
        offset, empty_pages = start, 0
        sent: set[str] = set()
        while offset < max_results:
            size = min(QUERY_PAGE, max_results - offset)
            page = self._page(search, offset, size)
            if not page:
                # An empty page may be arXiv's flakiness rather than the end: ask again before stopping.
                empty_pages += 1
                if empty_pages > min(self.retries, 2):
                    return
                self._sleep(self._backoff(empty_pages))
                continue
            empty_pages = 0
            papers = [p for p in map(paper_from_result, page) if p]
            fresh = {p.id for p in papers} - sent
            if not fresh:
                if len(page) < size:  # the last page, only repeating papers sent before: the end
                    return
                if papers:
                    said = f"sent the papers of results {offset} to {offset + len(page) - 1} before"
                else:
                    said = f"sent a page with no paper it could read (results {offset} on)"
                raise ArxivUnavailable(f"arXiv {said}; stopped asking for more (what arrived is kept)")
            sent |= fresh
            offset += len(page)
            yield offset, papers
            if len(page) < size:
                return


ARXIV_CATEGORY = re.compile(r"[a-z][a-z-]*(?:\.[A-Za-z][A-Za-z-]*)?")  # cs.CL, hep-th, physics.comp-ph


def check_categories(categories: Iterable[str]) -> list[str]:
    """arXiv category names, or a user error: they go into a query, where "cs.CL) OR (all:x" would
    lift the date window."""
    checked = [c.strip() for c in categories if c.strip()]
    for category in checked:
        if not ARXIV_CATEGORY.fullmatch(category):
            raise SemsearchError(f"not an arXiv category: {category[:60]!r} (e.g. cs.CL, cs.LG, stat.ML, hep-th)")
    if not checked:
        raise SemsearchError("no arXiv category given (e.g. cs.CL,cs.LG)")
    return checked


def submitted_between(categories: Iterable[str], since: str, until: str) -> str:
    """An arXiv query for papers in any of `categories` submitted between two UTC times (YYYYMMDDHHMM)."""
    listed = " OR ".join(f"cat:{c}" for c in check_categories(categories))
    return f"({listed}) AND submittedDate:[{since} TO {until}]"
