import html
import json
import logging
import os
import re
import threading
import time
from typing import Any

import pytest

from semsearch.errors import IndexBusy, SemsearchError
from semsearch.index import FILE_MODE, Index, drop_lock, reseal
from semsearch.ingest import Ingest, label_paper
from semsearch.watch import LAST_WATCH, PENDING, list_digests, load_digest, render_digest, save_digest, watch
from tests.arxiv_stub import ArxivStub, Step
from tests.test_cli import run

IN_SCOPE = {
    "2411.00001": (
        "Evicting tokens from the key-value cache",
        "KV cache eviction keeps heavy hitter tokens and evicts the rest to cut memory in long context "
        "inference of large language models.",
    ),
    "2411.00002": (
        "Speculative decoding with a tiny draft model",
        "A draft model proposes tokens that the target large language model verifies in parallel, "
        "speeding up decoding.",
    ),
    "2411.00003": (
        "Four-bit weight quantization after training",
        "Post-training weight-only quantization of large language models to 4 bits with a small calibration set.",
    ),
}
OUT_OF_SCOPE = {
    "2411.00009": (
        "Aligning language models with human preferences",
        "Aligning language models with human preferences through reinforcement learning from human "
        "feedback, reward models and preference optimization.",
    ),
}


def stub_papers(ids=None):
    chosen = {**IN_SCOPE, **OUT_OF_SCOPE}
    return {
        i: {"title": t, "abstract": a, "published": f"2024-11-0{n + 1}T09:00:00Z"}
        for n, (i, (t, a)) in enumerate(sorted(chosen.items()))
        if ids is None or i in ids
    }


@pytest.fixture
def survey_index(survey_only_index):
    return survey_only_index


@pytest.fixture
def stub(monkeypatch):
    with ArxivStub(papers=stub_papers()) as running:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", running.url)
        yield running


def test_watch_ingests_in_scope_papers_and_digests_them(survey_index, stub):
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert report.fetched == 4
    by_id = {e.id: e for e in report.entries}
    assert set(by_id) == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert not by_id["2411.00009"].in_scope and all(by_id[i].in_scope for i in IN_SCOPE)
    index = Index.open(survey_index)
    assert index.manifest.count == 424 + 3 and index.store.get("2411.00009") is None
    assert report.since == "202411010000" and report.ingest.added == 3
    until = report.until  # now, to the minute: the next watch starts there
    last_watch = f"{until[:4]}-{until[4:6]}-{until[6:8]}T{until[8:10]}:{until[10:]}:00+00:00"
    assert index.store.get_meta(LAST_WATCH) == last_watch
    assert index.store.get_meta(PENDING + "cs.CL") is None  # finished: nothing left to resume
    assert list_digests(index_dir=survey_index) == [
        {"name": f"202411010000-{until}", "since": "202411010000", "until": until, "papers": 3}
    ]
    first = by_id["2411.00001"]
    assert (first.title, first.url, first.authors) == (
        IN_SCOPE["2411.00001"][0],
        "https://arxiv.org/abs/2411.00001",
        ["Grace Hopper", "Edsger Dijkstra"],
    )
    assert first.snippet == IN_SCOPE["2411.00001"][1] and first.category.endswith("/KV-Cache Optimization")
    for entry in report.entries:  # confidences to four places; the nearest known papers, each named
        assert 0 < entry.confidence <= 1 and entry.confidence == round(entry.confidence, 4)
        assert len(entry.closest) == 3 and all(set(c) == {"id", "title", "categories"} for c in entry.closest)
        assert all(index.store.get(c["id"]).title == c["title"] and c["categories"] for c in entry.closest)
    query = stub.requests[0]["search_query"][0]
    assert "cat:cs.CL" in query and "submittedDate:[202411010000 TO" in query
    assert stub.requests[0]["sortBy"] == ["submittedDate"]

    digest = render_digest(report)
    assert "Evicting tokens" in digest and "Aligning language models" not in digest
    assert "closest known:" in digest and digest.count("## ") == 3
    data = json.loads(render_digest(report, "json"))
    assert sum(len(v) for v in data["groups"].values()) == 3
    page = render_digest(report, "html")
    assert page.startswith("<!doctype html>") and "&lt;" not in page.split("<body>")[0]
    assert render_digest(report, "markdown", min_confidence=1.01).count("- **") == 0


def test_digests_read_like_a_newsletter(survey_index, stub):
    from semsearch.watch import human_time

    assert human_time("202411010000") == "1 Nov 2024" and human_time("202611282053") == "28 Nov 2026 20:53 UTC"
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    for fmt in ("markdown", "html"):
        digest = render_digest(report, fmt)
        assert "3 new papers, 1 Nov 2024 to " in digest and "202411010000" not in digest
        assert "Grace Hopper, Edsger Dijkstra" in digest  # authors
        assert "KV cache eviction keeps heavy hitter tokens" in digest  # the abstract's opening
        assert "/paper/2411.00001" in digest  # the paper view
    page = render_digest(report, "html")
    assert "<style>" in page and "prefers-color-scheme: dark" in page and "viewport" in page


def test_a_paper_arxiv_sends_twice_is_one_line_of_the_digest(survey_index, stub):
    from tests.arxiv_stub import Step

    stub.script = [Step(repeat=True)]
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    ids = [e.id for e in report.entries]
    assert sorted(ids) == sorted(set(IN_SCOPE) | set(OUT_OF_SCOPE))  # once each, though one came twice
    assert Index.open(survey_index).manifest.count == 424 + 3


def test_consecutive_watches_do_not_duplicate(survey_index, stub):
    from datetime import datetime

    from semsearch.watch import ANNOUNCEMENT_LAG

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)  # the same window once more
    # Nothing new, and nothing embedded again: not the papers kept, nor the one placed out of scope
    # (it was "new" on every run, since it is never stored).
    assert again.fetched == 4 and again.entries == [] and again.ingest.embedded == 0
    assert render_digest(again).startswith("# semsearch digest: 0 new papers")
    later = watch(["cs.CL"], index_dir=survey_index, progress=False)  # from the last watch on: nothing submitted since
    reach_back = datetime.strptime(again.until, "%Y%m%d%H%M") - ANNOUNCEMENT_LAG
    assert later.fetched == 0 and later.since == f"{reach_back:%Y%m%d%H%M}"


def test_a_paper_announced_after_a_watch_ran_is_found_by_the_next_one(survey_index, stub):
    """arXiv lists a paper when it announces it, up to 3¼ days after the submission time a window
    asks for. A window that began where the last one ended never asked for the papers submitted
    before that watch and announced after it: each was lost without a word (an attacker's pass)."""
    from datetime import datetime, timedelta, timezone

    first = watch(["cs.CL"], index_dir=survey_index, progress=False)  # the last day: nothing there yet
    ran = datetime.strptime(first.until, "%Y%m%d%H%M").replace(tzinfo=timezone.utc)
    for arxiv_id, hours_before in (("2612.00001", 3), ("2612.00002", 70)):  # announced after the first watch
        submitted = f"{ran - timedelta(hours=hours_before):%Y-%m-%dT%H:%M:%SZ}"
        stub.papers[arxiv_id] = {**stub_papers()["2411.00001"], "published": submitted}
    stub.papers["2612.00002"]["title"] = "Evicting tokens from the key-value cache again"
    stub.papers["2612.00009"] = {**stub_papers()["2411.00009"], "published": f"{ran:%Y-%m-%dT%H:%M:%SZ}"}
    second = watch(["cs.CL"], index_dir=survey_index, progress=False)
    assert {e.id: e.in_scope for e in second.entries} == {"2612.00001": True, "2612.00002": True, "2612.00009": False}
    store = Index.open(survey_index).store
    assert store.get("2612.00001") is not None and store.get("2612.00002") is not None
    third = watch(["cs.CL"], index_dir=survey_index, progress=False)  # its window holds all three again
    assert third.fetched == 3 and third.entries == [] and third.ingest.embedded == 0


def test_a_window_holding_more_than_max_is_read_on_by_the_next_watch(survey_index, stub, cli):
    """The papers past --max were left unread and the next window began after them: lost without a
    word (a first fix moved the next window to the last day read, and a --max smaller than the
    days it reaches back kept every later watch on the same papers). Now the window stays open and
    the next watch reads on from where this one stopped, --max more each time, as a resumed one."""
    done = cli("watch", "--since", "2024-11-01", "--max", "3", "--no-progress", "--index", survey_index, check=True)
    assert "the window holds 4 papers, more than --max 3: the next watch reads on from paper 4; " in done.stderr
    assert Index.open(survey_index).store.get_meta(LAST_WATCH) is None  # not done: no later window yet
    assert list_digests(index_dir=survey_index)[0]["papers"] == 3  # what it found so far, kept
    starts = len(stub.requests)
    later = watch(index_dir=survey_index, progress=False, max_results=3)  # a plain watch, as a schedule runs it
    assert stub.requests[starts]["start"] == ["3"] and later.since == "202411010000" and later.cut_short == ""
    assert later.fetched == 4 and [e.id for e in later.entries] == ["2411.00009"]  # only what it found itself
    assert Index.open(survey_index).store.get_meta(LAST_WATCH).startswith(later.until[:4])  # done: the next goes on
    assert [d["papers"] for d in list_digests(index_dir=survey_index)] == [3]  # one digest of the window, whole
    assert len(load_digest(list_digests(index_dir=survey_index)[0]["name"], index_dir=survey_index).entries) == 4


def test_a_digest_that_grows_as_its_window_is_read_on_is_news_again_in_the_feed(survey_index, stub, cli):
    """A window read on by the next watch (--max) keeps one digest, which grows; its feed entry kept
    the window's end as its `updated`, so a feed reader, which shows an entry again only when that
    changes, never showed what the later watch added (a week of use: 3 of 6 new papers never
    reached the reader). The entry's time moves each time the digest gains papers, and only then."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    stub.papers["2411.00004"] = {
        "title": "Evicting tokens from the key-value cache by layer",
        "abstract": IN_SCOPE["2411.00001"][1],
        "published": "2024-11-05T09:00:00Z",
    }

    def entry() -> tuple[str, str, str]:
        with TestClient(create_app(index_dir=survey_index)) as client:
            body = client.get("/feeds/digests.atom").text
        [one] = re.findall(r"<entry>(.*?)</entry>", body, re.S)
        return tuple(re.search(f"<{tag}>(.*?)</{tag}>", one, re.S).group(1) for tag in ("id", "title", "updated"))

    cli("watch", "--since", "2024-11-01", "--max", "3", "--no-progress", "--index", survey_index, check=True)
    first = entry()
    assert first[1].startswith("3 new papers, ")
    cli("watch", "--max", "3", "--no-progress", "--index", survey_index, check=True)  # reads on: one more
    second = entry()
    assert second[0] == first[0] and second[1].startswith("4 new papers, ")
    assert second[2] > first[2]  # news again for a feed reader
    name = first[0].rsplit("/", 1)[1]
    save_digest(load_digest(name, index_dir=survey_index), index_dir=survey_index)  # written again, nothing new
    assert entry()[2] == second[2]


def test_papers_turned_away_are_placed_again_by_another_judge(survey_index, stub):
    """One record of papers seen out of scope served every watch: a --keep-all watch, a watch by
    another taxonomy, or one after the labels changed the classifier, passed over the papers an
    earlier watch had turned away and kept none of them."""
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert Index.open(survey_index).store.get("2411.00009") is None
    label_paper("2411.00001", "Speculative Decoding", index_dir=survey_index)  # the classifier learns again
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert again.ingest.embedded == 1 and [e.id for e in again.entries] == ["2411.00009"]  # placed anew
    kept = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, keep_all=True, progress=False)
    assert kept.ingest.embedded == 1 and Index.open(survey_index).store.get("2411.00009") is not None


@pytest.mark.parametrize(
    "record",
    [
        "not json",
        "[1, 2]",
        '{"2411.00009": "209912312359"}',  # the record of an earlier version
        '{"judge": "another", "papers": {"2411.00009": "209912312359|0123456789abcdef"}}',
        '{"judge": "JUDGE", "papers": {"2411.00009": "209912312359"}}',  # no digest of the text
        '{"judge": "JUDGE", "papers": [1]}',
        '{"judge": "JUDGE", "papers": {"2411.00009": 5}}',
        '{"judge": "JUDGE", "papers": {"2411.00009": "yesterday"}}',
        '{"judge": "JUDGE", "papers": {"2411.00009": "202001010000|0123456789abcdef"}}',  # too long ago: dropped
    ],
)
def test_a_damaged_record_of_papers_seen_out_of_scope_only_costs_embedding_them_again(survey_index, stub, record):
    from semsearch.watch import SEEN_OUTSIDE, watch_key

    key = SEEN_OUTSIDE + watch_key(["cs.CL"], None, False)
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    with Ingest(index_dir=survey_index) as ingest:
        judge = json.loads(ingest.store.get_meta(key))["judge"]
        ingest.store.set_meta(key, record.replace("JUDGE", judge))
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert [e.id for e in again.entries] == ["2411.00009"] and again.ingest.embedded == 1
    saved = json.loads(Index.open(survey_index).store.get_meta(key))
    assert saved["judge"] == judge and list(saved["papers"]) == ["2411.00009"]
    assert re.fullmatch(rf"{again.until}\|[0-9a-f]{{16}}", saved["papers"]["2411.00009"])  # its window, its text


def interrupted_after_the_first_page(survey_index, fake_model, monkeypatch) -> None:
    """A watch of the stub's window (pages of two) stopped by Ctrl-C while it embeds its second page:
    the first page is staged and listed in its pending state, nothing published."""
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    real_encode = fake_model.encode

    def crash_on_second_page(texts, **kwargs):
        if texts[0].startswith("Four-bit"):
            raise KeyboardInterrupt
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(fake_model, "encode", crash_on_second_page)
    with pytest.raises(KeyboardInterrupt):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    monkeypatch.setattr(fake_model, "encode", real_encode)


def test_papers_an_abandoned_window_staged_are_listed_by_the_window_that_follows(
    survey_index, stub, fake_model, monkeypatch
):
    """A watch interrupted after its first page, then one asked for another window: the papers the
    first had staged (never published, never in a digest) were passed over as placed before."""
    interrupted_after_the_first_page(survey_index, fake_model, monkeypatch)
    other = watch(["cs.CL"], "2024-10-31", index_dir=survey_index, progress=False)
    assert {e.id for e in other.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert Index.open(survey_index).manifest.count == 427


def test_a_watch_stores_the_new_text_of_a_paper_it_placed_before(survey_index, stub):
    """Windows overlap, and what a watch placed before is skipped; a paper whose text arXiv changed
    is placed again and stored with its new text."""
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    stub.papers["2411.00002"]["abstract"] += " A second version adds a tree of draft tokens."
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert again.entries == [] and again.ingest.embedded == 1 and again.ingest.updated == 1
    assert Index.open(survey_index).store.get("2411.00002").abstract.endswith("a tree of draft tokens.")
    index = Index.open(survey_index)
    assert index.manifest.count == 427 and len({p.id for _, p in index.store.iter_papers()}) == 427


def test_a_paper_the_index_holds_is_stored_with_its_new_text_even_when_that_is_out_of_scope(survey_index, stub, cli):
    """A stored paper whose new version arXiv's text puts out of scope kept its old text: search,
    related and `classify --arxiv` went on answering from words arXiv no longer gives, and the
    watch's record of papers turned away passed the new text over from then on."""
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    title, abstract = OUT_OF_SCOPE["2411.00009"]
    stub.papers["2411.00002"] |= {"title": "Revised: " + title, "abstract": abstract}  # its version 2
    cli("watch", "--since", "2024-11-01", "--index", survey_index, "--format", "json", check=True)
    held = Index.open(survey_index).store.get("2411.00002")
    assert (held.title, held.abstract) == ("Revised: " + title, abstract)
    found = json.loads(cli("search", "Revised: " + title, "--index", survey_index, "--json", check=True).stdout)
    assert found["results"][0]["id"] == "2411.00002"
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert again.ingest.embedded == 0 and again.entries == []  # placed once: nothing to do again


