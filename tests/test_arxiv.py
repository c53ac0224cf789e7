from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from semsearch.errors import SemsearchError
from semsearch.sources import arxiv as arxiv_source
from semsearch.sources.arxiv import ID_CHUNK, MAX_RETRY_AFTER, ArxivClient, ArxivUnavailable, retry_after, validate_ids
from tests.arxiv_stub import ArxivStub, Step


@pytest.fixture
def stub(monkeypatch):
    with ArxivStub() as running:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", running.url)
        yield running


def test_fetches_ids_and_parses_the_feed(stub):
    stub.papers["2401.00001"] = {"title": "Quantizing  weights\n  to 4 bits", "abstract": "Four-bit weights."}
    result = ArxivClient().fetch_ids(["2401.00001", "arXiv:2401.00002v3"])
    assert result.missing == []
    by_id = {p.id: p for p in result.papers}
    assert set(by_id) == {"2401.00001", "2401.00002"}  # versions stripped
    paper = by_id["2401.00001"]
    assert paper.title == "Quantizing weights to 4 bits"
    assert paper.abstract == "Four-bit weights."
    assert paper.authors == ["Grace Hopper", "Edsger Dijkstra"]
    assert paper.arxiv_categories == ["cs.CL", "cs.LG"]
    assert paper.published == "2024-01-15" and paper.updated == "2024-01-15"
    assert paper.year == 2024 and paper.url == "https://arxiv.org/abs/2401.00001"
    assert paper.sources == ["arxiv"]  # where it came from, stored with it


def test_an_entry_without_a_title_is_no_paper_and_an_endless_abstract_is_cut(stub):
    """A feed whose entity the parser would not expand gave an entry with an empty title, stored as
    a paper; a 6 MB abstract was stored and served whole."""
    from semsearch.sources.arxiv import MAX_ABSTRACT_CHARS

    stub.papers["2401.00001"] = {"title": " ", "abstract": "No title."}
    stub.papers["2401.00002"] = {
        "title": "Long",
        "abstract": "word " * 6_000,
    }  # 30,000 characters; arXiv's cap is 1,920
    result = ArxivClient().fetch_ids(["2401.00001", "2401.00002"])
    assert [p.id for p in result.papers] == ["2401.00002"] and result.missing == ["2401.00001"]
    assert len(result.papers[0].abstract) <= MAX_ABSTRACT_CHARS < 30_000  # cut


def test_an_abstract_is_cut_to_what_every_door_takes_and_no_shorter(stub):
    """20,000 characters, the abstract every door takes (docs/usage.md): a paper brought from arXiv
    can be placed by its own text. Written out, not read from MAX_ABSTRACT_CHARS."""
    stub.papers["2401.00001"] = {"title": "Whole", "abstract": "a" * 20_000}
    stub.papers["2401.00002"] = {"title": "Cut", "abstract": "a" * 20_001}
    whole, cut = ArxivClient(delay=0).fetch_ids(["2401.00001", "2401.00002"]).papers
    assert len(whole.abstract) == len(cut.abstract) == 20_000


def test_an_entry_whose_title_runs_past_what_every_door_takes_is_no_paper(stub):
    """A title of 1 MB (a broken mirror, a hostile server) was stored whole and printed by every
    search that found it; a JSON Lines record with it is refused, and so is this entry."""
    from semsearch.requests_models import MAX_TITLE

    stub.papers["2401.00001"] = {"title": "Huge " + "x" * 2**20, "abstract": "A title of 1 MB."}
    stub.papers["2401.00002"] = {"title": "Long but a title " + "y" * (MAX_TITLE - 17), "abstract": "At the limit."}
    result = ArxivClient().fetch_ids(["2401.00001", "2401.00002"])
    assert [p.id for p in result.papers] == ["2401.00002"] and result.missing == ["2401.00001"]
    assert len(result.papers[0].title) == MAX_TITLE


def test_an_entry_dated_in_a_year_no_paper_has_keeps_no_date(stub):
    """An entry published in 9999 was stored with that date: it headed every node's feed of the
    newest papers for good, and passed every `--since`. A date in a year outside YEARS is no date,
    as such a year is none; the paper is kept."""
    stub.papers["2401.00001"] = {"title": "Far future", "abstract": "Dated 9999.", "published": "9999-12-31T23:59:59Z"}
    stub.papers["2401.00002"] = {"title": "Dated", "abstract": "Dated 2024.", "published": "2024-01-15T10:00:00Z"}
    by_id = {p.id: p for p in ArxivClient().fetch_ids(["2401.00001", "2401.00002"]).papers}
    assert (by_id["2401.00001"].published, by_id["2401.00001"].updated, by_id["2401.00001"].year) == (None, None, 2024)
    assert (by_id["2401.00002"].published, by_id["2401.00002"].updated) == ("2024-01-15", "2024-01-15")


