import re
import time

import pytest

from semsearch.errors import SemsearchError
from semsearch.sources.arxiv import ID_CHUNK, ArxivClient, ArxivUnavailable, validate_ids
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


def test_an_answer_trickled_a_byte_at_a_time_is_cut_off_at_the_timeout(stub):
    """requests' timeout bounds each read; a server that sends a byte now and then held a call for ever."""
    stub.script = [Step(trickle=0.02)]
    started = time.monotonic()
    result = ArxivClient(timeout=0.5).fetch_ids(["2401.00001"])
    assert [p.id for p in result.papers] == ["2401.00001"] and len(stub.requests) == 2  # cut, then asked again
    assert time.monotonic() - started < 3  # the whole feed trickled would take about 30 s


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


@pytest.mark.parametrize("value", ["file:///etc/passwd", "javascript:alert(1)", "ftp://example.org/api", "http://"])
def test_an_api_url_that_is_not_a_web_url_is_a_setting_refused_at_once(monkeypatch, value):
    """It was tried as a network failure: retried for 47 s, then exit 1."""
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", value)
    with pytest.raises(SemsearchError, match="SEMSEARCH_ARXIV_URL must be an http\\(s\\) URL with a host"):
        ArxivClient()


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