def test_a_held_paper_an_earlier_watch_turned_away_with_its_new_text_is_stored_with_it(survey_index, stub):
    """What a watch before that rule left: the index holds the old text and the record of papers
    turned away the new one, which every later watch passed over."""
    from semsearch.paper import Paper
    from semsearch.watch import SEEN_OUTSIDE, _text_digest, watch_key

    first = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    title, abstract = OUT_OF_SCOPE["2411.00009"]
    stub.papers["2411.00002"] |= {"title": title, "abstract": abstract}
    key = SEEN_OUTSIDE + watch_key(["cs.CL"], None, False)
    with Ingest(index_dir=survey_index) as ingest:
        record = json.loads(ingest.store.get_meta(key))
        record["papers"]["2411.00002"] = f"{first.until}|{_text_digest(Paper(id='x', title=title, abstract=abstract))}"
        ingest.store.set_meta(key, json.dumps(record))
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert again.ingest.updated == 1 and Index.open(survey_index).store.get("2411.00002").abstract == abstract


def test_keep_all_ingests_out_of_scope_papers_too(survey_index, stub):
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, keep_all=True, progress=False)
    assert Index.open(survey_index).store.get("2411.00009") is not None


def test_a_since_watch_stopped_before_its_first_page_is_gone_on_with_by_the_next_watch(survey_index, stub, monkeypatch):
    """Killed before its first page was stored, `watch --since D` left nothing: the next plain watch
    covered the last day only, and the days asked for were never read (a clumsy operator's pass)."""
    from semsearch.sources.arxiv import ArxivClient

    def stopped(self, *args, **kwargs):
        raise KeyboardInterrupt
        yield

    real = ArxivClient.pages
    monkeypatch.setattr(ArxivClient, "pages", stopped)
    with pytest.raises(KeyboardInterrupt):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    monkeypatch.setattr(ArxivClient, "pages", real)
    report = watch(["cs.CL"], index_dir=survey_index, progress=False)
    assert report.since == "202411010000" and {e.id for e in report.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)


def test_interrupted_watch_resumes_at_the_next_page(survey_index, stub, fake_model, monkeypatch):
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    real_encode = fake_model.encode
    calls = {"n": 0}

    def crash_on_second_page(texts, **kwargs):
        if len(texts) == 2 and texts[0].startswith("Four-bit"):
            calls["n"] += 1
            raise KeyboardInterrupt
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(fake_model, "encode", crash_on_second_page)
    with pytest.raises(KeyboardInterrupt):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert calls["n"] == 1 and Index.open(survey_index).manifest.count == 424  # nothing published yet
    monkeypatch.setattr(fake_model, "encode", real_encode)
    starts = len(stub.requests)
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert [r["start"] for r in stub.requests[starts:]][0] == ["2"]  # the first page is not asked again
    assert {e.id for e in report.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)  # still in the digest
    assert Index.open(survey_index).manifest.count == 427
    # Counted whole, as the digest lists it ("2 fetched, 4 new"), and the first attempt named as an
    # earlier run: this watch holds the watch lock itself ("from the watch running now").
    assert report.fetched == 4 and list_digests(index_dir=survey_index)[0]["papers"] == 3
    assert "2 more new from an earlier run that stopped before publishing" in report.ingest.summary()


def test_a_watch_whose_arxiv_fails_part_way_resumes_and_digests_every_page(survey_index, stub, monkeypatch):
    from semsearch.errors import SemsearchError
    from semsearch.watch import list_digests
    from tests.arxiv_stub import Step

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    stub.script = [Step(200)] + [Step(503)] * 5  # the first page, then arXiv fails every retry
    with pytest.raises(SemsearchError, match="did not answer"):
        watch(["cs.CL", "cs.LG"], "2024-11-01", index_dir=survey_index, progress=False)
    published = Index.open(survey_index)
    assert published.manifest.count == 424 + 2  # the first page's papers are published
    pending = json.loads(published.store.get_meta(PENDING + "cs.CL,cs.LG"))  # and where the watch stands
    assert (pending["since"], pending["offset"]) == ("202411010000", 2)
    assert [e["id"] for e in pending["entries"]] == ["2411.00001", "2411.00002"]
    assert list_digests(index_dir=survey_index) == []  # no digest for a watch that did not finish
    starts = len(stub.requests)
    report = watch(["cs.CL", "cs.LG"], index_dir=survey_index, progress=False)  # a plain rerun, as a schedule would
    assert (report.since, report.until) == (pending["since"], pending["until"])  # the same window
    assert stub.requests[starts]["start"] == ["2"]
    assert {e.id for e in report.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert Index.open(survey_index).manifest.count == 427
    assert [d["papers"] for d in list_digests(index_dir=survey_index)] == [3]


def test_a_watch_answered_with_a_page_that_is_not_a_feed_fails_and_keeps_its_window(survey_index, stub):
    """A proxy's or captive portal's page read as "no new papers" moved the next watch past the
    papers it never saw; now the watch fails, and the next one asks for the same window."""
    from semsearch.errors import SemsearchError
    from semsearch.watch import list_digests
    from tests.arxiv_stub import Step

    stub.script = [Step(page=b"<html><body>Sign in</body></html>", content_type="text/html")] * 5
    with pytest.raises(SemsearchError, match=r"not an Atom feed \(text/html, 33 bytes\)"):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert Index.open(survey_index).store.get_meta(LAST_WATCH) is None and list_digests(index_dir=survey_index) == []
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert report.since == "202411010000" and report.fetched == 4


def test_a_first_watch_looks_back_a_day_and_a_watch_asked_for_another_window_starts_afresh(
    survey_index, stub, monkeypatch
):
    import time
    from datetime import datetime, timedelta, timezone

    from semsearch.errors import SemsearchError
    from tests.arxiv_stub import Step

    with pytest.MonkeyPatch.context() as local_time:
        local_time.setenv("TZ", "IST-5:30")  # a local time far from UTC: the windows are UTC all the same
        time.tzset()
        try:
            first = watch(index_dir=survey_index, progress=False)  # no watch before it, no window asked
        finally:
            local_time.undo()
            time.tzset()
    until = datetime.strptime(first.until, "%Y%m%d%H%M").replace(tzinfo=timezone.utc)
    assert abs(until - datetime.now(timezone.utc)) < timedelta(minutes=5)
    day_before = f"{until - timedelta(days=1):%Y%m%d%H%M}"
    assert first.since == day_before and first.fetched == 0
    assert stub.requests[-1]["search_query"] == [
        f"(cat:cs.CL OR cat:cs.LG OR cat:cs.AI) AND submittedDate:[{day_before} TO {first.until}]"
    ]
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    stub.script = [Step(200)] + [Step(503)] * 5
    with pytest.raises(SemsearchError, match="did not answer"):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)  # left after its first page
    starts = len(stub.requests)
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 1)
    other = watch(["cs.CL"], "2024-11-02", index_dir=survey_index, progress=False, max_results=2)
    assert stub.requests[starts]["start"] == ["0"] and other.since == "202411020000"
    assert other.fetched == 2  # two pages of one, then max_results is reached
    assert [e.id for e in other.entries] == ["2411.00003"]  # 2411.00002 was published by the watch left


def test_a_watch_needs_labelled_papers_to_place_new_ones_by(corpus_index):
    from semsearch.errors import SemsearchError

    with pytest.raises(SemsearchError) as refused:
        watch(index_dir=corpus_index, progress=False)
    assert str(refused.value) == (
        "the index has no labelled papers to place new ones by; run `semsearch ingest survey`"
    )


def test_digests_are_kept_and_served(survey_index, stub):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    client = TestClient(create_app(index_dir=survey_index, reload_seconds=None))
    listed = client.get("/api/digests").json()["digests"]
    assert len(listed) == 1 and listed[0]["papers"] == 3 and listed[0]["since"] == "202411010000"
    digest = client.get(f"/api/digests/{listed[0]['name']}").json()
    assert sum(len(v) for v in digest["groups"].values()) == 3
    assert client.get("/api/digests/../../etc/passwd").status_code == 404
    assert client.get("/api/digests/202411010000-202411010001").status_code == 404


def test_a_scheduled_watch_runs_each_turn_and_outlives_a_failure(survey_index, stub):
    import threading

    from semsearch.watch import watch_every
    from tests.arxiv_stub import Step

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)  # the window so far is done
    stub.script = [Step(503)] * 5  # the first turn fails; the second succeeds
    turns, stop = [], threading.Event()

    def done(report, error):
        turns.append(error or report)
        if len(turns) == 2:
            stop.set()

    watch_every(0.01, stop, ["cs.CL"], on_done=done, index_dir=survey_index)
    assert "did not answer" in str(turns[0]) and turns[1].fetched == 0


def test_intervals():
    from semsearch.errors import SemsearchError
    from semsearch.watch import parse_interval

    assert [parse_interval(t) for t in ("90s", "30m", "24h", "1d", "1.5h")] == [90, 1800, 86400, 86400, 5400]
    for bad in ("", "24", "0h", "-1h", "1w"):
        with pytest.raises(SemsearchError):
            parse_interval(bad)


def test_labels_change_later_suggestions(survey_index, fake_model):
    from semsearch.classify import classify_texts

    text = ("Zebra quagga okapi", "Tapir capybara axolotl pangolin narwhal.")
    with Ingest(index_dir=survey_index, progress=False) as job:
        from semsearch.paper import Paper

        job.add([Paper(id="2411.00042", title=text[0], abstract=text[1])])
    before = classify_texts(Index.open(survey_index), [(None, *text)])[0]
    node = label_paper("2411.00042", "Demonstration Ordering", index_dir=survey_index)
    assert node.endswith("Demonstration Ordering")
    after = classify_texts(Index.open(survey_index), [(None, *text)])[0]
    assert after.category == node and before.category != node
    assert Index.open(survey_index).store.labels()[0]["category"] == node


def test_a_label_outranks_the_prediction_everywhere(tmp_path):
    from semsearch.paper import Paper
    from semsearch.store import Prediction, Store

    store = Store(tmp_path / "papers.db")
    vec_id = store.put(Paper(id="2411.00042", title="T", abstract="A"))
    labelled = "Data-Centric Methods/Prompt Engineering/Few-Shot Prompting/Demonstration Organization"
    predicted = "Model-Centric Methods/Model Compression/Quantization"
    store.put_predictions([(vec_id, Prediction(predicted, 0.9, True))])
    store.derive_categories()
    assert store.vec_ids_where(categories=[predicted]) == [vec_id]
    store.put_label(vec_id, labelled + "/Demonstration Ordering", "2024-11-01T00:00:00+00:00")
    store.derive_categories()
    # The --category filter reads the paper's category as `categories_for` does: the label wins.
    assert store.categories_for([vec_id])[vec_id] == [labelled + "/Demonstration Ordering"]
    assert store.vec_ids_where(categories=[labelled]) == [vec_id]
    assert store.vec_ids_where(categories=[predicted]) == []


def test_label_and_watch_cli(survey_index, stub, capsys, tmp_path):
    code, _, err = run(capsys, "label", "2306.00978", "Low-Rank Approximation", "--index", survey_index)
    assert code == 0, err
    code, out, _ = run(capsys, "labels", "--index", survey_index)
    assert json.loads(out)["category"].endswith("Low-Rank Approximation")
    assert run(capsys, "label", "2306.00978", "--remove", "--index", survey_index)[0] == 0
    code, _, err = run(capsys, "label", "nope", "Quantization", "--index", survey_index)
    assert code == 2 and "no paper 'nope'" in err
    code, _, err = run(capsys, "label", "2306.00978", "Not A Node", "--index", survey_index)
    assert code == 2 and "unknown category" in err
    code, _, err = run(capsys, "label", "2306.00978", "Quantization", "--remove", "--index", survey_index)
    assert code == 2 and err == "error: give a CATEGORY or --remove, not both\n"
    code, _, err = run(capsys, "label", "2306.00978", "--index", survey_index)
    assert code == 2 and err == "error: give a CATEGORY, or --remove\n"

    digest = tmp_path / "digest.md"
    code, out, err = run(
        capsys,
        "watch",
        "--categories",
        "cs.CL,cs.LG",
        "--since",
        "2024-11-01",
        "--output",
        digest,
        "--index",
        survey_index,
    )
    assert code == 0, err
    assert out == "" and digest.read_text().startswith("# semsearch digest: 3 new papers")
    code, out, _ = run(capsys, "watch", "--format", "json", "--index", survey_index)
    assert code == 0 and json.loads(out)["groups"] == {}


def test_the_markdown_digest_keeps_what_arxiv_sends_as_words():
    """Titles, abstracts and names went into the Markdown as they came: a title made a
    `javascript:` link, an abstract a remote image; an author or an abstract that began "# " or
    "1. " a heading or a list, a bare address a link (an attacker's pass). Rendered as GitHub
    does, the digest has only the links it writes itself, its own headings, and the words arXiv sent."""
    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport
    from tests.test_markup import GITHUB

    entry = DigestEntry(
        "2612.00041", "Quantizing LLM weights](javascript:alert(1)) **click** [to 4 bits <script>x</script>",
        "https://arxiv.org/abs/2612.00041", "A/B", 0.9, True,
        closest=[{"id": "x", "title": "[near](javascript:alert(4))", "categories": []}],
        authors=["# Injected author heading", "Mallory](javascript:alert(3)) [x", "Eve https://evil.example/x"],
        snippet="1. We quantize. [phish](javascript:alert(2)) ![img](http://evil.example/t.png) www.evil.example",
    )  # fmt: skip
    digest = render_digest(WatchReport("202411010000", "202411020000", 1, [entry], IngestReport()), "markdown")
    page = GITHUB.render(digest)
    assert re.findall(r"<(h\d|ol)>", page) == ["h1", "h2"]
    from semsearch.watch import PAPER_VIEW

    assert re.findall(r'(?:href|src)="([^"]*)"', page) == [
        "https://arxiv.org/abs/2612.00041",
        PAPER_VIEW + "2612.00041",
    ]
    assert "<img" not in page and "<script" not in page and "<strong>click</strong>" not in page
    assert "Quantizing LLM weights](javascript:alert(1)) **click** [to 4 bits" in html.unescape(page)


def test_the_html_digest_escapes_what_arxiv_sends():
    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport

    entry = DigestEntry(
        "2411.00001", "Caches <script>alert(1)</script> & more", "https://arxiv.org/abs/2411.00001?a=1&b=2",
        "A/B <KV>", 0.9, True, closest=[{"id": "x", "title": "R&D <i>", "categories": []}],
        authors=["O'Brien <ob@x>"], snippet="x < y & z",
    )  # fmt: skip
    page = render_digest(WatchReport("202411010000", "202411020000", 1, [entry], IngestReport()), "html")
    body = page.split("<body>", 1)[1]
    assert "<script>" not in body and "<i>" not in body and "<KV>" not in body and "<ob@x>" not in body
    assert "Caches &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body and "x &lt; y &amp; z" in body
    assert "a=1&amp;b=2" in body and "R&amp;D &lt;i&gt;" in body


def test_labels_survive_a_rebuild_through_export_and_import(survey_index, tmp_path, capsys):
    from semsearch.ingest import ingest_survey

    assert run(capsys, "label", "2306.00978", "Low-Rank Approximation", "--index", survey_index)[0] == 0
    code, exported, _ = run(capsys, "labels", "--index", survey_index)
    assert code == 0 and json.loads(exported)["category"].endswith("Low-Rank Approximation")
    (tmp_path / "labels.jsonl").write_text(
        exported + json.dumps({"id": "2999.99999", "category": "Quantization"}) + "\n"
    )
    rebuilt = tmp_path / "rebuilt"
    ingest_survey(index_dir=rebuilt, offline=True, progress=False)
    code, _, err = run(capsys, "labels", "import", tmp_path / "labels.jsonl", "--index", rebuilt)
    assert code == 0 and "imported 1 label; 1 is for a paper not in the index" in err
    assert run(capsys, "labels", "--index", rebuilt)[1] == exported
    # Imported again, a file changes nothing: no new generation, each label's time as it was (a line
    # without a time was stamped anew, and every import published).
    generation = (rebuilt / "CURRENT").read_text()
    (tmp_path / "untimed.jsonl").write_text(json.dumps({"id": "2306.00978", "category": "Low-Rank Approximation"}))
    for again in ("labels.jsonl", "untimed.jsonl"):
        code, _, err = run(capsys, "labels", "import", tmp_path / again, "--index", rebuilt)
        assert code == 0 and "imported 0 labels; 1 the index held already" in err, err
    assert (rebuilt / "CURRENT").read_text() == generation
    assert run(capsys, "labels", "--index", rebuilt)[1] == exported
    retimed = json.loads(exported) | {"labelled_at": "2026-01-02T00:00:00+00:00"}
    (tmp_path / "retimed.jsonl").write_text(json.dumps(retimed))  # the same heading at another time: taken
    assert "imported 1 label\n" in run(capsys, "labels", "import", tmp_path / "retimed.jsonl", "--index", rebuilt)[2]
    assert json.loads(run(capsys, "labels", "--index", rebuilt)[1])["labelled_at"] == retimed["labelled_at"]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "2306.00978", "category": "Nope"}) + "\n")
    code, _, err = run(capsys, "labels", "import", tmp_path / "bad.jsonl", "--index", rebuilt)
    assert code == 2 and "bad.jsonl:1:" in err