def test_ids_are_fetched_in_chunks(stub):
    ids = [f"2401.{n:05d}" for n in range(ID_CHUNK * 2 + 5)]
    result = ArxivClient().fetch_ids(ids)
    assert len(result.papers) == len(ids) and not result.missing
    assert [len(r["id_list"][0].split(",")) for r in stub.requests] == [ID_CHUNK, ID_CHUNK, 5]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_retried(stub, status):
    stub.script = [Step(status=status), Step(status=status)]
    result = ArxivClient().fetch_ids(["2401.00001"])
    assert [p.id for p in result.papers] == ["2401.00001"]
    assert len(stub.requests) == 3


def test_a_dropped_connection_is_retried(stub):
    stub.script = [Step(hang_up=True), Step(hang_up=True)]
    result = ArxivClient().fetch_ids(["2401.00001"])
    assert [p.id for p in result.papers] == ["2401.00001"] and len(stub.requests) == 3


def test_backoff_grows_between_retries(stub, monkeypatch):
    # Robust to load: the waits the client asks for are recorded (exact), and the gaps the stub saw
    # between requests are only checked from below (a sleep never ends early; a busy machine only
    # lengthens a gap). Ratios of wall-clock gaps failed under load.
    from semsearch.sources import arxiv

    asked: list[float] = []
    real_sleep = time.sleep

    class RecordingTime:  # the arxiv module's `time`: its sleeps recorded, then slept
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            asked.append(seconds)
            real_sleep(seconds)

    monkeypatch.setattr(arxiv, "time", RecordingTime())
    stub.script = [Step(status=503)] * 3
    ArxivClient(backoff=0.05).fetch_ids(["2401.00001"])
    waits = [w for w in asked if w > 0]  # the pause between requests is 0 in tests
    assert len(waits) == 3 and waits[0] >= 0.05
    assert waits[1] == pytest.approx(2 * waits[0]) and waits[2] == pytest.approx(2 * waits[1])  # doubling
    gaps = [b - a for a, b in zip(stub.request_times, stub.request_times[1:], strict=False)]
    assert len(gaps) == 3 and all(gap >= wait * 0.95 for gap, wait in zip(gaps, waits, strict=True))


def test_empty_first_page_is_asked_again(stub):
    stub.script = [Step(empty=True)]
    result = ArxivClient().fetch_ids(["2401.00001", "2401.00002"])
    assert {p.id for p in result.papers} == {"2401.00001", "2401.00002"}
    assert len(stub.requests) == 2


def test_a_short_page_is_completed(stub):
    stub.script = [Step(drop=1), Step(empty=True)]
    result = ArxivClient().fetch_ids(["2401.00001", "2401.00002"])
    assert {p.id for p in result.papers} == {"2401.00001", "2401.00002"} and not result.missing


def test_ids_that_never_arrive_are_retried_alone_then_reported(stub):
    stub.unknown = {"2401.00002"}
    result = ArxivClient(retries=2).fetch_ids(["2401.00001", "2401.00002"])
    assert [p.id for p in result.papers] == ["2401.00001"]
    assert result.missing == ["2401.00002"]
    assert [r["id_list"] for r in stub.requests[1:]] == [["2401.00002"]] * 2


def test_persistent_failure_raises_when_nothing_arrived(stub):
    stub.script = [Step(status=503)] * 20
    with pytest.raises(ArxivUnavailable, match="arXiv did not answer after 3 tries"):
        ArxivClient(retries=2).fetch_ids(["2401.00001"])
    assert len(stub.requests) == 3


def test_persistent_failure_keeps_what_arrived(stub):
    ids = [f"2401.{n:05d}" for n in range(ID_CHUNK + 3)]
    stub.script = [Step()] + [Step(status=503)] * 20
    got = []
    result = ArxivClient(retries=1).fetch_ids(ids, on_papers=got.extend)
    assert len(result.papers) == ID_CHUNK == len(got)
    assert result.missing == ids[ID_CHUNK:]
    assert result.stopped.startswith("arXiv did not answer after 2 tries")  # said with the ids missing