TIME_REFUSED = "labelled_at: expected a date and time (ISO 8601, as `semsearch labels` writes)"


@pytest.mark.parametrize(
    "record, refusal",
    [
        ({"id": None, "category": "Quantization"}, "id: Field required"),
        ({"id": True, "category": "Quantization"}, "id: Input should be a valid string"),
        ({"id": 2402.0153, "category": "Quantization"}, "id: Input should be a valid string"),
        ({"id": {"a": 1}, "category": "Quantization"}, "id: Input should be a valid string"),
        ({"id": "2306.00978", "category": ["Quantization"]}, "category: Input should be a valid string"),
        ({"id": "2306.00978", "category": "Quantization", "labelled_at": "not a date"}, TIME_REFUSED),
        ({"id": "2306.00978", "category": "Quantization", "labelled_at": "\u001b[31m\u0007"}, "labelled_at: expected"),
        ({"id": "2306.00978", "category": "Quantization", "labelled_at": 5}, "labelled_at: Input should be a valid"),
    ],
)
def test_a_label_record_is_read_as_labels_writes_it_or_refused_by_line(survey_index, tmp_path, capsys, record, refusal):
    """Ids of null, true or a number were stored as "None", "True", "2402.0153" and counted as not
    in the index, and any labelled_at was kept and shown (an attacker's pass)."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"id": "2306.00978", "category": "Quantization"}) + "\n" + json.dumps(record) + "\n")
    code, out, err = run(capsys, "labels", "import", labels, "--index", survey_index)
    assert (code, out) == (2, "") and err.startswith(f"error: {labels}:2: {refusal}") and err.count("\n") == 1, err
    assert run(capsys, "labels", "--index", survey_index)[1] == ""  # nothing of the file stored


def test_an_imported_label_on_a_paper_the_survey_labels_is_said_to_stand_behind_it(survey_index, tmp_path, capsys):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "2306.00978", "category": "Low-Rank Approximation", "labelled_at": "2026-01-02"}\n')
    code, _, err = run(capsys, "labels", "import", labels, "--index", survey_index)
    assert code == 0 and err == (
        "warning: 1 of the imported labels are on papers the survey labels otherwise, which stands: they are kept, "
        "and count if the survey stops labelling them\nimported 1 label\n"
    )
    assert json.loads(run(capsys, "labels", "--index", survey_index)[1])["labelled_at"] == "2026-01-02T00:00:00"


def test_categories_are_derived_once_at_publish_and_read_the_same_by_every_path(survey_corpus_index):
    """Search hits, the --category filter and the counts read the categories stored with the
    generation; an index published before they were stored derives the same ones on reading."""
    import sqlite3

    from semsearch.search import Searcher

    index = Index.open(survey_corpus_index)
    store = index.store
    stored = store.categories_for(range(store.count() + 1))
    sources = {v: s for v, (_, s, _) in store.category_evidence(stored).items()}
    assert {"survey", "predicted"} <= set(sources.values())
    hits = Searcher(index, taxonomy=False).hits([(v, 1.0) for v in stored])
    assert {h.vec_id: h.categories for h in hits} == stored
    assert {h.vec_id: h.category_source for h in hits} == sources
    predicted = next(v for v, s in sources.items() if s == "predicted")
    assert predicted in store.vec_ids_where(categories=[stored[predicted][0].rsplit("/", 1)[0]])
    counts = store.content_counts()
    assert counts["predicted"] == sum(s == "predicted" for s in sources.values())
    index.close()

    db = sqlite3.connect(index.generation_dir / "papers.db")
    db.execute("DROP TABLE paper_categories")  # as an index written before they were stored
    db.commit()
    db.close()
    reseal(index.generation_dir)  # published files carry checksums: the rewrite is on purpose
    older = Index.open(survey_corpus_index).store
    assert older.categories_for(stored) == stored and older.content_counts() == counts


# --- digests under damage ----------------------------------------------------------------------------
GOOD = "202411010000-202411020000"  # an older, readable digest
NEWER = "202411020000-202411030000"  # the newest by name: the one damaged in the tests below


def _report(since: str, until: str, title: str):
    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport

    entry = DigestEntry(
        "2411.00001", title, None, "Model-Centric Methods/Model Compression/Quantization", 0.8, True,
        closest=[{"id": "2306.00978", "title": "A known paper", "categories": []}], authors=["Grace Hopper"],
        snippet="A snippet.",
    )  # fmt: skip
    return WatchReport(since, until, 1, [entry], IngestReport())


@pytest.fixture
def digest_client(survey_index):
    """A server over an index with one readable digest (GOOD), for damaging more beside it."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from semsearch.watch import save_digest

    save_digest(_report(*GOOD.split("-"), "The readable digest's paper"), index_dir=survey_index)
    with TestClient(create_app(index_dir=survey_index, reload_seconds=None)) as client:
        yield client, survey_index / "digests"


def _valid_bytes(name: str = NEWER) -> bytes:
    return json.dumps(
        {
            "since": name[:12],
            "until": name[13:],
            "fetched": 1,
            "entries": [
                {
                    "id": "2411.00002",
                    "title": "Newer paper",
                    "url": None,
                    "category": "Quantization",
                    "confidence": 0.5,
                    "in_scope": True,
                }
            ],
        }  # fmt: skip
    ).encode()


def _with(field: str, value) -> bytes:
    data = json.loads(_valid_bytes())
    target = data["entries"][0] if field in data["entries"][0] else data
    target[field] = value
    return json.dumps(data).encode()


DAMAGED = {
    "garbage": b"\x00\xff\xfe garbage \x89PNG",
    "empty": b"",
    "half-written": _valid_bytes()[: len(_valid_bytes()) // 2],
    "not UTF-8": _valid_bytes().replace(b"Newer", b"N\xe9wer"),
    "a list, not a digest": b"[1, 2, 3]",
    "no entries": json.dumps({"since": NEWER[:12], "until": NEWER[13:], "fetched": 0}).encode(),
    "an entry without a title": _valid_bytes().replace(b'"title"', b'"name"'),
    "a confidence of NaN": _valid_bytes().replace(b"0.5", b"NaN"),
    "a string as confidence": _with("confidence", "high"),
    "a confidence of 7.5": _with("confidence", 7.5),
    "a lone surrogate": _valid_bytes().replace(b"Newer", b"\\ud800"),
    "a month 13": json.dumps({**json.loads(_valid_bytes()), "since": "202413010000"}).encode(),
    "a window unlike its name": _valid_bytes("202411050000-202411060000"),
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "a number too long": b'{"since": "' + NEWER[:12].encode() + b'", "fetched": ' + b"9" * 5000 + b"}",
}


def test_a_damaged_digest_is_skipped_with_a_note_and_never_breaks_the_api(digest_client):
    client, folder = digest_client
    for damage, data in DAMAGED.items():  # one server: each damage replaces the file, as a writer would
        (folder / "incoming").write_bytes(data)
        os.replace(folder / "incoming", folder / f"{NEWER}.json")

        listing = client.get("/api/digests")
        assert listing.status_code == 200, damage
        assert [d["name"] for d in listing.json()["digests"]] == [GOOD], damage
        [skipped] = listing.json()["skipped"]
        assert skipped["file"] == f"{NEWER}.json" and "\n" not in skipped["reason"], damage

        one = client.get(f"/api/digests/{NEWER}")
        assert one.status_code == 422 and list(one.json()) == ["error"], damage
        assert NEWER in one.json()["error"] and "\n" not in one.json()["error"], damage

        overview = client.get("/api/overview")  # the newest readable digest, passing over the damaged one
        assert overview.status_code == 200, damage
        assert [e["title"] for group in overview.json()["new_papers"].values() for e in group] == [
            "The readable digest's paper"
        ], damage
        assert client.get(f"/api/digests/{GOOD}").status_code == 200, damage


def test_a_copied_digest_is_shown_as_the_index_shows_its_papers_links_and_text_checked(digest_client):
    """A digest file is read back as it lies in the folder, which may be a copied index's: a
    `javascript:` link, ESC and U+202E were served as stored (an attacker's pass)."""
    client, folder = digest_client
    hostile = json.loads(_with("url", "javascript:alert(1)"))
    hostile["entries"][0] |= {"title": "Newer\u001b[31m paper\u202e", "authors": ["Eve\u0007"], "snippet": "a\u2066b"}
    hostile["entries"][0]["closest"] = [{"id": "2306.00978", "title": "Known\u202e", "categories": ["Q\u001b"]}]
    (folder / f"{NEWER}.json").write_text(json.dumps(hostile))
    [[entry]] = client.get(f"/api/digests/{NEWER}").json()["groups"].values()
    assert entry["url"] is None and entry["title"] == "Newer [31m paper" and entry["authors"] == ["Eve"]
    assert entry["snippet"] == "a b" and entry["closest"] == [
        {"id": "2306.00978", "title": "Known", "categories": ["Q"]}
    ]
    feed = client.get("/feeds/digests.atom").text
    assert "\u202e" not in feed and "\u001b" not in feed and "javascript:" not in feed


def test_a_damaged_digest_is_logged_once_not_on_every_request(digest_client, caplog, monkeypatch):
    import logging

    client, folder = digest_client
    (folder / f"{NEWER}.json").write_bytes(b"{")
    # Listen on the logger itself, and only there: whether "semsearch" propagates to the root
    # (where caplog listens too) depends on whether a CLI test ran earlier in this process.
    monkeypatch.setattr(logging.getLogger("semsearch"), "propagate", False)
    logger = logging.getLogger("semsearch.watch")
    logger.addHandler(caplog.handler)
    try:
        for _ in range(3):
            client.get("/api/digests")
            client.get("/api/overview")
    finally:
        logger.removeHandler(caplog.handler)
    noted = [r.getMessage() for r in caplog.records if NEWER in r.getMessage()]
    assert len(noted) == 1 and "skipping" in noted[0]


def test_a_stray_file_in_digests_is_neither_the_newest_nor_served(digest_client):
    client, folder = digest_client
    (folder / "zzz.json").write_bytes(_valid_bytes())  # sorts after every digest name; its content is fine
    (folder / "notes.txt").write_text("not a json file at all")
    listing = client.get("/api/digests").json()
    assert [d["name"] for d in listing["digests"]] == [GOOD]
    assert [s["file"] for s in listing["skipped"]] == ["zzz.json"]
    overview = client.get("/api/overview")
    assert overview.status_code == 200 and overview.json()["new_papers"]
    assert client.get("/api/digests/zzz").status_code == 404


def test_a_digest_name_that_is_a_folder_or_leads_outside_is_refused_without_its_content(digest_client, tmp_path):
    client, folder = digest_client
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    (folder / f"{NEWER}.json").symlink_to(secret)
    (folder / "202411030000-202411040000.json").mkdir()
    (folder / "202411040000-202411050000.json").symlink_to("/dev/zero")  # endless: read whole, it exhausts memory
    os.mkfifo(folder / "202411050000-202411060000.json")  # opened plainly, it blocks the request for good
    for name in (NEWER, "202411030000-202411040000", "202411040000-202411050000", "202411050000-202411060000"):
        answer = client.get(f"/api/digests/{name}")
        assert answer.status_code == 422 and "hunter2" not in answer.text
    for name in ("..%2F..%2Fsecret", f"{GOOD}.json", f"{GOOD}%00", f"{GOOD}%0A"):
        assert client.get(f"/api/digests/{name}").status_code == 404
    listing = client.get("/api/digests")
    assert listing.status_code == 200 and "hunter2" not in listing.text and len(listing.json()["skipped"]) == 4
    assert client.get("/api/overview").status_code == 200


def test_an_empty_digests_folder_or_none_at_all_answers_empty(survey_index):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    with TestClient(create_app(index_dir=survey_index, reload_seconds=None)) as client:
        assert client.get("/api/digests").json() == {"digests": [], "skipped": []}
        assert client.get("/api/overview").json()["new_papers"] == {}
        (survey_index / "digests").mkdir()
        (survey_index / "digests" / f"{NEWER}.json").write_bytes(b"")
        assert client.get("/api/overview").json()["new_papers"] == {}  # only a damaged one: none yet


def test_a_digest_is_written_whole_or_not_at_all(survey_index, monkeypatch):
    """The digest goes to a temp file, is flushed to disk, then renamed: a failure on the way leaves
    neither a digest under its real name nor the temp file."""
    from semsearch import watch as watch_module

    synced = []
    real_fsync = watch_module.os.fsync

    def fsync_then_fail(fd):
        synced.append(fd)
        real_fsync(fd)
        raise OSError(5, "input/output error")

    monkeypatch.setattr(watch_module.os, "fsync", fsync_then_fail)
    with pytest.raises(OSError):
        watch_module.save_digest(_report(*NEWER.split("-"), "Never saved"), index_dir=survey_index)
    assert synced and list((survey_index / "digests").iterdir()) == []
    monkeypatch.setattr(watch_module.os, "fsync", real_fsync)
    saved = watch_module.save_digest(_report(*NEWER.split("-"), "Saved"), index_dir=survey_index)
    assert [p.name for p in saved.parent.iterdir()] == [f"{NEWER}.json"]
    assert watch_module.list_digests(index_dir=survey_index)[0]["name"] == NEWER


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_digests_and_current_are_written_as_the_users_umask_asks(tmp_path, umask, mode):
    """Digests and CURRENT were 0644 whatever the umask: a user who keeps files private (umask 077)
    had their digests readable by all, unlike the index's SQLite and FAISS files beside them."""
    from tests.cli_process import python_prints

    target = tmp_path / "digest.md"
    code = (
        f"import os; os.umask({umask}); from pathlib import Path; from semsearch.index import write_atomically; "
        f"write_atomically(Path({str(target)!r}), b'x'); open({str(tmp_path / 'plain')!r}, 'w').close()"
    )
    python_prints(code)
    assert target.stat().st_mode & 0o777 == mode == (tmp_path / "plain").stat().st_mode & 0o777  # as any file


def test_a_second_watch_of_the_same_window_keeps_the_first_ones_papers(survey_index):
    """Two watches in one minute write one file name; the second (nothing new: the first had
    ingested it) wrote over the first's paper (a contract pass)."""
    from dataclasses import replace

    from semsearch.watch import read_digest_file, save_digest

    first = _report(*NEWER.split("-"), "Found by the first watch")
    saved = save_digest(first, index_dir=survey_index)
    assert saved.stat().st_mode & 0o777 == FILE_MODE  # a server run as another user reads it (was 0600)
    saved = save_digest(replace(first, entries=[], fetched=0), index_dir=survey_index)
    assert [e.title for e in read_digest_file(saved).entries] == ["Found by the first watch"]
    assert read_digest_file(saved).fetched == first.fetched  # what the first fetched, not the second's 0
    again = replace(first.entries[0], title="Found again, newer")
    other = replace(first.entries[0], id="2411.00009", title="Another")
    save_digest(replace(first, entries=[again, other]), index_dir=survey_index)
    assert [e.title for e in read_digest_file(saved).entries] == ["Found again, newer", "Another"]
    saved.write_bytes(b"{damaged")
    save_digest(first, index_dir=survey_index)  # a damaged one is written over
    assert [e.title for e in read_digest_file(saved).entries] == ["Found by the first watch"]


def _mutations():
    """Bytes a digest file may hold after damage: anything at all, a valid digest cut short or with
    bytes changed, or any JSON value."""
    from hypothesis import strategies as st

    valid = _valid_bytes()
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    flipped = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=4).map(
        lambda changes: bytes(b if i not in dict(changes) else dict(changes)[i] for i, b in enumerate(valid))
    )
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    values = st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    )  # fmt: skip
    shaped = st.fixed_dictionaries(
        {"since": st.just(NEWER[:12]), "until": st.just(NEWER[13:]), "fetched": values, "entries": values}
    )
    as_json = (values | shaped).map(lambda v: json.dumps(v).encode())
    return st.binary(max_size=300) | cut | flipped | as_json


@pytest.mark.parametrize("examples", [30, pytest.param(600, marks=pytest.mark.slow)])
def test_no_bytes_in_a_digest_file_make_a_digest_route_answer_5xx(survey_index, examples):
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings

    from semsearch.server import create_app
    from semsearch.watch import save_digest

    save_digest(_report(*GOOD.split("-"), "The readable digest's paper"), index_dir=survey_index)
    target = survey_index / "digests" / f"{NEWER}.json"
    client = TestClient(create_app(index_dir=survey_index, reload_seconds=None), raise_server_exceptions=False)

    @settings(max_examples=examples, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations())
    def routes_answer(data: bytes) -> None:
        target.write_bytes(data)
        for route in ("/api/digests", f"/api/digests/{NEWER}", "/api/overview"):
            answer = client.get(route)
            assert answer.status_code < 500, (route, answer.text)
            assert answer.status_code == 200 or list(answer.json()) == ["error"]
        listed = client.get("/api/digests").json()
        assert GOOD in [d["name"] for d in listed["digests"]]  # the readable one is never hidden by it

    routes_answer()


# --- serve --watch-every: the watcher and its status --------------------------------------------------
def _recent(arxiv_id: str) -> dict:
    """An in-scope stub paper submitted an hour ago: inside the first watch's window (the last day)."""
    from datetime import datetime, timedelta, timezone

    title, abstract = IN_SCOPE["2411.00001"]
    published = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {arxiv_id: {"title": title, "abstract": abstract, "published": published}}