def test_ingest_of_ids_that_arxiv_stops_answering_part_way_says_why_the_rest_is_missing(monkeypatch, cli, tmp_path):
    """Asked to wait an hour after the first chunk, `ingest arxiv` said only "could not get N of M ids"."""
    feeds = ArxivStub()

    def answer(query: dict, n: int) -> Answer:
        if n == 0:
            status, body = feeds.respond(query, Step())
            return status, {}, body
        return 503, {"Retry-After": "3600"}, b"busy"

    ids = [f"2401.{n:05d}" for n in range(ID_CHUNK + 3)]
    with Answering(answer) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        asked = [part for paper_id in ids for part in ("--id", paper_id)]
        code, _, err = cli("ingest", "arxiv", *asked, "--index", tmp_path / "idx", "--no-progress")
    said = f"could not get 3 of {len(ids)} ids from arXiv (arXiv asked to wait 3,600 seconds"
    assert code == 1 and said in err, err


def test_a_stalled_request_times_out_and_is_retried(stub):
    stub.script = [Step(stall=0.8)]
    started = time.monotonic()
    result = ArxivClient(timeout=0.2).fetch_ids(["2401.00001"])
    assert [p.id for p in result.papers] == ["2401.00001"]
    assert time.monotonic() - started < 0.8  # gave up on the stalled answer instead of waiting it out
    assert len(stub.requests) == 2