def _until(check, seconds: float = 20.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.parametrize("failure", ["answers 500", "refuses connections"])
def test_serve_watch_every_reports_a_failing_watch_in_health_and_recovers(survey_index, stub, failure, monkeypatch):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from tests.arxiv_stub import Step

    stub.papers = _recent("2612.00001")
    if failure == "answers 500":
        stub.script = [Step(500)] * 10_000  # until the script is cleared
    else:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", "http://127.0.0.1:9/api/query")  # the discard port
    app = create_app(index_dir=survey_index, reload_seconds=0.05, watch_seconds=0.2)
    with TestClient(app) as client:
        # One answer read whole: the watch turns every 0.2 s, and a second request could land in the
        # next turn's "running" (status "ok"; a helper's clock audit made it fail so).
        health = _until(lambda: (h := client.get("/api/health").json())["watch"]["state"] == "failing" and h)
        failing = health["watch"]
        assert "did not answer" in failing["last_error"] and "\n" not in failing["last_error"]
        assert failing["every"] == 0.2 and failing["next_run"] and failing["last_success"] is None
        assert health["status"] == "degraded"
        stub.script.clear()  # arXiv is back: a later turn succeeds
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        ok = _until(lambda: (w := client.get("/api/health").json()["watch"])["last_success"] and w)
        assert ok["last_error"] is None and ok["failures"] >= 1 and ok["state"] in ("ok", "running")
        assert client.get("/api/health").json()["status"] == "ok"
        found = _until(
            lambda: [r for r in client.get("/api/search", params={"q": "evicting tokens"}).json()["results"]
                     if r["id"] == "2612.00001"]
        )  # fmt: skip
        assert found


def test_a_turn_that_fails_in_any_way_is_retried_and_a_failing_report_does_not_end_the_schedule(tmp_path, monkeypatch):
    import threading

    from semsearch import watch as watch_module

    failures = iter([KeyError("entries"), ValueError("bad XML"), RuntimeError("boom")])

    def flaky_watch(*args, **kwargs):
        error = next(failures, None)
        if error:
            raise error
        return "report"

    monkeypatch.setattr(watch_module, "watch", flaky_watch)
    turns, stop = [], threading.Event()

    def done(report, error):
        turns.append(repr(error) if error else report)
        if len(turns) == 4:
            stop.set()
        raise OSError("the reporter itself fails")

    with _Said() as said:
        watch_module.watch_every(0.0, stop, on_done=done, index_dir=tmp_path)
    assert turns == ["KeyError('entries')", "ValueError('bad XML')", "RuntimeError('boom')", "report"]
    assert said == ["semsearch: reporting a watch failed: OSError: the reporter itself fails"] * 4


def test_watch_every_with_an_output_that_cannot_be_written_stops_in_one_line(survey_index, stub, tmp_path, capsys):
    code, _, err = run(
        capsys, "watch", "--every", "1s", "--output", tmp_path / "missing" / "digest.md", "--index", survey_index
    )
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: cannot write")
    assert "Traceback" not in err


def test_a_watch_thread_that_dies_anyway_shows_dead_in_health(survey_index, monkeypatch):
    from fastapi.testclient import TestClient

    from semsearch import watch as watch_module
    from semsearch.server import create_app

    def fatal(*args, **kwargs):
        raise SystemExit(3)  # not an Exception: the schedule cannot go on

    monkeypatch.setattr(watch_module, "watch", fatal)
    with TestClient(create_app(index_dir=survey_index, reload_seconds=None, watch_seconds=0.1)) as client:
        dead = _until(lambda: (w := client.get("/api/health").json()["watch"])["state"] == "dead" and w)
        assert "ended" in dead["last_error"]


def test_other_processes_read_the_watchers_status_file(survey_index, monkeypatch):
    """`serve --workers N`: the parent watches; each worker's health reads the status it writes."""
    from fastapi.testclient import TestClient

    from semsearch import watch as watch_module
    from semsearch.server import create_app

    def unreachable(*args, **kwargs):
        raise watch_module.SemsearchError("arXiv is unreachable (http://127.0.0.1:9/api/query)")

    monkeypatch.setattr(watch_module, "watch", unreachable)
    watcher = watch_module.Watcher(3600, index_dir=survey_index)
    watcher.start()
    status_file = survey_index / watch_module.STATUS_FILE
    with TestClient(create_app(index_dir=survey_index, reload_seconds=None, watched_elsewhere=True)) as worker:
        seen = _until(lambda: (w := worker.get("/api/health").json()["watch"])["state"] == "failing" and w)
        assert seen["last_error"] == "arXiv is unreachable (http://127.0.0.1:9/api/query)" and seen["every"] == 3600
        watcher.close(5)
        assert worker.get("/api/health").json()["watch"]["state"] == "stopped"

        status = json.loads(status_file.read_text())
        gone = 2**31 - 1  # above any pid_max: no process has it, as if the watcher was killed mid-run
        status_file.write_text(json.dumps({**status, "alive": True, "pid": gone}))
        assert worker.get("/api/health").json()["watch"]["state"] == "dead"

        damages = (b"", b"{", b"[]", b'{"pid": "x"}', b'{"pid": 0, "alive": true}', b'{"pid": 1e300, "alive": true}',
                   b'{"pid": 1, "alive": true, "last_error": "\\ud800"}', b"\xff")  # fmt: skip
        for damaged in damages:
            status_file.write_bytes(damaged)
            answer = worker.get("/api/health")
            assert answer.status_code == 200 and answer.json()["watch"]["state"] == "unknown"


def test_listing_digests_reads_each_file_once_until_it_changes(digest_client, monkeypatch):
    from semsearch import watch as watch_module
    from semsearch.watch import save_digest

    client, folder = digest_client
    reads = []
    real_read = watch_module.read_digest_file
    monkeypatch.setattr(watch_module, "read_digest_file", lambda path: reads.append(path.stem) or real_read(path))
    for _ in range(3):
        assert [d["name"] for d in client.get("/api/digests").json()["digests"]] == [GOOD]
    assert reads == [GOOD]  # once, not on every request
    save_digest(_report(*GOOD.split("-"), "Rewritten"), index_dir=folder.parent)  # a new file under the name
    (folder / f"{NEWER}.json").write_bytes(_valid_bytes())
    assert [d["name"] for d in client.get("/api/digests").json()["digests"]] == [NEWER, GOOD]
    # saving over a kept digest reads it (its papers are kept); then the listing reads the new file,
    # and the old name's new version
    assert reads == [GOOD, GOOD, NEWER, GOOD]


# --- rendering a digest: pinned on a small hand-made report -------------------------------------------
QUANT = "Model-Centric Methods/Model Compression/Quantization"
KV = "Efficient Inference/KV Cache"


def _hand_made_report():
    """Four new papers: two in one node (the less confident listed first here), one in another,
    one out of scope (the most confident of all, never shown)."""
    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport

    entries = [
        DigestEntry(
            "2411.00003", "Less sure quantization", None, QUANT, 0.41, True,
            closest=[{"id": "k1", "title": "Known one", "categories": []},
                     {"id": "k2", "title": "Known two", "categories": []}],
            authors=["Ann", "Bob", "Cy", "Di", "Ed"], snippet="Quantizing weights.",
        ),
        DigestEntry("2411.00001", "Sure quantization", "https://arxiv.org/abs/2411.00001", QUANT, 0.9, True,
                    authors=["Ann", "Bob", "Cy", "Di"]),
        DigestEntry("2411.00002", "Caching keys – fast", None, KV, 0.55, True, snippet="Keys are cached.", scope=0.87),
        DigestEntry("2411.00009", "Alignment", None, "Alignment", 0.99, False, authors=["Zed"], snippet="Off."),
    ]  # fmt: skip
    return WatchReport("202411010000", "202411020830", 4, entries, IngestReport())


def test_a_markdown_digest_groups_by_node_most_confident_first():
    assert render_digest(_hand_made_report()) == (
        "# semsearch digest: 3 new papers, 1 Nov 2024 to 2 Nov 2024 08:30 UTC\n"
        "\n"
        "## Efficient Inference › KV Cache\n"
        "\n"
        "- **[Caching keys – fast](http://127.0.0.1:8000/paper/2411.00002)** (2411.00002), confidence 0.55\n"
        "  > Keys are cached.\n"
        "  - closest known: \n"
        "\n"
        "## Model-Centric Methods › Model Compression › Quantization\n"
        "\n"
        "- **[Sure quantization](https://arxiv.org/abs/2411.00001)** (2411.00001), confidence 0.90\n"
        "  Ann, Bob, Cy, Di · [view in semsearch](http://127.0.0.1:8000/paper/2411.00001)\n"
        "  - closest known: \n"
        "- **[Less sure quantization](http://127.0.0.1:8000/paper/2411.00003)** (2411.00003), confidence 0.41\n"
        "  Ann, Bob, Cy, Di et al. · [view in semsearch](http://127.0.0.1:8000/paper/2411.00003)\n"
        "  > Quantizing weights.\n"
        "  - closest known: Known one; Known two\n"
    )


def test_min_confidence_keeps_papers_at_the_threshold_and_one_paper_is_singular():
    report = _hand_made_report()
    kept = render_digest(report, "markdown", min_confidence=0.55, paper_view="https://x.org/p/")
    assert kept.startswith("# semsearch digest: 2 new papers, ")
    assert "(2411.00002)" in kept and "(2411.00001)" in kept and "(2411.00003)" not in kept
    assert "[Caching keys – fast](https://x.org/p/2411.00002)" in kept  # a paper view of one's own
    one = render_digest(report, "markdown", min_confidence=0.56)
    assert one.startswith("# semsearch digest: 1 new paper, 1 Nov 2024 to ") and "(2411.00001)" in one
    assert render_digest(report, "markdown", min_confidence=0.91).startswith("# semsearch digest: 0 new papers, ")


def test_a_json_digest_holds_the_window_and_the_groups_in_order():
    text = render_digest(_hand_made_report(), "json")
    assert '"title": "Caching keys – fast"' in text  # UTF-8, not escapes: it reads as it shows
    data = json.loads(text)
    assert list(data) == ["since", "until", "window", "fetched", "groups"]
    assert data["since"] == "202411010000" and data["until"] == "202411020830" and data["fetched"] == 4
    assert data["window"] == "1 Nov 2024 to 2 Nov 2024 08:30 UTC"
    assert list(data["groups"]) == [KV, QUANT]
    assert [e["id"] for e in data["groups"][QUANT]] == ["2411.00001", "2411.00003"]
    assert data["groups"][KV] == [
        {"id": "2411.00002", "title": "Caching keys – fast", "url": None, "category": KV, "confidence": 0.55,
         "in_scope": True, "closest": [], "authors": [], "snippet": "Keys are cached.", "scope": 0.87}
    ]  # fmt: skip


def test_an_html_digest_is_one_page_grouped_like_the_markdown():
    from semsearch.errors import SemsearchError

    page = render_digest(_hand_made_report(), "html", min_confidence=0.41, paper_view="/paper/")
    head, body = page.split("<body>")
    assert head.startswith(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>semsearch digest, 1 Nov 2024 to 2 Nov 2024 08:30 UTC</title><style>body{"
    )
    assert head.endswith("}}</style></head>")  # the style sheet is CSS, whole
    assert body == (
        "\n<h1>semsearch digest: 3 new papers, 1 Nov 2024 to 2 Nov 2024 08:30 UTC</h1>"
        "\n<h2>Efficient Inference › KV Cache</h2><ul>"
        "\n<li><a href='/paper/2411.00002'>Caching keys – fast</a><p class='meta'> · 2411.00002 · confidence 0.55 · "
        "<a href='/paper/2411.00002'>view in semsearch</a></p><p>Keys are cached.</p>"
        "<small>closest known: </small></li>"
        "\n</ul>"
        "\n<h2>Model-Centric Methods › Model Compression › Quantization</h2><ul>"
        "\n<li><a href='https://arxiv.org/abs/2411.00001'>Sure quantization</a><p class='meta'>Ann, Bob, Cy, Di · "
        "2411.00001 · confidence 0.90 · <a href='/paper/2411.00001'>view in semsearch</a></p><p></p>"
        "<small>closest known: </small></li>"
        "\n<li><a href='/paper/2411.00003'>Less sure quantization</a><p class='meta'>Ann, Bob, Cy, Di et al. · "
        "2411.00003 · confidence 0.41 · <a href='/paper/2411.00003'>view in semsearch</a></p>"
        "<p>Quantizing weights.</p><small>closest known: Known one; Known two</small></li>"
        "\n</ul>"
        "\n</body></html>\n"
    )
    with pytest.raises(SemsearchError, match="unknown digest format 'pdf' \\(markdown, json or html\\)"):
        render_digest(_hand_made_report(), "pdf")


def test_times_in_a_digest_are_a_day_with_a_time_of_day_only_when_there_is_one():
    from semsearch.watch import human_time

    assert [human_time(s) for s in ("202411280000", "202411280001", "202411280100", "202401051230")] == [
        "28 Nov 2024", "28 Nov 2024 00:01 UTC", "28 Nov 2024 01:00 UTC", "5 Jan 2024 12:30 UTC",
    ]  # fmt: skip


def test_a_snippet_is_the_abstracts_opening_cut_at_a_word():
    from semsearch.watch import snippet

    assert snippet("  Short\n abstract,\tkept   whole. ") == "Short abstract, kept whole."
    assert snippet("one two three four", limit=18) == "one two three four"  # exactly the limit: whole
    assert snippet("one two three four", limit=17) == "one two three …"
    assert snippet("one two three four", limit=9) == "one two …"
    words = "x" * 298 + " y z tail"  # the default opening: 300 characters, cut at the last word inside
    assert snippet(words) == "x" * 298 + " …"


def test_intervals_allow_spaces_and_fractions_and_say_what_they_expect():
    from semsearch.errors import SemsearchError
    from semsearch.watch import parse_interval

    assert [parse_interval(t) for t in (" 2 h ", "2.5m", "1s", "2d")] == [7200, 150, 1, 172800]
    for bad in ("h", "1.h", "1 hour", "2h2"):
        with pytest.raises(SemsearchError, match=r"^cannot read the interval '.*' \(e\.g\. 30m, 24h, 1d\)$"):
            parse_interval(bad)
    for zero in ("0.0s", " 0h ", "0d"):  # it said it could not read "0s", which it reads
        with pytest.raises(SemsearchError, match=rf"^the interval '{zero.strip()}' is no time at all: give one longer"):
            parse_interval(zero)


# --- the watch schedule's status (`serve --watch-every`) ---------------------------------------------
def test_the_watch_state_is_stopped_dead_running_failing_or_ok():
    from semsearch.watch import _with_state

    cases = [
        ({"alive": False, "stopped": True, "running": True}, "stopped"),
        ({"alive": False, "last_error": "x"}, "dead"),
        ({}, "dead"),
        ({"alive": True, "running": True, "last_error": "x"}, "running"),
        ({"alive": True, "last_error": "x"}, "failing"),
        ({"alive": True, "last_error": None, "stopped": True}, "ok"),
    ]
    for status, state in cases:
        assert _with_state(status) == {**status, "state": state}


class _Turns(threading.Event):
    """A schedule's stop event that does not pause between turns, and notes each pause asked for
    with what `look()` sees then."""

    def __init__(self, look):
        super().__init__()
        self.look = look
        self.pauses: list[tuple[float, Any]] = []

    def wait(self, timeout=None) -> bool:
        self.pauses.append((timeout, self.look()))
        return self.is_set()


def test_a_watcher_counts_runs_and_failures_and_writes_its_status_for_other_processes(tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from semsearch import watch as watch_module
    from semsearch.errors import SemsearchError
    from semsearch.watch import Watcher, read_watch_status

    watcher = Watcher(3600, ["cs.LG"], index_dir=tmp_path, keep_all=True)
    watcher.stop = _Turns(watcher.status)
    before = watcher.status()
    assert before["state"] == "ok" and before["runs"] == before["failures"] == 0 and before["every"] == 3600
    assert before["pid"] == os.getpid() and before["last_run"] is None and before["last_success"] is None
    started, first_run = (datetime.fromisoformat(before[k]) for k in ("started", "next_run"))
    assert abs(datetime.now(timezone.utc) - started) < timedelta(minutes=1) and first_run - started < timedelta(
        seconds=2
    )
    assert watcher.thread.daemon and watcher.thread.name == "semsearch-watch"  # never keeps a process alive
    outcomes = [
        SemsearchError("arXiv\n  is down"),
        ValueError("x" * 301),  # one character over: cut
        KeyError(),  # no message: its kind says it
        SemsearchError("y" * 300),  # 300 characters: kept whole
        _report(*GOOD.split("-"), "Found"),
    ]
    seen = []

    def one_turn(categories, **options):
        seen.append((categories, options, watcher.status(), read_watch_status(index_dir=tmp_path)))
        outcome = outcomes[len(seen) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        watcher.stop.set()
        return outcome

    monkeypatch.setattr(watch_module, "watch", one_turn)
    with _Said() as said:
        assert watcher.start() is watcher
        watcher.thread.join(10)
    assert [s[:2] for s in seen] == [
        (["cs.LG"], {"index_dir": tmp_path, "progress": False, "stop": watcher.stop, "keep_all": True})
    ] * 5
    assert [(pause, s["state"], s["running"]) for pause, s in watcher.stop.pauses] == [(3600, "failing", False)] * 4 + [
        (3600, "ok", False)
    ]  # between turns: never running
    for _, between in watcher.stop.pauses:  # and the next turn an hour on
        assert timedelta(minutes=59) < datetime.fromisoformat(between["next_run"]) - datetime.now(timezone.utc)
    first, second, third, fourth, fifth = (s[2] for s in seen)
    assert first["state"] == "running" and first["last_run"] and first["runs"] == first["failures"] == 0
    assert second["state"] == "running" and second["last_error"] == "arXiv is down" and second["failures"] == 1
    next_run = datetime.fromisoformat(second["next_run"]) - datetime.now(timezone.utc)
    assert timedelta(minutes=59) < next_run <= timedelta(hours=1)
    assert third["last_error"] == "ValueError: " + "x" * 299 + "…" and third["failures"] == 2
    assert fourth["last_error"] == "KeyError: KeyError" and fourth["failures"] == 3
    assert fifth["last_error"] == "y" * 300 and fifth["failures"] == 4
    assert [s[3] for s in seen] == [{**s[2], "stopped": False} for s in seen]  # what other processes read
    after = watcher.status()
    assert after["state"] == "stopped" and after["runs"] == 1 and after["failures"] == 4
    assert after["last_error"] is None and after["last_success"] and after["next_run"] is None
    assert not after["running"] and not after["alive"]
    assert read_watch_status(index_dir=tmp_path) == after
    assert said == [
        f"semsearch serve: the watch failed: arXiv is down; next try at {second['next_run']}",
        f"semsearch serve: the watch failed: ValueError: {'x' * 299}…; next try at {third['next_run']}",
        f"semsearch serve: the watch failed: KeyError: KeyError; next try at {fourth['next_run']}",
        f"semsearch serve: the watch failed: {'y' * 300}; next try at {fifth['next_run']}",
        "semsearch serve: watched 1 Nov 2024 to 2 Nov 2024: 1 fetched, 1 new",  # the digest's words, not stamps
    ]


class _Said(logging.Handler):
    """The messages `semsearch.watch` logs while it is attached (the CLI stops "semsearch" propagating,
    so caplog may not hear them)."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> list[str]:
        logger = logging.getLogger("semsearch.watch")
        self.level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self.messages

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger("semsearch.watch")
        logger.removeHandler(self)
        logger.setLevel(self.level)


def test_a_watch_schedule_that_ends_on_its_own_says_why_and_is_dead(tmp_path, monkeypatch):
    import re

    from semsearch import watch as watch_module
    from semsearch.watch import Watcher

    def fatal(*args, **kwargs):
        raise SystemExit("out\nof luck")

    monkeypatch.setattr(watch_module, "watch", fatal)
    watcher = Watcher(3600, index_dir=tmp_path / "gone")  # a status that cannot be written: said once
    with _Said() as said:
        watcher.start()
        watcher.thread.join(10)
    status = watcher.status()
    assert status["state"] == "dead" and status["last_error"] == "the watch schedule ended: out of luck"
    assert status["alive"] is False and status["running"] is False and status["next_run"] is None

    silent = Watcher(3600, index_dir=tmp_path)
    silent.thread = threading.Thread(target=lambda: None)  # a schedule that ended and never said so
    silent.thread.start()
    silent.thread.join()
    assert silent.status()["alive"] is False and silent.status()["state"] == "dead"
    [unwritable] = [m for m in said if "cannot write" in m]  # written four times, said once
    assert re.fullmatch(
        r"semsearch serve: cannot write the watch status: \[Errno 2\] No such file or directory: "
        r"'.*/gone/\.watch-status\.\w+\.tmp'",
        unwritable,
    )  # the temp file it would have renamed: hidden, beside the status
    assert "semsearch serve: the watch schedule ended: out of luck" in said


def test_the_status_another_process_wrote_is_read_with_care(tmp_path, monkeypatch):
    from semsearch import watch as watch_module
    from semsearch.watch import read_watch_status

    def status_of(data) -> dict:
        (tmp_path / "watch-status.json").write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        return read_watch_status(index_dir=tmp_path)

    asked = []

    def not_ours(pid, signal):
        asked.append((pid, signal))
        raise PermissionError(1, "Operation not permitted")  # a process of another user: alive

    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(watch_module.os, "kill", not_ours)
        assert status_of({"pid": 4242, "alive": True})["state"] == "ok"
    assert asked == [(4242, 0)]  # asked whether it is there, not sent a signal

    gone = tmp_path / ("elsewhere" * 20)
    unread = read_watch_status(index_dir=gone)
    said = f"[Errno 2] No such file or directory: '{gone}/watch-status.json'"
    assert unread == {"state": "unknown", "last_error": f"cannot read the watch status: {said[:200]}"}  # cut short
    alive = {"pid": os.getpid(), "alive": True, "every": 60}
    assert status_of(alive) == {
        "every": 60.0, "pid": os.getpid(), "started": None, "alive": True, "stopped": False, "running": False,
        "runs": 0, "failures": 0, "last_run": None, "last_success": None, "last_error": None, "next_run": None,
        "state": "ok",
    }  # fmt: skip
    dead = status_of({**alive, "pid": 2**31 - 1, "stopped": True})  # no such process: killed mid-run
    assert dead["state"] == "dead" and dead["alive"] is False and dead["stopped"] is False
    assert status_of({**alive, "pid": 2**31})["last_error"] == (
        "cannot read the watch status (pid: Input should be less than 2147483648)"
    )
    assert status_of({**alive, "pid": 0})["last_error"] == (
        "cannot read the watch status (pid: Input should be greater than 0)"
    )
    assert status_of([alive])["last_error"].startswith("cannot read the watch status (top level: Input should be")
    assert status_of(b'{"pid": 1, "alive": true, "every": NaN}') == {
        "state": "unknown", "last_error": "cannot read the watch status: NaN is not a number a digest holds"
    }  # fmt: skip
    padded = json.dumps(alive).encode()
    padded += b" " * (64 * 1024 - len(padded))  # a status of 64 KiB is read; one byte more is not
    assert status_of(padded)["state"] == "ok"
    assert status_of(padded + b" ")["last_error"] == "cannot read the watch status: over 65536 bytes"


# --- digest files: read whole, named, listed newest first -------------------------------------------
def test_each_damage_to_a_digest_file_is_named_in_one_line_without_its_content(tmp_path):
    from semsearch.watch import DamagedDigest, read_digest_file

    path = tmp_path / f"{NEWER}.json"

    def damage(data: bytes) -> str:
        path.write_bytes(data)
        with pytest.raises(DamagedDigest) as caught:
            read_digest_file(path)
        return str(caught.value)

    valid = json.loads(_valid_bytes())
    said = {
        "cut short": damage(b"{"),
        "no title": damage(_valid_bytes().replace(b'"title"', b'"name"')),
        "a list": damage(b"[1]"),
        "a short time": damage(json.dumps({**valid, "until": "2024110300"}).encode()),
        "no such day": damage(json.dumps({**valid, "until": "202411310000"}).encode()),
        "fetched below 0": damage(json.dumps({**valid, "fetched": -1}).encode()),
        "NaN": damage(_valid_bytes().replace(b"0.5", b"NaN")),
        "a huge number": damage(json.dumps(valid).encode()[:-1] + b', "x": ' + b"9" * 5000 + b"}"),
        "a lone surrogate": damage(_valid_bytes().replace(b"Newer", b"\\ud800")),
        "another window": damage(_valid_bytes("202411050000-202411060000")),
    }
    digest = f"digest {NEWER}"
    assert said == {
        "cut short": f"{digest} is damaged (JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))",
        "no title": f"{digest} is not a digest (entries.0.title: Field required)",
        "a list": f"{digest} is not a digest (top level: Input should be a valid dictionary or instance of "
        "_StoredDigest)",
        "a short time": f"{digest} is not a digest (until: Value error, not a YYYYMMDDHHMM time)",
        "no such day": f"{digest} is not a digest (until: Value error, day is out of range for month)",
        "fetched below 0": f"{digest} is not a digest (fetched: Input should be greater than or equal to 0)",
        "NaN": f"{digest} is damaged (ValueError: NaN is not a number a digest holds)",
        "a huge number": f"{digest} is damaged (ValueError: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits; use sys.set_int_max_str_digits() t)",  # cut at 120 characters
        "a lone surrogate": f"{digest} is damaged (UnicodeEncodeError: 'utf-8' codec can't encode character "
        "'\\ud800' in position 108: surrogates not allowed)",
        "another window": f"{digest} holds the window 202411050000-202411060000",
    }
    path.unlink()
    assert damage(b"") == f"{digest} is damaged (JSONDecodeError: Expecting value: line 1 column 1 (char 0))"
    path.unlink()
    os.mkfifo(path)  # opened plainly, it would block for good
    with pytest.raises(DamagedDigest, match=f"^{digest} is damaged \\(ValueError: not a regular file\\)$"):
        read_digest_file(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(DamagedDigest, match=f"^cannot read digest {NEWER}: Is a directory$"):
        read_digest_file(path)
    path.rmdir()
    with pytest.raises(DamagedDigest, match=f"^cannot read digest {NEWER}: No such file or directory$"):
        read_digest_file(path)


def test_digests_are_listed_newest_first_with_their_in_scope_papers_and_the_files_skipped(tmp_path):
    from semsearch.errors import NotFound
    from semsearch.watch import digest_json, load_digest, save_digest, scan_digests

    assert scan_digests(index_dir=tmp_path) == ([], []) and digest_json(index_dir=tmp_path) is None
    save_digest(_report(*GOOD.split("-"), "Older"), index_dir=tmp_path)
    newer = _hand_made_report()
    newer.since, newer.until = NEWER.split("-")
    save_digest(newer, index_dir=tmp_path)
    folder = tmp_path / "digests"
    (folder / "202411030000-202411040000.json").write_bytes(b"{")  # the newest name, damaged
    (folder / "zzz.json").write_bytes(_valid_bytes())  # a stray file, readable
    (folder / os.fsdecode(b"\xff.json")).write_bytes(_valid_bytes())  # a name that is not UTF-8
    (folder / "notes.txt").write_text("not a digest")
    listed, skipped = scan_digests(index_dir=tmp_path)
    assert listed == [
        {"name": NEWER, "since": "202411020000", "until": "202411030000", "papers": 3},
        {"name": GOOD, "since": "202411010000", "until": "202411020000", "papers": 1},
    ]
    assert skipped == [
        {"file": "\ufffd.json", "reason": "\ufffd.json is not named like a digest (<since>-<until>.json)"},
        {"file": "zzz.json", "reason": "zzz.json is not named like a digest (<since>-<until>.json)"},
        {
            "file": "202411030000-202411040000.json",
            "reason": "digest 202411030000-202411040000 is damaged (JSONDecodeError: Expecting property name "
            "enclosed in double quotes: line 1 column 2 (char 1))",
        },
    ]
    assert scan_digests(index_dir=tmp_path) == (listed, skipped)  # the same from what it read before
    newest = digest_json(index_dir=tmp_path)  # the newest readable one, passing over the damaged one
    assert newest == json.loads(render_digest(newer, "json")) == digest_json(NEWER, index_dir=tmp_path)
    assert digest_json(GOOD, index_dir=tmp_path)["since"] == "202411010000"
    assert load_digest(GOOD, index_dir=tmp_path).entries[0].title == "Older"
    for name in ("zzz", f"{GOOD}.json", "../digests/" + GOOD, "202411040000-202411050000"):
        with pytest.raises(NotFound, match=f"^no digest {re.escape(repr(name))}$"):
            load_digest(name, index_dir=tmp_path)


def test_a_damaged_digest_is_noted_again_only_once_it_changes(tmp_path):
    from semsearch.watch import _note_skipped, digest_json, scan_digests

    folder = tmp_path / "digests"
    folder.mkdir()
    damaged, twin = folder / f"{NEWER}.json", folder / f"{GOOD}.json"
    for path in (damaged, twin):  # two files alike in size and time, told apart by name
        path.write_bytes(b"{")
        os.utime(path, ns=(10**18, 10**18))
    cut_short = "is damaged (JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2"
    with _Said() as said:
        assert digest_json(index_dir=tmp_path) is None  # the overview finds none readable, and says why
        for _ in range(2):
            scan_digests(index_dir=tmp_path)  # the listing: nothing new to say
        damaged.write_bytes(b"[")  # the same size, written later
        os.utime(damaged, ns=(10**18, 10**18 + 10**9))
        scan_digests(index_dir=tmp_path)
        damaged.write_bytes(b"[[")  # another size
        scan_digests(index_dir=tmp_path)
        for _ in range(2):  # files gone before they are noted (removed mid-listing): each said once, by name
            _note_skipped(folder / "gone-a.json", "gone")
            _note_skipped(folder / "gone-b.json", "gone")
    assert said == [
        f"semsearch: skipping {damaged}: digest {NEWER} {cut_short} (char 1))",
        f"semsearch: skipping {twin}: digest {GOOD} {cut_short} (char 1))",
        f"semsearch: skipping {damaged}: digest {NEWER} is damaged (JSONDecodeError: Expecting value: line 1 "
        "column 2 (char 1))",
        f"semsearch: skipping {damaged}: digest {NEWER} is damaged (JSONDecodeError: Expecting value: line 1 "
        "column 3 (char 2))",
        f"semsearch: skipping {folder / 'gone-a.json'}: gone",
        f"semsearch: skipping {folder / 'gone-b.json'}: gone",
    ]


def test_a_digest_is_written_through_a_hidden_temp_file_and_old_leftovers_are_swept(tmp_path, monkeypatch):
    import time

    from semsearch import watch as watch_module

    folder = tmp_path / "digests"
    folder.mkdir()
    hour_old, minutes_old = folder / f".{GOOD}.killed.tmp", folder / f".{NEWER}.writing.tmp"
    for leftover, age in ((hour_old, 3600.5), (minutes_old, 3590)):  # just over an hour; ten seconds under
        leftover.write_bytes(b"half a dig")
        os.utime(leftover, (time.time() - age, time.time() - age))
    staged = []
    real_fsync = watch_module.os.fsync

    def look_while_written(fd):
        staged.append(sorted(p.name for p in folder.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(watch_module.os, "fsync", look_while_written)
    saved = watch_module.save_digest(_report(*NEWER.split("-"), "Saved – für später"), index_dir=tmp_path)
    assert saved == folder / f"{NEWER}.json"
    [temp] = [n for n in staged[0] if n != minutes_old.name]  # the hour-old leftover is gone already
    assert temp.startswith(f".{NEWER}.") and temp.endswith(".tmp")  # hidden, and swept if left behind
    assert sorted(p.name for p in folder.iterdir()) == sorted([minutes_old.name, f"{NEWER}.json"])
    assert "Saved – für später".encode() in saved.read_bytes()  # UTF-8 text, as a reader would open it
    assert json.loads(saved.read_text()) == {
        "since": "202411020000", "until": "202411030000", "fetched": 1,
        "entries": [{"id": "2411.00001", "title": "Saved – für später", "url": None, "category": QUANT,
                     "confidence": 0.8, "in_scope": True,
                     "closest": [{"id": "2306.00978", "title": "A known paper", "categories": []}],
                     "authors": ["Grace Hopper"], "snippet": "A snippet.", "scope": None}],
    }  # fmt: skip


def test_a_label_on_a_paper_the_survey_labels_otherwise_is_kept_and_said_not_to_count(survey_index, capsys):
    from semsearch.cli import main

    code = main(["label", "2306.00978", "KV-Cache Optimization", "--index", str(survey_index)])
    err = capsys.readouterr().err
    assert code == 0 and err.startswith("warning: 2306.00978 is labelled by the survey (")
    assert "which stands: your label is kept, and counts if the survey stops labelling it" in err
    assert Index.open(survey_index).store.labels()[0]["category"].endswith("KV-Cache Optimization")
    code = main(["label", "2306.00978", "Weight-Only Quantization", "--index", str(survey_index)])
    assert code == 0 and "warning" not in capsys.readouterr().err  # the survey's own: nothing to say


@pytest.mark.slow  # a real process
def test_semsearch_watch_refuses_a_page_that_is_not_a_feed_in_a_real_process(survey_index, monkeypatch):
    from tests.arxiv_stub import ArxivStub, Step
    from tests.cli_process import run_cli

    with ArxivStub(script=[Step(page=b"<html>Sign in</html>", content_type="text/html")] * 5) as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        code, out, err = run_cli("watch", "--since", "2024-11-01", "--index", survey_index)
    assert (code, out) == (1, "") and len(stub.requests) == 5
    assert err.strip().splitlines() == [
        "error: arXiv gave no usable answer after 5 tries: its answer is not an Atom feed (text/html, 20 bytes)"
    ]


# A list of two headings, written here from facts (titles, arXiv ids).
MINE = (
    "# Mine\n\n## Caches\n\n"
    "- [Efficient Streaming Language Models with Attention Sinks](https://arxiv.org/abs/2309.17453)\n"
    "- [H2O: Heavy-Hitter Oracle for Efficient Generative Inference](https://arxiv.org/abs/2306.14048)\n\n"
    "## Drafts\n\n"
    "- [Fast Inference from Transformers via Speculative Decoding](https://arxiv.org/abs/2211.17192)\n"
    "- [Accelerating Large Language Model Decoding with Speculative Sampling](https://arxiv.org/abs/2302.01318)\n"
)


def test_a_watch_places_new_papers_in_the_taxonomy_it_is_given(survey_index, stub, cli, tmp_path):
    """`watch --taxonomy NAME` once (not only with --every) places papers under the list's headings;
    an unknown name or a digest path with no folder is refused before arXiv is asked anything."""
    readme = tmp_path / "README.md"
    readme.write_text(MINE)
    cli("taxonomy", "add", "mine", readme, "--offline", "--index", survey_index, check=True)
    for args, said in (
        (("--taxonomy", "nope"), "no taxonomy 'nope' in the index"),
        (("--output", tmp_path / "no" / "digest.md"), f"there is no directory {tmp_path / 'no'}"),
    ):
        code, _, err = cli("watch", "--since", "2024-11-01", *args, "--index", survey_index)
        assert code == 2 and said in err and len(err.splitlines()) == 1
    assert stub.requests == []
    code, out, err = cli(
        "watch", "--since", "2024-11-01", "--taxonomy", "mine", "--keep-all", "--format", "json",
        "--index", survey_index,
    )  # fmt: skip
    assert code == 0, err
    groups = json.loads(out)["groups"]
    assert groups and set(groups) <= {"Caches", "Drafts"}, groups


def test_a_digest_is_never_written_into_the_index_directory(survey_index, stub, cli, tmp_path):
    """`watch --output IDX/CURRENT` (or .lock, a generation's papers.db) overwrote the index's own
    file with the digest, exit 0, and every reader then found the index damaged. A path inside the
    index directory, however it is spelled (through a symbolic link, with ..), is refused in one
    line before arXiv is asked anything, and the index is as it was."""
    from tests.conftest import _fingerprint

    generation = next(survey_index.glob("gen-*"))
    (tmp_path / "link").symlink_to(survey_index)
    before = _fingerprint(survey_index), (survey_index / ".lock").read_bytes()
    for inside in (
        survey_index / "CURRENT",
        survey_index / ".lock",
        generation / "papers.db",
        survey_index / "digest.md",
        tmp_path / "link" / "CURRENT",
        tmp_path / "link" / ".." / survey_index.name / "CURRENT",
    ):
        code, out, err = cli("watch", "--output", inside, "--index", survey_index)
        assert (code, out) == (2, "") and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: --output {inside}: is inside the index directory ")
    assert stub.requests == [] and (_fingerprint(survey_index), (survey_index / ".lock").read_bytes()) == before
    beside = tmp_path / "digest.md"  # beside it, not in it: written
    code, _, err = cli("watch", "--since", "2024-11-01", "--output", beside, "--index", survey_index)
    assert code == 0 and beside.read_text(encoding="utf-8").startswith("#"), err


def test_a_digest_output_of_dash_is_standard_output(survey_index, stub, cli, tmp_path):
    """`--output -` wrote a file named "-" in the working directory; it means stdout, as the default."""
    here = tmp_path / "here"
    here.mkdir()
    code, out, err = cli("watch", "--since", "2024-11-01", "--output", "-", "--index", survey_index, cwd=here)
    assert code == 0 and out.startswith("# ") and "2411.00001" in out, err
    assert list(here.iterdir()) == []


def test_a_digest_is_never_written_through_a_hard_link_to_a_file_of_the_index(survey_index, stub, tmp_path):
    """A hard link elsewhere to `IDX/CURRENT` or a generation's papers.db is no path inside the
    index, so `watch --output LINK` wrote the digest through it, exit 0, and the index was damaged
    for every reader. It is refused as a path inside is (one line, exit 2, before arXiv is asked
    anything), by the file it is; a hard link to a file of no index is written, as any file."""
    from tests.cli_process import run_cli
    from tests.conftest import _fingerprint

    generation = next(survey_index.glob("gen-*"))
    links = {tmp_path / "current": survey_index / "CURRENT", tmp_path / "papers.db": generation / "papers.db"}
    for link, target in links.items():
        try:
            os.link(target, link)
        except OSError as err:  # another file system: no hard link can be made there
            pytest.skip(f"no hard link from {tmp_path} into the index: {err}")
    (tmp_path / "beside").symlink_to(tmp_path / "current")  # and through a symbolic link to the hard link
    before = _fingerprint(survey_index)
    for link in (*links, tmp_path / "beside"):
        code, out, err = run_cli("watch", "--output", link, "--index", survey_index)
        assert (code, out) == (2, "") and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: --output {link}: is a hard link to ") and "of the index directory" in err, err
    assert stub.requests == [] and _fingerprint(survey_index) == before
    mine = tmp_path / "digest.md"
    mine.write_text("old digest\n", encoding="utf-8")
    os.link(mine, tmp_path / "also-mine.md")
    code, _, err = run_cli(
        "watch", "--since", "2024-11-01", "--output", tmp_path / "also-mine.md", "--index", survey_index
    )
    assert code == 0 and mine.read_text(encoding="utf-8").startswith("#"), err


def test_a_link_into_the_index_made_while_the_watch_runs_is_refused_when_the_digest_is_written(
    survey_index, stub, cli, tmp_path
):
    """`--output PATH` was checked once, at the start: a link to IDX/CURRENT made at PATH while the
    watch ran (it takes minutes; `--every`, days) had the digest written over CURRENT, exit 0, and
    every reader then found the index damaged. It is checked again when written: one line, exit 2,
    and the index the watch published is whole."""
    from semsearch.index import Index

    output = tmp_path / "digest.md"
    answer = stub.respond

    def link_while_running(query, step):  # the link appears while arXiv is being asked
        if not output.is_symlink():
            output.symlink_to(survey_index / "CURRENT")
        return answer(query, step)

    stub.respond = link_while_running
    code, out, err = cli("watch", "--since", "2024-11-01", "--output", output, "--index", survey_index)
    assert output.is_symlink() and (code, out) == (2, "") and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: --output {output}: is inside the index directory "), err
    assert Index.open(survey_index).manifest.count == 424 + 3  # readable, with the watch's papers


def test_a_digest_output_that_is_a_directory_is_refused_before_arxiv_is_asked(survey_index, stub, cli, tmp_path):
    """`--output DIR` (or '', or '.': the working directory) was found out only when the digest was
    written, after the watch had asked arXiv and published: 'Is a directory', exit 2. A file must be
    named, in one line, before anything is fetched."""
    from tests.conftest import _fingerprint

    before = _fingerprint(survey_index)
    for output in (tmp_path, "", "."):
        code, out, err = cli("watch", "--output", output, "--index", survey_index, cwd=tmp_path)
        assert (code, out) == (2, "") and len(err.splitlines()) == 1, err
        assert err.startswith("error: cannot write ") and err.endswith(": it is a directory; name a file\n"), err
    assert stub.requests == [] and _fingerprint(survey_index) == before


@pytest.mark.parametrize("since", ["0001-01-01", "0999-12-31", "0500-06-15", "1990-12-31"])
def test_a_since_before_arxiv_began_is_refused_in_one_line_before_arxiv_is_asked(survey_index, stub, cli, since):
    """0001-01-01 and 0999-12-31 ended in a traceback; 0500-06-15 watched "15 Jun 5000" and wrote a
    digest named 50006150000-….json (strftime's %Y does not pad years before 1000)."""
    code, out, err = cli("watch", "--since", since, "--index", survey_index)
    assert (code, out, err) == (2, "", f"error: --since {since} is before arXiv began (1991)\n")
    assert stub.requests == [] and not (survey_index / "digests").exists()
    assert Index.open(survey_index).store.get_meta(PENDING + "cs.AI,cs.CL,cs.LG") is None  # no window begun


def test_a_since_from_the_day_arxiv_began_is_watched_with_a_four_digit_year(survey_index, stub):
    report = watch(["cs.CL"], "1991-01-01", index_dir=survey_index, progress=False)
    assert report.since == "199101010000" and report.fetched == 4
    assert [d["name"] for d in list_digests(index_dir=survey_index)] == [f"199101010000-{report.until}"]


def test_a_stamp_has_a_four_digit_year_whatever_the_year():
    from datetime import datetime

    from semsearch.watch import _stamp

    assert _stamp(datetime(500, 6, 15)) == "050006150000" and _stamp(datetime(1, 1, 1, 9, 5)) == "000101010905"
    assert _stamp(datetime(2026, 12, 6, 8, 38)) == "202612060838"
    for moment in (datetime(1, 1, 1), datetime(999, 12, 31, 23, 59), datetime(9999, 12, 31, 23, 59)):
        assert datetime.strptime(_stamp(moment), "%Y%m%d%H%M") == moment  # read back as written


def test_a_watch_summary_names_its_window_as_the_digest_does(survey_index, stub):
    from semsearch.watch import human_time

    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    line = report.summary()
    assert line.startswith(f"watched 1 Nov 2024 to {human_time(report.until)}: 4 fetched, 4 new, 3 in scope; ")
    assert report.since not in line and report.until not in line and "\n" not in line
    assert f"1 Nov 2024 to {human_time(report.until)}" in render_digest(report)  # the same words


def test_a_watch_counts_the_papers_it_embedded_and_shows_each_page_on_a_progress_bar(
    survey_index, stub, capsys, monkeypatch
):
    """A watch embeds each page itself: its summary said "embedded 0 in 0.0s" after hundreds, and
    `--progress` showed nothing."""
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=True)
    assert report.ingest.embedded == 4 and report.ingest.embed_seconds > 0
    assert "embedded 4 in " in report.ingest.summary()
    bar = capsys.readouterr().err
    assert "embedding: " in bar and "2/4" in bar and "4/4" in bar  # two pages of the four arXiv said it has
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=True)
    assert again.ingest.embedded == 0 and "4/4" in capsys.readouterr().err  # placed before: passed, not embedded
    assert watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False).ingest.embedded == 0
    assert capsys.readouterr().err == ""  # no bar asked for: nothing on stderr


def test_semsearch_watch_says_what_it_embedded_and_shows_a_bar_only_when_asked(survey_index, stub, cli):
    code, out, err = cli("watch", "--since", "2024-11-01", "--no-progress", "--index", survey_index)
    assert code == 0 and "Evicting tokens" in out
    [line] = err.splitlines()  # the summary alone
    assert line.startswith("watched 1 Nov 2024 to ") and "4 fetched, 4 new, 3 in scope; " in line
    assert "embedded 4 in " in line
    code, _, err = cli("watch", "--since", "2024-11-02", "--progress", "--index", survey_index)
    assert code == 0 and "embedding: " in err and "3/3" in err  # the window from 2 Nov holds three
    assert "embedded 0 in " in err.splitlines()[-1]  # each placed by the watch before


def test_a_watch_arxiv_asks_to_wait_an_hour_stops_at_once_in_one_line_and_keeps_its_window(
    survey_index, cli, monkeypatch
):
    """arXiv's Retry-After: 3600 was ignored: asked again five times in seconds, then "did not answer"."""
    from tests.test_arxiv import Answering, throttled

    with Answering(throttled((503, "3600"), feeds=ArxivStub(papers=stub_papers()))) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        code, out, err = cli("watch", "--since", "2024-11-01", "--index", survey_index)
        assert (code, out) == (1, "") and len(server.requests) == 1
        assert err == (
            "error: arXiv asked to wait 3,600 seconds before asking again (HTTP 503), longer than semsearch "
            "waits (60 s); try again later\n"
        )
        assert Index.open(survey_index).store.get_meta(LAST_WATCH) is None  # the window is asked again
        assert list_digests(index_dir=survey_index) == []
        code, _, _ = cli("watch", "--since", "2024-11-01", "--no-progress", "--index", survey_index)  # arXiv is back
    assert code == 0 and [d["papers"] for d in list_digests(index_dir=survey_index)] == [3]


def test_a_watch_answered_the_same_page_whatever_it_asks_fails_after_the_repeat_and_keeps_its_window(
    survey_index, monkeypatch
):
    """A server that ignored `start`, with a huge totalResults, was asked up to MAX_RESULTS / 100
    times in one watch (four hours at arXiv's pace). The watch stops at the repeat, as a failure:
    what it embedded is kept, and the window stays open for the next watch, which would have
    been closed on the papers not yet sent had the repeat been taken for the end."""
    from semsearch.sources.arxiv import ArxivUnavailable
    from tests.test_arxiv import Answering

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    papers = stub_papers(["2411.00001", "2411.00002"])
    page = ArxivStub(papers=papers).feed(sorted(papers), 0, 2, 1_000_000)
    with Answering(lambda query, n: (200, {}, page)) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        with pytest.raises(ArxivUnavailable, match="arXiv sent the papers of results 2 to 3 before"):
            watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False, max_results=200)
    assert len(server.requests) == 2  # the page, then its repeat
    store = Index.open(survey_index).store
    assert store.get_meta(LAST_WATCH) is None and store.get_meta(PENDING + "cs.CL") is not None
    assert list_digests(index_dir=survey_index) == []


def test_an_error_reported_by_a_watch_is_one_line_of_printable_text():
    from semsearch.watch import _one_line

    assert _one_line(ValueError("arXiv\u200bsaid\x1b[31m no\n more")) == "arXiv said [31m no more"
    assert _one_line(ValueError("")) == "ValueError" and len(_one_line(ValueError("x" * 999))) == 300


def arxiv_that_waits(request: int, seconds: float):
    """An answer for `tests.test_arxiv.Answering`: the stub papers as arXiv pages them, request number
    `request` (from 0) answered `seconds` late, and an event set when that request comes."""
    feeds = ArxivStub(papers=stub_papers())
    asked = threading.Event()

    def answer(query: dict, n: int):
        if n == request:
            asked.set()
            time.sleep(seconds)
        status, body = feeds.respond(query, Step())
        return status, {}, body

    return answer, asked


def test_a_label_posted_while_a_watch_waits_on_arxiv_is_written_at_once(survey_index, monkeypatch):
    """A watch held the index's writer lock while it asked arXiv (pages, retries, a Retry-After of up
    to a minute): a label posted from the page waited 10 s and got a 503. arXiv is now asked with
    the lock let go; the label is written at once, with what the watch had staged, and the watch
    goes on to the end of its window."""
    from tests.test_arxiv import Answering

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    answer, second_page_asked = arxiv_that_waits(1, 2.0)  # the second page keeps the watch waiting
    outcome = {}
    with Answering(answer) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        watching = threading.Thread(
            target=lambda: outcome.update(report=watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False))
        )
        watching.start()
        assert second_page_asked.wait(30)
        node = label_paper("2505.07004", "Weight-Only Quantization", index_dir=survey_index, lock_timeout=1.0)
        watching.join(60)
    assert not watching.is_alive() and sorted(e.id for e in outcome["report"].entries) == sorted(stub_papers())
    store = Index.open(survey_index).store
    assert [(label["id"], label["category"]) for label in store.labels()] == [("2505.07004", node)]
    assert store.get_meta(LAST_WATCH) and store.get_meta(PENDING + "cs.CL") is None
    assert all(store.find(paper_id) is not None for paper_id in IN_SCOPE)


def test_two_watches_of_one_index_take_turns(survey_index, stub, monkeypatch):
    """With the writer's lock let go between pages, a second watch must not interleave its pages and
    its place in the window with the first's: it waits for the watch lock, then finds nothing new."""
    from semsearch.index import take_lock
    from semsearch.watch import WATCH_LOCK

    held = take_lock(survey_index / WATCH_LOCK, 1.0, "watching arXiv for", who="watch")
    monkeypatch.setenv("SEMSEARCH_LOCK_TIMEOUT", "0.2")
    try:
        with pytest.raises(IndexBusy, match="is watching arXiv for"):
            watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    finally:
        drop_lock(held)
    assert watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False).fetched == 4


def test_a_watch_that_fails_before_any_page_publishes_nothing(survey_index, monkeypatch):
    """With staging let go and taken back around each fetch, a failing watch found its own unchanged
    staging, took it for an interrupted run's work and published it: `serve --watch-every` against
    an arXiv that did not answer made a new generation every turn."""
    from semsearch.index import current_generation
    from semsearch.sources.arxiv import ArxivUnavailable

    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", "http://127.0.0.1:9/api/query")  # refused
    before = current_generation(survey_index)
    for _ in range(2):
        with pytest.raises(ArxivUnavailable):
            watch(["cs.CL"], index_dir=survey_index, progress=False)
    assert current_generation(survey_index) == before
    # A window asked for with --since is kept from the start (published once, with the failure),
    # so that the next watch goes on with it; failing again publishes nothing more.
    with pytest.raises(ArxivUnavailable):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    kept = current_generation(survey_index)
    with pytest.raises(ArxivUnavailable):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert current_generation(survey_index) == kept


def test_ctrl_c_while_the_writer_lock_is_let_go_leaves_at_once(survey_index):
    """It waited for another writer to finish (up to the lock timeout) before saying "interrupted"."""
    from semsearch.index import IndexWriter, take_lock

    with IndexWriter(survey_index, None, lock_timeout=5) as writer:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt), writer.released():
            other = take_lock(survey_index / ".lock", 1, "writing to")  # another writer comes in
            raise KeyboardInterrupt
    drop_lock(other)
    assert time.monotonic() - started < 2 and writer.store is None