@pytest.mark.parametrize(
    "page, content_type",
    [
        (b"<html><body>Sign in to the hotel wifi</body></html>", "text/html"),  # a captive portal
        (b"\x00\xffgarbage<feed><entry>", "application/atom+xml"),
        (b"", "application/atom+xml"),
        (b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>', "application/xml"),  # a feed, not Atom
    ],
    ids=["html", "garbage", "nothing", "rss"],
)
def test_an_answer_that_is_not_an_atom_feed_is_retried_then_refused_never_read_as_no_papers(stub, page, content_type):
    stub.script = [Step(page=page, content_type=content_type)] * 3
    with pytest.raises(
        ArxivUnavailable, match="arXiv gave no usable answer after 3 tries: its answer is not an Atom feed"
    ):
        ArxivClient(retries=2).fetch_ids(["2401.00001"])
    with pytest.raises(ArxivUnavailable, match=re.escape(f"not an Atom feed ({content_type}, {len(page):,} bytes)")):
        stub.script = [Step(page=page, content_type=content_type)] * 3
        list(ArxivClient(retries=2).search('ti:"caches"'))
    stub.script = [Step(page=page, content_type=content_type)]  # once: the retry gets the feed
    assert [p.id for p in ArxivClient().fetch_ids(["2401.00001"]).papers] == ["2401.00001"]


def test_an_entry_the_arxiv_package_cannot_read_is_a_feed_that_cannot_be_used_not_a_traceback(stub):
    """A date the `arxiv` package cannot parse ended the watch in a 57-line ValueError (an attacker's
    stub): now retried as an unusable answer, then one line, the watch's window kept."""
    stub.papers["2401.00001"] = {"title": "T", "abstract": "A", "published": "not-a-date"}
    with pytest.raises(ArxivUnavailable, match=r"gave no usable answer after 2 tries: an entry it could not read"):
        ArxivClient(retries=1).fetch_ids(["2401.00001"])
    assert len(stub.requests) == 2


def test_an_empty_atom_feed_is_an_answer_with_no_papers(stub):
    assert list(ArxivClient().search('ti:"nothing by this title"')) == [] and len(stub.requests) >= 1


def test_a_feed_is_whole_when_it_ends_with_its_root_end_tag_prefixed_or_not():
    """A whole feed ends with `</feed>` (white space after it allowed), or `</atom:feed>` when the
    Atom namespace is written with a prefix, as XML allows; the same bytes cut short are no feed."""
    from semsearch.sources.arxiv import _atom_feed

    plain = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>arXiv</title></feed>\n'
    prefixed = b'<atom:feed xmlns:atom="http://www.w3.org/2005/Atom"><atom:title>arXiv</atom:title></atom:feed>\r\n'
    for whole in (plain, prefixed):
        assert _atom_feed(whole) is not None, whole
        assert _atom_feed(whole[: whole.rindex(b"</")]) is None, whole


def test_an_answer_trickled_a_byte_at_a_time_is_cut_off_at_the_timeout(stub):
    """requests' timeout bounds each read; a server that sends a byte now and then held a call for ever."""
    stub.script = [Step(trickle=0.02)]
    started = time.monotonic()
    result = ArxivClient(timeout=0.5).fetch_ids(["2401.00001"])
    assert [p.id for p in result.papers] == ["2401.00001"] and len(stub.requests) == 2  # cut, then asked again
    assert time.monotonic() - started < 3  # the whole feed trickled would take about 30 s


def test_an_answer_cut_at_the_timeout_mid_entry_is_never_read_as_a_shorter_feed(stub):
    """The deadline shuts the socket, which ends a body without a length like the server's own close:
    the bytes before the cut, read leniently, gave a paper whose abstract stopped mid-word, stored."""
    whole = "An abstract that the deadline cuts in the middle of this sentence, then comes whole."
    stub.papers["2401.00001"] = {"title": "Cut mid-entry", "abstract": whole}
    stub.script = [Step(pause_at=b"the middle", pause=1.5)]
    result = ArxivClient(timeout=0.5).fetch_ids(["2401.00001"])
    assert [p.abstract for p in result.papers] == [whole] and len(stub.requests) == 2  # cut, then asked again


def test_an_answer_whose_connection_closes_mid_entry_is_asked_for_again(stub):
    """Without a Content-Length a close ends the body: read leniently, the bytes before a dropped
    connection were a feed whose last papers had their abstracts cut mid-word, stored, exit 0."""
    whole = "An abstract the server drops in the middle of this sentence, then sends whole."
    stub.papers["2401.00002"] = {"title": "Dropped mid-entry", "abstract": whole}
    stub.script = [Step(cut_at=b"the middle")]
    result = ArxivClient(delay=0).fetch_ids(["2401.00001", "2401.00002"])
    assert {p.id: p.abstract for p in result.papers}["2401.00002"] == whole and len(stub.requests) == 2


def test_headers_trickled_a_byte_at_a_time_are_cut_off_at_the_timeout_too(stub):
    stub.script = [Step(trickle_head=0.02)]
    started = time.monotonic()
    result = ArxivClient(timeout=0.5).fetch_ids(["2401.00001"])
    assert [p.id for p in result.papers] == ["2401.00001"] and len(stub.requests) == 2  # cut, then asked again
    assert time.monotonic() - started < 3  # the headers trickled whole would take a minute


def test_every_call_opens_its_own_connection_and_a_slow_but_steady_answer_is_kept(stub):
    stub.script = [Step(trickle=0.0005)]  # a whole feed in well under the timeout
    assert [p.id for p in ArxivClient(timeout=20).fetch_ids(["2401.00001"]).papers] == ["2401.00001"]
    client = ArxivClient(delay=0)
    client.fetch_ids(["2401.00002"])
    client.fetch_ids(["2401.00003"])
    assert len(stub.requests) == 3 and len(stub.peers) == 3  # no connection kept alive across calls


@pytest.mark.parametrize("name", ["SEMSEARCH_ARXIV_DELAY", "SEMSEARCH_ARXIV_TIMEOUT"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-3", "abc"])
def test_a_delay_or_timeout_that_is_not_a_sane_number_of_seconds_is_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SemsearchError, match=f"{name} must be a number of seconds from 0 to 86400"):
        ArxivClient()


BAD_API_URLS = [
    "file:///etc/passwd", "javascript:alert(1)", "ftp://example.org/api", "http://", "127.0.0.1:8310/api/query",
    "http://127.0.0.1:99999/api", "http://127.0.0.1:0/api", "http://127.0.0.1:port/api", "http://[::1",
    "http://[::1/api", "http://127.0.0.1:8310/api/query#frag", "http://127.0.0.1:8310/api/query?x=1",
    # An empty fragment still swallows the query; these hosts pass urlsplit but not urllib3, which requests.
    "http://127.0.0.1:8310/api/query#", "http://127.0.0.1:8310/api/query?#", "http://[v1.fe]/api",
    "http://[::1]x/api", "http://exa\u00admple.org/api",
]  # fmt: skip


@pytest.mark.parametrize("value", BAD_API_URLS)
def test_an_api_url_that_cannot_be_requested_is_a_setting_refused_at_once(monkeypatch, value):
    """It was tried as a network failure: retried for 46 s, blamed on arXiv, then exit 1 (a port out
    of range, an unclosed bracket); a fragment swallowed the query the client appends."""
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", value)
    with pytest.raises(SemsearchError, match="^SEMSEARCH_ARXIV_URL .*: expected an http\\(s\\) address with a host"):
        ArxivClient()


def test_an_api_url_with_a_password_is_refused_without_repeating_it(monkeypatch):
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", "http://me:s3cret@127.0.0.1:8310/api/query")
    with pytest.raises(SemsearchError) as refused:
        ArxivClient()
    assert "s3cret" not in str(refused.value) and "'http://…@127.0.0.1:8310/api/query'" in str(refused.value)


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:8310/api/query", "https://export.arxiv.org/api/query", "http://[::1]:80/",
        "http://127.0.0.1:8310/api/query?",  # an empty query: the client's own is appended in its place
    ],
)  # fmt: skip
def test_an_api_url_a_service_can_answer_at_is_taken(monkeypatch, value):
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", value)
    assert ArxivClient().base_url == value


def test_a_timeout_of_zero_is_refused_and_a_delay_of_zero_is_not(monkeypatch):
    monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
    assert ArxivClient().delay == 0.0
    monkeypatch.setenv("SEMSEARCH_ARXIV_TIMEOUT", "0")
    with pytest.raises(SemsearchError, match="a timeout above 0"):
        ArxivClient()


def test_requests_are_paced(stub):
    ArxivClient(delay=0.15).fetch_ids([f"2401.{n:05d}" for n in range(ID_CHUNK + 1)])
    assert stub.request_times[1] - stub.request_times[0] >= 0.145


def test_client_error_is_not_retried(stub):
    stub.script = [Step(status=400)]
    with pytest.raises(SemsearchError, match="HTTP 400"):
        ArxivClient().fetch_ids(["2401.00001"])
    assert len(stub.requests) == 1


def test_query_pages_through_results(stub, monkeypatch):
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 4)
    for n in range(10):
        stub.papers[f"2402.{n:05d}"] = {"title": f"Paper {n}", "abstract": "About caches."}
    papers = list(ArxivClient().search("all:cache", max_results=9))
    assert [p.id for p in papers] == [f"2402.{n:05d}" for n in range(9)]
    assert [int(r["start"][0]) for r in stub.requests] == [0, 4, 8]


def test_papers_are_found_by_exact_title(stub, monkeypatch):
    monkeypatch.setattr("semsearch.sources.arxiv.TITLE_CHUNK", 2)
    stub.papers["2001.04451"] = {"title": "Reformer: The Efficient Transformer", "abstract": "Hashing attention."}
    stub.papers["2001.99999"] = {"title": "Reformer: The Efficient Transformer, Revisited", "abstract": "Not it."}
    stub.papers["2208.07339"] = {"title": "LLM.int8(): 8-bit Matrix Multiplication", "abstract": "Outliers."}
    found = ArxivClient().find_titles(
        ["Reformer: the efficient transformer", "LLM.int8(): 8-bit matrix multiplication", "A title arXiv lacks"]
    )
    assert {key: paper.id for key, paper in found.items()} == {
        "reformer the efficient transformer": "2001.04451",
        "llm int8 8 bit matrix multiplication": "2208.07339",
    }
    assert found["reformer the efficient transformer"].abstract == "Hashing attention."
    assert len({r["search_query"][0] for r in stub.requests}) == 2  # three titles, two per request
    # Three results asked for each title: enough for its near namesakes, not a page of 100 (the
    # second request, for the title arXiv lacks, comes back empty and is asked again).
    assert {r["max_results"][0] for r in stub.requests} == {"6", "3"}
    assert stub.requests[0]["search_query"][0] == (
        'ti:"reformer the efficient transformer" OR ti:"llm int8 8 bit matrix multiplication"'
    )


def test_a_wait_ends_at_once_when_the_watch_is_stopped():
    from semsearch.errors import Stopped

    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with pytest.raises(Stopped, match=r"^the watch was stopped; the next watch resumes its window$"):
        ArxivClient(stop=stop)._sleep(30)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "error",
    [
        "HTTPSConnectionPool: Max retries exceeded (Caused by NameResolutionError(...))",
        "[Errno -2] Name or service not known",
        "socket.gaierror: [Errno -3] Temporary failure in name resolution",
    ],
)
def test_a_name_that_does_not_resolve_is_told_apart_from_other_network_failures(error):
    from semsearch.sources.arxiv import _is_name_resolution_failure

    assert _is_name_resolution_failure(requests.ConnectionError(error))
    assert not _is_name_resolution_failure(requests.ConnectionError("[Errno 111] Connection refused"))