def test_a_watch_lock_that_cannot_be_made_is_an_unwritable_index(tmp_path):
    from pathlib import Path

    from semsearch.errors import IndexUnwritable
    from semsearch.index import take_lock

    with pytest.raises(IndexUnwritable, match="cannot write to the index at /proc/.*; it can still be searched"):
        take_lock(Path("/proc/semsearch-test/.watch.lock"), 1, "watching arXiv for", who="watch")


def test_a_watch_that_waited_for_another_reads_the_index_that_one_left(survey_index, monkeypatch):
    """It opened the index before it waited, so every paper the first watch stored was new to it
    again, and a second digest listed them all."""
    from tests.test_arxiv import Answering

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    answer, first_asked = arxiv_that_waits(0, 1.0)
    reports = {}
    with Answering(answer) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)

        def run(name: str) -> None:
            reports[name] = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)

        first = threading.Thread(target=run, args=("first",))
        first.start()
        assert first_asked.wait(30)
        second = threading.Thread(target=run, args=("second",))
        second.start()
        first.join(60)
        second.join(60)
    in_scope = {name: [e.id for e in report.entries if e.in_scope] for name, report in reports.items()}
    assert len(in_scope["first"]) == 3 and in_scope["second"] == []  # (out of scope is never stored: new again)


def test_a_writer_that_lets_its_lock_go_and_takes_it_back_counts_its_changes_afresh(survey_index):
    """Bookkeeping (how far a source was read) is no change; counted on the connection just closed,
    it made the writer's own later changes look like none."""
    from semsearch.index import IndexWriter

    with IndexWriter(survey_index, None) as writer:
        writer.note_progress("resume:test", "1")
        with writer.released():
            pass
        assert not writer.has_changes()
        writer.store.set_meta("a change", "1")
        assert writer.has_changes()


def test_watches_let_go_of_the_generation_they_read_so_old_ones_are_retired(survey_index, stub):
    """A watch never closed the index it read: its lease kept that generation, and under
    `serve --watch-every` every generation since, on disk."""
    for day in ("2024-11-01", "2024-11-02", "2024-11-03"):
        stub.papers[f"2411.9{day[-1]}001"] = {
            "title": f"Evicting cache tokens {day}",
            "abstract": "We evict tokens from the key-value cache.",
            "published": f"{day}T09:00:00Z",
        }
        watch(["cs.CL"], day, index_dir=survey_index, progress=False)
    assert len(list(survey_index.glob("gen-*"))) <= 2  # the one served and the one before


@pytest.mark.parametrize(
    ("site", "view"),
    [
        (None, "http://127.0.0.1:8000/paper/2411.00001"),  # where `semsearch serve` listens by default
        ("https://papers.example.org/semsearch/", "https://papers.example.org/semsearch/paper/2411.00001"),
        ("", None),  # no server: no link that leads nowhere
    ],
)
def test_a_digest_links_to_the_paper_view_of_the_site_given_or_to_none(survey_index, stub, cli, site, view):
    """The digest's "view in semsearch" link went to 127.0.0.1:8000 whether a server ran or not."""
    args = ["watch", "--categories", "cs.CL", "--since", "2024-11-01", "--index", survey_index]
    done = cli(*args, *(["--site", site] if site is not None else []), check=True)
    views = re.findall(r"\[view in semsearch\]\(([^)]*)\)", done.stdout)
    assert len(re.findall(r"^- \*\*", done.stdout, re.MULTILINE)) == 3
    if view is not None:
        assert len(views) == 3 and view in views
    else:
        assert views == [] and "view in semsearch" not in done.stdout and "/paper/" not in done.stdout
        assert "(https://arxiv.org/abs/2411.00001)" in done.stdout  # titles still link to arXiv


@pytest.mark.parametrize(
    "site", ["javascript:alert(1)", "ftp://example.org", "example.org", "http://x.org/?q=1", "http://a b", "http://:80"]
)
def test_a_site_that_is_no_http_address_is_refused_before_arxiv_is_asked(survey_index, stub, cli, site):
    done = cli("watch", "--categories", "cs.CL", "--since", "2024-11-01", "--site", site, "--index", survey_index)
    assert (done.returncode, done.stdout) == (2, "") and done.stderr.count("\n") == 1
    assert "(--site or $SEMSEARCH_SITE): expected an http(s) address" in done.stderr and stub.requests == []


def test_the_site_comes_from_the_environment_too(survey_index, stub, cli, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_SITE", "https://lab.example.org")
    done = cli("watch", "--categories", "cs.CL", "--since", "2024-11-01", "--index", survey_index, check=True)
    assert "(https://lab.example.org/paper/2411.00001)" in done.stdout


def test_an_ingest_that_publishes_a_running_watchs_pages_says_whose_they_are(survey_index, monkeypatch):
    """An ingest while a watch waited on arXiv published the watch's staged papers with its own and
    said they were "from an earlier run that stopped before publishing": the watch was running."""
    from semsearch.ingest import Ingest
    from semsearch.paper import Paper
    from tests.test_arxiv import Answering

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    answer, second_page_asked = arxiv_that_waits(1, 2.0)
    with Answering(answer) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        watching = threading.Thread(
            target=lambda: watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
        )
        watching.start()
        assert second_page_asked.wait(30)
        with Ingest(index_dir=survey_index, progress=False, lock_timeout=1.0) as job:
            job.add([Paper(id="2501.00001", title="A paper added by hand", abstract="Pruning heads.")])
        watching.join(60)
    summary = job.report.summary()
    assert job.report.carried_over > 0 and "more new from the watch running now;" in summary, summary
    assert "earlier run" not in summary


def test_without_a_site_a_title_without_its_own_address_links_to_its_arxiv_page():
    for fmt in ("markdown", "html"):
        digest = render_digest(_hand_made_report(), fmt, paper_view=None)
        assert "view in semsearch" not in digest and "/paper/" not in digest
        assert "https://arxiv.org/abs/2411.00003" in digest and "https://arxiv.org/abs/2411.00002" in digest


def test_the_commands_defaults_are_the_librarys():
    """A watch from the CLI and from Python reads as much and watches the same categories."""
    import inspect

    from semsearch import cli
    from semsearch import watch as watching

    given = inspect.signature(cli.watch).parameters
    assert given["max_results"].default == watching.MAX_RESULTS
    assert given["categories"].default.split(",") == list(watching.DEFAULT_CATEGORIES)


def test_a_window_arxiv_stops_sending_early_is_kept_and_read_on(survey_index, stub, monkeypatch):
    """arXiv answering empty pages part-way (it holds 4, sent 2) ended the paging as if the window
    were done: the rest was never read, exit 0, nothing said (a third attacker's pass)."""
    from semsearch.sources.arxiv import ArxivUnavailable

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    stub.script = [Step(200)] + [Step(empty=True)] * 5
    with pytest.raises(ArxivUnavailable, match="stopped sending papers at result 2 of the 4 it holds"):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert Index.open(survey_index).store.get_meta(LAST_WATCH) is None  # the window is not done
    later = watch(["cs.CL"], index_dir=survey_index, progress=False)
    assert later.since == "202411010000" and {e.id for e in later.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)


def test_each_kind_of_watch_follows_its_own_windows(survey_index, stub):
    """One time where every next window began: a weekly cs.LG watch after a daily cs.CL one began
    where cs.CL had ended, and a survey watch finished (and claimed) a list's window. A kind's first
    window still reaches back from the last watch of any kind, as every window did before."""
    from datetime import datetime

    from semsearch.watch import ANNOUNCEMENT_LAG

    first = watch(["cs.CL", "cs.LG"], "2024-11-01", index_dir=survey_index, progress=False)
    with Ingest(index_dir=survey_index) as ingest:  # another kind watched last, long ago
        ingest.store.set_meta(LAST_WATCH, "2024-01-01T00:00:00+00:00")
    same = watch(["cs.LG", "cs.CL"], index_dir=survey_index, progress=False)  # the same set in another order
    ended = datetime.strptime(first.until, "%Y%m%d%H%M")
    assert same.since == f"{ended - ANNOUNCEMENT_LAG:%Y%m%d%H%M}"  # from its own last window
    with Ingest(index_dir=survey_index) as ingest:
        ingest.store.set_meta(LAST_WATCH, "2024-01-01T00:00:00+00:00")
    assert watch(["cs.AI"], index_dir=survey_index, progress=False).since == "202312280000"  # a first of its kind


def test_a_window_left_open_before_kinds_were_told_apart_is_gone_on_with(survey_index, stub):
    """Left under the categories as given ("cs.CL,cs.LG"), it was abandoned by the first watch after
    the upgrade, which looks under the sorted set."""
    watch(["cs.LG", "cs.CL"], "2024-11-01", index_dir=survey_index, progress=False, max_results=3)
    with Ingest(index_dir=survey_index) as ingest:  # as the version before kept it
        left = ingest.store.get_meta(PENDING + "cs.CL,cs.LG")
        ingest.store.set_meta(PENDING + "cs.LG,cs.CL", left)
        ingest.store.db.execute("DELETE FROM meta WHERE key = ?", (PENDING + "cs.CL,cs.LG",))
    later = watch(["cs.LG", "cs.CL"], index_dir=survey_index, progress=False)
    assert later.since == "202411010000" and later.fetched == 4 and [e.id for e in later.entries] == ["2411.00009"]
    store = Index.open(survey_index).store
    assert store.get_meta(PENDING + "cs.LG,cs.CL") is None and store.get_meta(PENDING + "cs.CL,cs.LG") is None


def test_a_since_that_leaves_an_unfinished_window_says_so(survey_index, stub):
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False, max_results=3)
    other = watch(["cs.CL"], "2024-11-02", index_dir=survey_index, progress=False)
    assert other.summary().count("the unfinished window 1 Nov 2024 to ") == 1
    assert " was left after paper 3 for the one asked for; " in other.summary()


def test_a_paper_turned_away_whose_text_changed_is_placed_again(survey_index, stub):
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    stub.papers["2411.00009"] = {**stub.papers["2411.00009"], **stub_papers()["2411.00002"]} | {
        "published": stub.papers["2411.00009"]["published"]
    }  # a new version, on speculative decoding
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert again.ingest.embedded == 1 and Index.open(survey_index).store.get("2411.00009") is not None


def test_the_newest_digest_is_the_window_that_ended_last(tmp_path):
    """Sorted by their start, a backfill (`--since` a month back) sorted below every daily digest,
    and the overview showed an older one as the newest."""
    from semsearch.watch import digest_json, save_digest

    save_digest(_report("202411090000", "202411100000", "Daily"), index_dir=tmp_path)
    save_digest(_report("202410010000", "202411110000", "Backfill"), index_dir=tmp_path)
    assert [d["name"] for d in list_digests(index_dir=tmp_path)][0] == "202410010000-202411110000"
    assert digest_json(index_dir=tmp_path)["since"] == "202410010000"


def test_a_since_after_today_in_utc_is_refused_saying_days_are_utc_days(survey_index, stub):
    """In UTC+14, `--since $(date +%F)` is tomorrow in UTC: refused, and the refusal says why (a
    first fix took it, and watched an inverted window, "4 Dec to 3 Dec 13:39")."""
    from datetime import datetime, timedelta, timezone

    # Tomorrow as of a minute from now: read just before midnight, plain tomorrow would be today by
    # the time the watch reads the clock, and no longer in the future.
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1, minutes=1)).date().isoformat()
    with pytest.raises(
        SemsearchError, match=r"in the future: .* \(days are UTC days; it is \d{4}-\d\d-\d\d \d\d:\d\d UTC\)"
    ):
        watch(["cs.CL"], tomorrow, index_dir=survey_index)
    today = datetime.now(timezone.utc).date().isoformat()
    assert watch(["cs.CL"], today, index_dir=survey_index, progress=False).fetched == 0


def test_papers_turned_away_in_a_window_that_ended_days_ago_are_not_placed_again(survey_index, stub):
    """Pruned by today's date, the record forgot a window that ended before the last four days: a
    watch after six days without one placed and listed its papers again."""
    from datetime import datetime, timedelta, timezone

    from semsearch.watch import SEEN_OUTSIDE, watch_key

    key = SEEN_OUTSIDE + watch_key(["cs.CL"], None, False)
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    week_ago = f"{datetime.now(timezone.utc) - timedelta(days=7):%Y%m%d%H%M}"
    with Ingest(index_dir=survey_index) as ingest:
        record = json.loads(ingest.store.get_meta(key))
        record["papers"] = {i: week_ago + v[12:] for i, v in record["papers"].items()}
        ingest.store.set_meta(key, json.dumps(record))
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)  # a window older than that
    assert again.entries == [] and again.ingest.embedded == 0