def test_unreachable_server():
    with pytest.raises(ArxivUnavailable):
        ArxivClient(retries=1).fetch_ids(["2401.00001"])


@pytest.mark.parametrize("bad", ["", "1234", "2401.1", "not-an-id", "2401.00001x"])
def test_invalid_ids_are_refused(bad):
    with pytest.raises(SemsearchError, match="invalid arXiv id"):
        validate_ids([bad])


def test_valid_id_forms():
    assert validate_ids(["https://arxiv.org/abs/2401.00001v2", "hep-th/9901001", "2401.00001"]) == [
        "2401.00001",
        "hep-th/9901001",
    ]


# --- answers the stub cannot give: headers (Retry-After), the same page whatever the start -------------
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


class Answering:
    """A local arXiv that answers its n-th request (from 0) with `answer(query, n)`."""

    def __init__(self, answer: Callable[[dict, int], Answer]):
        self.answer = answer
        self.requests: list[dict] = []

    def __enter__(self) -> Answering:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                status, headers, body = outer.answer(query, len(outer.requests))
                outer.requests.append(query)
                self.send_response(status)
                for name, value in {"Content-Type": "application/atom+xml", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/query"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def throttled(*answers: tuple[int, str | None], feeds: ArxivStub | None = None) -> Callable[[dict, int], Answer]:
    """First these statuses, each with its Retry-After (None: none), then the feeds of `feeds`."""
    feeds = feeds or ArxivStub()

    def answer(query: dict, n: int) -> Answer:
        if n < len(answers):
            status, wait = answers[n]
            return status, {} if wait is None else {"Retry-After": wait}, b"busy"
        status, body = feeds.respond(query, Step())
        return status, {}, body

    return answer


def the_same_page(ids: list[str], total: int = 1_000_000) -> Callable[[dict, int], Answer]:
    """A server that ignores `start`: the same full page, whatever is asked, of a huge result set."""
    page = ArxivStub().feed(ids, 0, len(ids), total)
    return lambda query, n: (200, {}, page)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The waits the client asks for, recorded and not slept (the pacing is 0 s in tests: only
    the waits above 0 are kept)."""
    asked: list[float] = []

    class Clock:  # the arxiv module's `time`
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            if seconds > 0:
                asked.append(seconds)

    monkeypatch.setattr(arxiv_source, "time", Clock())
    return asked


def _an_http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now), usegmt=True)


def _ask(client: ArxivClient, how: str) -> list[str]:
    """The ids one request of each kind brings: papers by id, or a query's pages."""
    if how == "by id":
        return [p.id for p in client.fetch_ids(["2401.00001"]).papers]
    return [p.id for p in client.search('ti:"caches"')]


@pytest.mark.parametrize("how", ["by id", "by query"])
@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_up_to_a_minute_is_waited_out_in_seconds_or_until_its_date(monkeypatch, waits, status, how):
    """It was ignored: asked to wait, the client came back at its own backoff (0, 1, 3, 7, 15 s)."""
    feeds = ArxivStub(papers={"2401.00001": {"title": "KV caches", "abstract": "Caches."}})
    answers = [(status, "2"), (status, _an_http_date(30)), (status, str(int(MAX_RETRY_AFTER)))]
    with Answering(throttled(*answers, feeds=feeds)) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        assert _ask(ArxivClient(backoff=0.5), how) == ["2401.00001"]
    assert len(server.requests) == 4
    # An HTTP date has whole seconds and was written before the stub started: up to a second is cut
    # off, and the round trips before it is read take what a loaded machine makes them take.
    assert waits[0] == 2 and 20 < waits[1] <= 30 and waits[2] == MAX_RETRY_AFTER == 60  # what arXiv asked


def test_a_retry_after_shorter_than_the_backoff_or_unreadable_leaves_the_wait_to_the_backoff(monkeypatch, waits):
    with Answering(throttled((503, "0"), (503, "soon"), (429, _an_http_date(-60)))) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        assert _ask(ArxivClient(backoff=0.5), "by id") == ["2401.00001"]
    assert waits == [0.5, 1.0, 2.0]  # the backoff's own doubling


@pytest.mark.parametrize(
    "asked, said",
    [
        ("3600", "arXiv asked to wait 3,600 seconds before asking again (HTTP 503)"),
        ("61", "arXiv asked to wait 61 seconds before asking again (HTTP 503)"),
        (format_datetime(datetime(2099, 10, 21, 7, 28, tzinfo=timezone.utc), usegmt=True), "arXiv asked to wait "
         "until 21 Oct 2099 07:28:00 UTC before asking again (HTTP 503)"),
        ("9" * 400, "arXiv asked to wait a 400-digit number of seconds before asking again (HTTP 503)"),
    ],
    ids=["an hour", "a minute and a second", "until a date", "absurd"],
)  # fmt: skip
@pytest.mark.parametrize("how", ["by id", "by query"])
def test_a_retry_after_longer_than_a_minute_stops_at_once_saying_how_long_arxiv_asked(
    monkeypatch, waits, asked, said, how
):
    """It was retried five times in 26 s, then "did not answer"; arXiv had said when to come back."""
    with Answering(throttled((503, asked))) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        with pytest.raises(ArxivUnavailable) as stopped:
            _ask(ArxivClient(), how)
    assert str(stopped.value) == f"{said}, longer than semsearch waits (60 s); try again later"
    assert stopped.value.exit_code == 1 and len(server.requests) == 1 and waits == []


@pytest.mark.parametrize(
    "header, seconds, words",
    [
        ("120", 120.0, "120 seconds"),
        (" 7 ", 7.0, "7 seconds"),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 7 * 86400.0, "until 21 Oct 2026 07:28:00 UTC"),
        ("Wed, 14 Oct 2026 07:27:00 GMT", 0.0, "until 14 Oct 2026 07:27:00 UTC"),  # past: now
        (None, None, None),
        ("", None, None),
        ("soon", None, None),
        ("-5", None, None),
        ("1.5", None, None),
        ("²", None, None),  # a digit to str.isdigit, not a number
        ("Wed, 21 Oct 2026 07:28:00 -0000", 7 * 86400.0, "until 21 Oct 2026 07:28:00 UTC"),  # read as no zone
        ("86400000", 86400000.0, "86,400,000 seconds"),
        ("Fri, 31 Dec 9999 23:59:59 -0100", None, None),  # in UTC past the last day a clock holds
    ],
)
def test_a_retry_after_is_read_as_seconds_or_an_http_date_and_anything_else_is_no_answer(header, seconds, words):
    now = datetime(2026, 10, 14, 7, 28, tzinfo=timezone.utc)
    read = retry_after(header, now)
    assert read == (None if seconds is None else (seconds, words))


def test_a_retry_after_date_no_clock_holds_is_no_answer_and_the_retry_brings_the_paper(monkeypatch, cli, tmp_path):
    """`Fri, 31 Dec 9999 23:59:59 -0100` (a minute into year 10000 in UTC) was an OverflowError:
    `ingest arxiv` ended in a traceback. It is a date no HTTP server means: left to the backoff."""
    feeds = ArxivStub(papers={"2401.00001": {"title": "KV caches", "abstract": "Caches."}})
    with Answering(throttled((503, "Fri, 31 Dec 9999 23:59:59 -0100"), feeds=feeds)) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        code, _, err = cli("ingest", "arxiv", "--id", "2401.00001", "--index", tmp_path / "idx", "--no-progress")
    assert code == 0 and len(server.requests) == 2, err


class _Warnings(logging.Handler):
    """What `semsearch.arxiv` warns while attached (the CLI stops "semsearch" propagating, so caplog
    may not hear it)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> list[str]:
        logging.getLogger("semsearch.arxiv").addHandler(self)
        return self.messages

    def __exit__(self, *exc) -> None:
        logging.getLogger("semsearch.arxiv").removeHandler(self)


def test_a_page_that_brings_no_paper_not_already_sent_stops_the_paging_as_a_failure(monkeypatch):
    """A server that ignored `start` and claimed a huge total was asked for the same page up to
    max_results / 100 times (50 for a watch's 5,000: hours at arXiv's pace). It fails rather than
    ends: ended as done, a watch would close its window on the papers not yet sent."""
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    pages = []
    with Answering(the_same_page(["2401.00001", "2401.00002"])) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        with pytest.raises(ArxivUnavailable) as failed:
            pages.extend(ArxivClient().pages("all:cache", max_results=60))
    assert [(offset, [p.id for p in papers]) for offset, papers in pages] == [(2, ["2401.00001", "2401.00002"])]
    assert [int(r["start"][0]) for r in server.requests] == [0, 2]  # the repeat was the last page asked
    assert (
        str(failed.value)
        == "arXiv sent the papers of results 2 to 3 before; stopped asking for more (what arrived is kept)"
    )


def test_a_short_last_page_that_only_repeats_a_paper_is_the_end_not_a_failure(monkeypatch):
    """A last page of one paper sent before failed an `ingest arxiv --query` that had read everything."""
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    feeds = ArxivStub()
    first, last = feeds.feed(["2401.00001", "2401.00002"], 0, 2, 3), feeds.feed(["2401.00002"], 2, 1, 3)
    with Answering(lambda query, n: (200, {}, first if n == 0 else last)) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        pages = [[p.id for p in papers] for _, papers in ArxivClient().pages("all:cache", max_results=60)]
    assert pages == [["2401.00001", "2401.00002"]] and len(server.requests) == 2


def test_a_page_with_some_papers_not_sent_before_is_read_on(monkeypatch):
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    feeds = ArxivStub()

    def overlapping(query: dict, n: int) -> Answer:  # each page repeats the last paper of the one before
        return 200, {}, feeds.feed([f"2402.{n:05d}", f"2402.{n + 1:05d}"], 2 * n, 2, 6)

    with Answering(overlapping) as server, _Warnings() as warned:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        pages = [[p.id for p in papers] for _, papers in ArxivClient().pages("all:cache", max_results=6)]
    assert pages == [["2402.00000", "2402.00001"], ["2402.00001", "2402.00002"], ["2402.00002", "2402.00003"]]
    assert warned == []


def test_the_client_knows_how_many_results_arxiv_says_a_query_has(stub):
    for n in range(7):
        stub.papers[f"2402.{n:05d}"] = {"title": f"Paper {n}", "abstract": "About caches."}
    client = ArxivClient()
    assert client.total_results is None  # nothing asked yet
    next(client.pages("all:cache", max_results=3))
    assert client.total_results == 7  # opensearch:totalResults, for a watch's progress bar


def test_redirects_are_few_and_each_waits_its_turn():
    """A redirect is a request: a server redirecting in a loop was asked 31 times a try (requests'
    30 hops), 155 times in under a second for one id, without the pacing arXiv asks for. Now a
    call follows at most MAX_REDIRECTS hops (arXiv's own move to https is one), each after the delay."""
    from semsearch.fetch import MAX_REDIRECTS

    times: list[float] = []

    def loop(query: dict, n: int) -> Answer:
        times.append(time.monotonic())
        return 302, {"Location": f"/api/query?hop={n}"}, b""

    with Answering(loop) as server:
        client = ArxivClient(base_url=server.url, delay=0.2, retries=1, backoff=0)
        with pytest.raises(ArxivUnavailable, match="redirects"):
            client.fetch_ids(["2401.00001"])
    assert len(times) == 2 * (MAX_REDIRECTS + 1)
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.1  # unpaced: about 1 ms


def test_a_redirect_to_a_file_is_not_followed_and_said_as_a_redirect():
    """requests refuses a file: address with an error that is also a ValueError, which was taken
    for an entry the `arxiv` package could not read: "an entry it could not read (InvalidSchema:
    ...)". Nothing is read from the file; the message says where the server sent the client."""
    with Answering(lambda query, n: (302, {"Location": "file:///etc/passwd"}, b"")) as server:
        with pytest.raises(ArxivUnavailable) as raised:
            ArxivClient(base_url=server.url, delay=0, retries=1, backoff=0).fetch_ids(["2401.00001"])
    assert "entry" not in str(raised.value)
    assert str(raised.value).endswith("it redirected to a file: address, not http(s)")


def test_a_retry_after_date_without_a_zone_is_read_as_gmt_whatever_the_machine_s_zone(monkeypatch):
    # "-0000" is RFC 2822's "no zone information"; HTTP dates are GMT.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        now = datetime(2026, 10, 21, 7, 27, 0, tzinfo=timezone.utc)
        assert retry_after("Wed, 21 Oct 2026 07:28:00 -0000", now=now) == (60.0, "until 21 Oct 2026 07:28:00 UTC")
    finally:
        monkeypatch.undo()
        time.tzset()