def test_a_window_whose_empty_answers_say_it_holds_nothing_is_kept_and_read_on(survey_index, stub, monkeypatch):
    """arXiv's empty answers part-way may say the window holds 0 papers (or nothing, read the same):
    checked against the last answer only, the window closed at 2 of 4, exit 0 (a fourth pass)."""
    from semsearch.sources.arxiv import ArxivUnavailable

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    stub.script = [Step(200)] + [Step(empty=True, total=0)] * 5
    with pytest.raises(ArxivUnavailable, match="stopped sending papers at result 2 of the 4 it holds"):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    stub.script = [Step(empty=True, total=0)] * 5  # a resumed watch told nothing: the first attempt's count holds
    with pytest.raises(ArxivUnavailable, match="at result 2 of the 4"):
        watch(["cs.CL"], index_dir=survey_index, progress=False)
    stub.script = []
    later = watch(["cs.CL"], index_dir=survey_index, progress=False)
    assert later.since == "202411010000" and {e.id for e in later.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)


def test_kinds_of_watch_are_told_apart_by_categories_in_any_order_taxonomy_and_keep_all():
    from semsearch.watch import watch_key

    plain = watch_key(["cs.CL", "cs.LG"], None, False)
    assert watch_key(["cs.LG", "cs.CL"], None, False) == plain
    others = [
        watch_key(["cs.CL", "cs.LG"], "kv", False),
        watch_key(["cs.CL", "cs.LG"], None, True),
        watch_key(["cs.CL"], None, False),
    ]
    assert len({plain, *others}) == 4


def test_a_paper_turned_away_at_the_minute_a_window_starts_is_remembered_by_it():
    """arXiv's date range holds both its ends: a window starting at the minute another ended sees its
    papers again."""
    from semsearch.watch import _seen_outside

    class Store:
        def get_meta(self, key):
            return json.dumps(
                {"judge": "j", "papers": {"a": "202411010000|0123456789abcdef", "b": "202410312359|0123456789abcdef"}}
            )

    assert _seen_outside(Store(), "k", "j", "202411010000") == {"a": "202411010000|0123456789abcdef"}


def test_each_kind_of_watch_keeps_its_own_record_of_papers_turned_away(survey_index, stub):
    """One record for every kind: alternating kinds wiped each other's (each then placed and listed
    the other's papers again every day), and a --keep-all watch wrote it empty."""
    from semsearch.watch import SEEN_OUTSIDE, watch_key

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    record = Index.open(survey_index).store.get_meta(SEEN_OUTSIDE + watch_key(["cs.CL"], None, False))
    other = watch(["cs.LG"], "2024-11-01", index_dir=survey_index, progress=False)
    assert "2411.00009" in [e.id for e in other.entries]  # its own digest lists it
    watch(["cs.AI"], "2024-11-01", index_dir=survey_index, keep_all=True, progress=False)
    assert Index.open(survey_index).store.get_meta(SEEN_OUTSIDE + watch_key(["cs.CL"], None, False)) == record
    assert Index.open(survey_index).store.get_meta(SEEN_OUTSIDE + watch_key(["cs.AI"], None, True)) is None


def test_a_paper_another_kind_of_watch_stored_is_new_to_this_kind_listed_once_and_not_stored_again(survey_index, stub):
    """A list's maintainer watching with `--taxonomy kv` beside a survey watch got an empty digest:
    a digest listed what was new to the index, whichever kind stored it."""
    from semsearch.watch import PLACED, watch_key

    first = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    count = Index.open(survey_index).manifest.count
    other = watch(["cs.LG"], "2024-11-01", index_dir=survey_index, progress=False)
    by_id = {e.id: e for e in other.entries}
    assert set(by_id) == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert all(by_id[i].in_scope and i not in [c["id"] for c in by_id[i].closest] for i in IN_SCOPE)
    assert [e.category for e in first.entries] == [by_id[e.id].category for e in first.entries]  # placed alike
    assert other.ingest.embedded == 1  # the one turned away, by its own record; the rest by stored vectors
    assert Index.open(survey_index).manifest.count == count  # none stored twice
    again = {"index_dir": survey_index, "progress": False}
    assert watch(["cs.LG"], "2024-11-01", **again).entries == []  # a window over them again: listed once
    assert watch(["cs.CL"], "2024-11-01", **again).entries == []

    # A kind that watched before its record was kept lists what it stores only, this once; then
    # its record has begun.
    placed = PLACED + watch_key(["cs.AI"], None, False)
    with Ingest(index_dir=survey_index) as ingest:
        ingest.store.set_meta("watch_last:" + watch_key(["cs.AI"], None, False), "2024-11-05T00:00:00+00:00")
    assert [e.id for e in watch(["cs.AI"], index_dir=survey_index, progress=False).entries] == ["2411.00009"]
    assert set(json.loads(Index.open(survey_index).store.get_meta(placed))) == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert watch(["cs.AI"], "2024-11-01", **again).entries == []


def test_a_paper_held_by_its_title_alone_is_new_to_a_watch_that_gets_its_abstract(survey_index, stub):
    """A paper the index held with other text (a list's title alone) was stored with the abstract
    arXiv sent, and placed, but never listed in the digest: one held with the same text was."""
    held = Index.open(survey_index).store.get("2306.00978")  # AWQ, from the survey's list, offline: its title
    assert held is not None and not held.abstract
    title, abstract = held.title, "We quantize the weights of large language models to four bits, activation-aware."
    stub.papers["2306.00978"] = {"title": title, "abstract": abstract, "published": "2024-11-02T10:00:00Z"}
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert "2306.00978" in [e.id for e in report.entries]
    assert Index.open(survey_index).store.get("2306.00978").abstract == abstract
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert "2306.00978" not in [e.id for e in again.entries]  # placed by this kind: listed once


def test_a_lists_watch_beside_the_surveys_lists_what_the_surveys_stored_first(survey_index, stub, cli, tmp_path):
    """The case as a maintainer meets it, in a process of its own: `watch --taxonomy mine` after
    the survey's watch of the same days."""
    readme = tmp_path / "README.md"
    readme.write_text(MINE)
    cli("taxonomy", "add", "mine", readme, "--offline", "--index", survey_index, check=True)
    cli("watch", "--since", "2024-11-01", "--index", survey_index, check=True)
    stored = {i for i in IN_SCOPE if Index.open(survey_index).store.get(i) is not None}
    code, out, err = cli(
        "watch", "--since", "2024-11-01", "--taxonomy", "mine", "--format", "json", "--index", survey_index
    )
    assert code == 0, err
    listed = {paper["id"] for papers in json.loads(out)["groups"].values() for paper in papers}
    assert stored and listed == stored, err


def wait_for_a_minute_with_room(seconds: float) -> None:
    """Sleep into the next minute when fewer than `seconds` are left of this one (UTC)."""
    into_minute = time.time() % 60
    if into_minute > 60 - seconds:
        time.sleep(60.5 - into_minute)


def test_a_lists_watch_keeps_its_digests_apart_and_serves_them_by_its_name(survey_index, stub, cli, tmp_path):
    """Both kinds of watch wrote digests/<window>.json: in the same minute the list's placements
    went into the survey's digest (its papers under the list's headings, shown as the survey's on
    the page and in the feed), and at other times the page's latest digest could be the list's."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from semsearch.taxonomy import load_taxonomy

    readme = tmp_path / "README.md"
    readme.write_text(MINE)
    cli("taxonomy", "add", "mine", readme, "--offline", "--index", survey_index, check=True)
    wait_for_a_minute_with_room(seconds=15)  # a window ends at the minute: both watches in one minute
    cli("watch", "--since", "2024-11-01", "--index", survey_index, check=True)
    cli("watch", "--since", "2024-11-01", "--taxonomy", "mine", "--index", survey_index, check=True)
    [survey_file] = (survey_index / "digests").glob("*.json")
    [mine_file] = (survey_index / "digests" / "mine").glob("*.json")
    assert survey_file.name == mine_file.name  # the same window, two files

    with TestClient(create_app(index_dir=survey_index, reload_seconds=None)) as client:

        def nodes(query: str = "") -> set[str]:
            [listed] = client.get(f"/api/digests{query}").json()["digests"]
            digest = client.get(f"/api/digests/{listed['name']}{query}").json()
            return {node.split("/")[0] for node in digest["groups"]}

        assert nodes() and nodes() <= set(load_taxonomy().nodes)  # the survey's digest: its own nodes only
        assert nodes("?taxonomy=mine") and nodes("?taxonomy=mine") <= {"Caches", "Drafts"}
        assert nodes("?taxonomy=survey") == nodes()
        feed = client.get("/feeds/digests.atom?taxonomy=mine").text
        assert "?view=digest&amp;name=" in feed and "&amp;taxonomy=mine" in feed
        assert client.get("/api/digests?taxonomy=nope").status_code == 404
        assert client.get("/api/digests?taxonomy=..%2Fx").status_code == 404  # no folder looked at: not a list
        assert client.get("/api/digests?kind=mine").status_code in (400, 422)  # a parameter it does not name


def test_a_paper_the_first_attempt_listed_is_not_placed_again_when_arxiv_sends_it_again(
    survey_index, stub, fake_model, monkeypatch
):
    """A paper announced late shifts a window's results by one: the resumed attempt's first page
    brings again the last paper the first attempt listed (staged, not yet published)."""
    interrupted_after_the_first_page(survey_index, fake_model, monkeypatch)
    stub.papers["2411.00000"] = {**stub_papers()["2411.00003"], "published": "2024-11-01T08:00:00Z"}
    resumed = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    ids = [e.id for e in resumed.entries]
    assert len(ids) == len(set(ids)) and resumed.ingest.embedded == 2  # 2411.00003 and 2411.00009 only


def test_a_short_page_and_then_an_empty_one_keep_what_arrived_and_the_window(survey_index, stub, monkeypatch):
    """The `arxiv` package asks for the next page itself when one comes short of the total, and an
    empty one then raised: the page that had arrived was thrown away, asked for again on every
    attempt and every watch, and the error said arXiv "did not answer" (a newcomer's pass)."""
    from semsearch.sources.arxiv import ArxivUnavailable

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    stub.script = [Step(drop=1), Step(empty=True, total=0)]  # one of two, then nothing (saying 0)
    with pytest.raises(ArxivUnavailable, match="stopped sending papers at result 1 of the 4 it holds"):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert Index.open(survey_index).store.get("2411.00001") is not None  # what arrived is kept
    later = watch(["cs.CL"], index_dir=survey_index, progress=False)
    assert stub.requests[2]["start"] == ["1"] and later.fetched == 4


@pytest.mark.parametrize("damaged", ["not json", "[1, 2]"])
def test_an_unreadable_record_of_what_a_kind_placed_still_lists_what_the_index_held(survey_index, stub, damaged):
    """An unreadable record is an empty one ("it only spares listing a paper again"): a kind that
    watched before still lists the papers another kind stored, not only what it stores itself."""
    from semsearch.watch import PLACED, WINDOW_END, watch_key

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    key = watch_key(["cs.LG"], None, False)
    with Ingest(index_dir=survey_index) as ingest:
        ingest.store.set_meta(WINDOW_END + key, "2024-11-05T00:00:00+00:00")
        ingest.store.set_meta(PLACED + key, damaged)
    listed = {e.id for e in watch(["cs.LG"], "2024-11-01", index_dir=survey_index, progress=False).entries}
    assert set(IN_SCOPE) <= listed


def test_a_kinds_record_of_what_it_placed_keeps_windows_ending_from_the_minute_it_asks_after():
    """A window starting at the minute another ended sees its papers again (arXiv's range holds
    both ends); a value that is no window's end is dropped; no record is "never kept", an
    unreadable one is an empty record kept."""
    from semsearch.watch import _placed_by_kind

    class Store:
        def __init__(self, raw):
            self.raw = raw

        def get_meta(self, key):
            return self.raw

    record = {"a": "202411010000", "b": "202410312359", "c": "x", "d": 202411020000, "e": "2024110200001"}
    assert _placed_by_kind(Store(json.dumps(record)), "k", "202411010000") == ({"a": "202411010000"}, True)
    assert _placed_by_kind(Store(None), "k", "202411010000") == ({}, False)
    assert _placed_by_kind(Store("{"), "k", "202411010000") == ({}, True)
    assert _placed_by_kind(Store("[]"), "k", "202411010000") == ({}, True)


def test_a_window_an_earlier_version_left_open_lists_only_what_it_stores_when_resumed(survey_index, stub):
    """A kind that watched before its record of placed papers was kept lists only what it stores,
    this once, also when it resumes a first window the earlier version left part-way (offset > 0)."""
    from datetime import datetime, timezone

    from semsearch.watch import watch_key

    watch(["cs.LG"], "2024-11-01", index_dir=survey_index, progress=False)  # another kind stores the in-scope ones
    state = {"since": "202411010000", "until": f"{datetime.now(timezone.utc):%Y%m%d%H%M}", "offset": 1,
             "entries": [], "fetched": 1, "total": 4}  # fmt: skip
    with Ingest(index_dir=survey_index) as ingest:
        ingest.store.set_meta(PENDING + watch_key(["cs.CL"], None, False), json.dumps(state))
    resumed = watch(["cs.CL"], index_dir=survey_index, progress=False)
    # read on to the end; listed only what it embedded itself
    assert resumed.fetched == 4 and [e.id for e in resumed.entries] == ["2411.00009"]


def test_a_digest_line_carries_the_opening_of_a_long_abstract_not_all_of_it():
    """A paper's line in the digest (`_entry`, new or new to this kind) shows a snippet."""
    from types import SimpleNamespace

    from semsearch.paper import Paper
    from semsearch.watch import SNIPPET_CHARS, _entry

    paper = Paper(id="2411.00001", title="T", abstract="cache " * 400)
    result = SimpleNamespace(category="A", confidence=0.5, in_scope=True, scope=0.8, neighbours=[])
    shown = _entry(paper, result).snippet
    assert len(shown) <= SNIPPET_CHARS + 2 and shown.endswith(" …") and paper.abstract.startswith(shown[:-2])


def test_a_digest_entry_carries_its_scope_as_classify_gives_it_at_every_door(survey_index, stub, cli):
    """Issue 23's `scope` (the calibrated chance of belonging to the taxonomy, `in_scope` its
    threshold) was in every classify answer but not in a watch's digest, which places new papers the
    same way: nobody could rank a day's papers by it."""
    from fastapi.testclient import TestClient

    from semsearch.classify import SCOPE_THRESHOLD
    from semsearch.server import create_app

    done = cli("watch", "--since", "2024-11-01", "--index", survey_index, "--format", "json", check=True)
    entries = [entry for group in json.loads(done.stdout)["groups"].values() for entry in group]
    assert entries and all(0 <= e["scope"] <= 1 and e["in_scope"] == (e["scope"] >= SCOPE_THRESHOLD) for e in entries)
    client = TestClient(create_app(index_dir=survey_index, reload_seconds=None))
    [listed] = client.get("/api/digests").json()["digests"]
    served = client.get(f"/api/digests/{listed['name']}").json()
    assert sorted((e["id"], e["scope"]) for group in served["groups"].values() for e in group) == sorted(
        (e["id"], e["scope"]) for e in entries
    )


# --- options as a user runs them (conftest's `cli`: a process of its own in the full suite) ------------
def test_watch_min_confidence_leaves_less_certain_papers_out_of_the_digest(cli, survey_index, stub, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
    given = ("watch", "--since", "2024-11-01", "--min-confidence", "0.999999", "--format", "json", "--no-progress")
    digest = json.loads(cli(*given, "--index", survey_index, check=True).stdout)
    shown = [entry for group in digest["groups"].values() for entry in group]
    assert all(entry["confidence"] >= 0.999999 for entry in shown) and len(shown) < len(IN_SCOPE)
    refused = cli("watch", "--min-confidence", "1.5", "--index", survey_index)
    assert (refused.returncode, refused.stdout, refused.stderr.count("\n")) == (2, "", 1)
    assert "--min-confidence" in refused.stderr


def test_watch_json_is_short_for_format_json_as_on_search(survey_index, stub, cli):
    """`--json` on every command that prints results: `semsearch watch --json` stopped at "No such
    option: --json" (exit 2), though search, related and recommend take it as short for
    `--format json`. Now watch does the same, and refuses --json with another --format."""
    watched = cli("watch", "--since", "2024-11-01", "--json", "--index", survey_index, check=True)
    digest = json.loads(watched.stdout)
    assert digest["fetched"] == 4 and {e["id"] for group in digest["groups"].values() for e in group} == set(IN_SCOPE)
    both = cli("watch", "--json", "--format", "html", "--index", survey_index)
    assert both.returncode == 2 and both.stderr == "error: --json asks for JSON and --format for html: give one\n"
    assert cli("watch", "--json", "--format", "json", "--index", survey_index, check=True).stdout.startswith("{")
