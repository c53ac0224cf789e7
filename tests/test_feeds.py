"""Atom feeds of a node's newest papers and of the digests, read by a real feed parser (feedparser);
and the routes that give back to a list (/api/propose, its patch, /api/gaps), over HTTP and MCP."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from urllib.parse import quote, unquote

import anyio
import feedparser
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from semsearch.feeds import Entry, atom, rfc3339, xml_text
from semsearch.ingest import IngestReport
from semsearch.sources.curated import parse_list
from semsearch.sources.survey import load_survey
from semsearch.watch import WatchReport, save_digest
from tests.cli_process import run_cli
from tests.conftest import examples
from tests.test_page import with_a_digest
from tests.test_propose import survey_readme

KV = "Model-Centric Methods/Efficient Inference/KV-Cache Optimization"


@pytest.fixture
def client(survey_corpus_index):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    with TestClient(create_app(index_dir=survey_corpus_index)) as running:
        yield running


def parsed(response) -> feedparser.FeedParserDict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    return feed


def test_a_nodes_feed_lists_its_newest_papers_as_valid_atom(client):
    feed = parsed(client.get(f"/feeds/survey/{quote(KV)}.atom"))
    under = {r["id"] for r in client.get("/api/papers", params={"category": KV, "limit": 500}).json()["results"]}

    assert feed.feed.title == "semsearch: KV-Cache Optimization (survey)"
    assert {link.rel for link in feed.feed.links} == {"self", "alternate"}
    # "Open the site" in a feed reader opens the page's view of the node (it said `node=`, which the
    # page does not read: "unknown category 'null'")
    [page] = [link.href for link in feed.feed.links if link.rel == "alternate"]
    assert page == f"http://testserver/?view=node&category={quote(KV, safe='')}"
    ids = [
        unquote(e.id.removeprefix("https://arxiv.org/abs/").removeprefix("http://testserver/paper/"))
        for e in feed.entries
    ]
    assert 0 < len(ids) <= 50 and set(ids) <= under and len(set(ids)) == len(ids)
    days = [e.updated for e in feed.entries]
    assert days == sorted(days, reverse=True)  # newest first
    assert all(e.tags[0].term == KV for e in feed.entries)


def test_a_node_is_found_by_its_last_name_too_and_a_list_taxonomy_has_feeds(client):
    by_leaf = parsed(client.get("/feeds/survey/KV-Cache%20Optimization.atom"))
    assert by_leaf.feed.title == "semsearch: KV-Cache Optimization (survey)"


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/feeds/survey/No Such Node.atom", 404, "unknown category"),  # was 400: the address names nothing
        ("/feeds/nope/KV-Cache Optimization.atom", 404, "no taxonomy 'nope'"),
        ("/feeds/survey/KV-Cache Optimization", 404, "ends in .atom"),
    ],
)
def test_a_feed_that_is_not_there_is_a_json_error(client, path, status, says):
    answer = client.get(path)
    assert answer.status_code == status and says in answer.json()["error"]


def test_the_digests_feed_has_one_entry_a_digest_with_its_papers(survey_corpus_index, client):
    assert parsed(client.get("/feeds/digests.atom")).entries == []
    with_a_digest(survey_corpus_index)
    feed = parsed(client.get("/feeds/digests.atom"))
    assert len(feed.entries) == 1
    entry = feed.entries[0]
    assert entry.title.startswith("1 new paper, ") and entry.updated == "2024-11-02T00:00:00Z"
    assert "Evicting <tokens> & more (2411.00001)" in entry.summary
    assert entry.link.endswith("?view=digest&name=202411010000-202411020000")
    # A watch that found nothing in scope is no news: no "0 new papers" entry every day.
    save_digest(WatchReport("202411020000", "202411030000", 5, [], IngestReport()), index_dir=survey_corpus_index)
    assert [e.link for e in parsed(client.get("/feeds/digests.atom")).entries] == [entry.link]


@settings(max_examples=examples(80), deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=60), st.text(max_size=200), st.lists(st.text(max_size=20), max_size=3)),
        max_size=5,
    )
)
@example([("Â¡", "", [])])  # valid UTF-8 that reads as mojibake: feedparser "repairs" it to "¡"
def test_any_text_makes_valid_atom(items):
    entries = [
        Entry(id=f"urn:x:{i}", title=t, updated="2024-01-02T00:00:00Z", summary=s, authors=a)
        for i, (t, s, a) in enumerate(items)
    ]
    feed = feedparser.parse(
        atom(feed_id="urn:f", title="t", self_url="http://h/f", page_url="http://h/", entries=entries)
    )
    assert not feed.bozo, feed.get("bozo_exception")
    assert [e.id for e in feed.entries] == [e.id for e in entries]
    assert [" ".join(e.title.split()) for e in feed.entries] == [
        " ".join(_as_feedparser_reads(xml_text(t).strip() or f"urn:x:{i}").split()) for i, (t, _, _) in enumerate(items)
    ]


def _as_feedparser_reads(text: str) -> str:
    """feedparser takes UTF-8 text that is also valid as Latin-1-encoded UTF-8 for the common
    mistake of double encoding, and decodes it once more ("Â¡" reads "¡"): what it shows, from
    a feed that carries the text right."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def test_dates_become_rfc3339_and_unreadable_ones_the_epoch():
    assert rfc3339("2024-01-02") == "2024-01-02T00:00:00Z"
    assert rfc3339("2024-01-02T10:11:12+02:00") == "2024-01-02T10:11:12+02:00"
    assert rfc3339("soon") == rfc3339(None) == "1970-01-01T00:00:00Z"


# --- the routes that give back to a list ---------------------------------------------------------------
def test_http_propose_needs_the_readme_the_index_keeps(client):
    answer = client.get("/api/propose", params={"taxonomy": "survey"})
    assert answer.status_code == 400 and "keeps no README" in answer.json()["error"]
    assert client.get("/api/propose", params={"min_confidence": 7}).status_code == 422
    assert client.get("/api/gaps", params={"since": "soon"}).status_code == 422


@pytest.mark.slow
def test_a_real_server_serves_feeds_proposals_their_patch_and_gaps(survey_corpus_index, tmp_path):
    from tests.test_serve_watch import free_port, semsearch_process, stop, until

    left_out = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})[::50]
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set(left_out)), encoding="utf-8")
    # a refresh from the file keeps its README in the index: what the server proposes against
    run_cli("taxonomy", "refresh", readme, "--offline", "--force", "--index", survey_corpus_index, check=True)
    port, log = free_port(), tmp_path / "server.log"
    server = semsearch_process("serve", "--port", port, "--index", survey_corpus_index, env={}, log=log)

    def fetch(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (urllib.error.URLError, ConnectionError):
            return 0, b""

    try:
        until(lambda: fetch("/api/health")[0] == 200, "the server answering", server, log)
        status, body = fetch(f"/feeds/survey/{quote(KV)}.atom")
        assert status == 200 and not feedparser.parse(body).bozo and feedparser.parse(body).entries
        status, body = fetch("/api/propose?taxonomy=survey&min_confidence=0&" + "&".join(f"ids={i}" for i in left_out))
        found = json.loads(body)
        assert status == 200 and {p["id"] for p in found["proposals"]} == set(left_out)
        status, patch = fetch("/api/propose/survey.patch?min_confidence=0&" + "&".join(f"ids={i}" for i in left_out))
        assert status == 200 and patch.decode() == found["patch"] and patch.startswith(b"--- a/README.md")
        status, body = fetch("/api/gaps?taxonomy=survey")
        assert status == 200 and set(json.loads(body)) == {"taxonomy", "papers", "gaps"}
        status, body = fetch("/api/propose?taxonomy=nope")
        assert status == 404 and "no taxonomy" in json.loads(body)["error"]
    finally:
        stop(server)


def test_mcp_propose_and_gaps_answer_and_refuse_like_the_other_doors(cli, survey_corpus_index, tmp_path):
    from mcp.server.mcpserver.exceptions import ToolError

    from semsearch.mcp_server import add_tools, tool_server
    from semsearch.service import Service

    left_out = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})[::70]
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set(left_out)), encoding="utf-8")
    cli("taxonomy", "refresh", readme, "--offline", "--force", "--index", survey_corpus_index, check=True)
    server = tool_server("semsearch-test")
    add_tools(server, Service(index_dir=survey_corpus_index))

    answer = anyio.run(server.call_tool, "propose", {"ids": left_out, "min_confidence": 0})
    found = json.loads(answer.content[0].text)
    assert {p["id"] for p in found["proposals"]} == set(left_out)
    patched = readme.read_text(encoding="utf-8")
    assert parse_list(patched).papers  # read only: the README on disk is untouched by a proposal
    gaps = json.loads(anyio.run(server.call_tool, "gaps", {"taxonomy": "survey"}).content[0].text)
    assert set(gaps) == {"taxonomy", "papers", "gaps"}
    with pytest.raises(ToolError) as refused:
        anyio.run(server.call_tool, "propose", {"min_confidence": 3})
    assert "min_confidence" in str(refused.value)


def watched_page(playwright):
    """(browser, page, problems): Debian's Chromium with a page whose script errors and console
    errors are collected in `problems`."""
    browser = playwright.chromium.launch(
        executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
    )
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return browser, page, problems


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed")
def test_the_page_shows_a_lists_proposals_its_patch_its_gaps_and_links_the_feeds(survey_corpus_index, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.test_page import serving

    left_out = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})[::80]
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set(left_out)), encoding="utf-8")
    run_cli("taxonomy", "refresh", readme, "--offline", "--force", "--index", survey_corpus_index, check=True)
    # and then the list's maintainers take one more out: not proposed again, and said so
    taken_out = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id} - set(left_out))[7]
    readme.write_text(survey_readme({*left_out, taken_out}), encoding="utf-8")
    run_cli("taxonomy", "refresh", readme, "--offline", "--force", "--index", survey_corpus_index, check=True)
    with_a_digest(survey_corpus_index)
    base, stop = serving(survey_corpus_index)
    try:
        with sync_playwright() as p:
            browser, page, problems = watched_page(p)
            page.goto(base + "/?view=taxonomy")
            page.click(".lists a:text('survey')")
            page.wait_for_url("**view=list**")
            page.goto(base + "/?view=list&taxonomy=survey&min_confidence=0")
            page.wait_for_selector(".proposal")
            shown = page.eval_on_selector_all(".proposal a", "links => links.map(a => a.getAttribute('href'))")
            proposed = page.request.get(base + "/api/propose?taxonomy=survey&min_confidence=0").json()["proposals"]
            in_scope_left_out = set(left_out) & {p["id"] for p in proposed}
            assert len(in_scope_left_out) >= 0.75 * len(left_out)  # a title alone may read as out of scope
            assert {href.removeprefix("/paper/") for href in shown} == {p["id"] for p in proposed}
            assert all("%" in c for c in page.locator(".proposal .confidence").all_inner_texts())
            href = page.get_attribute("#download-patch", "href")
            patch = page.request.get(base + href)
            assert patch.ok and patch.text().startswith("--- a/README.md") and patch.text().count("\n+- ") == len(shown)
            assert page.locator("h3:text('Topics the list has not named')").count() == 1
            assert page.inner_text("#taken-out") == f"Not proposed again: 1 paper the list took out ({taken_out})."
            assert taken_out not in {href.removeprefix("/paper/") for href in shown}

            page.goto(base + "/?view=node&category=KV-Cache%20Optimization")
            page.wait_for_selector("a.feed")
            feed = page.request.get(base + page.get_attribute("a.feed", "href"))
            assert feed.ok and not feedparser.parse(feed.body()).bozo
            page.goto(base + "/?view=digest")
            page.wait_for_selector("a.feed")
            assert page.get_attribute("a.feed", "href") == "/feeds/digests.atom"
            browser.close()
        assert problems == []
    finally:
        stop()


def test_gaps_are_computed_once_per_index_generation_however_often_asked(client, monkeypatch):
    from semsearch import gaps

    computed = []
    real = gaps._gaps_for

    def counting(*args, **kwargs):
        computed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gaps, "_gaps_for", counting)
    answers = [client.get("/api/gaps", params={"taxonomy": "survey", "since": "2001-02-03"}) for _ in range(3)]
    assert all(a.status_code == 200 for a in answers) and len({a.text for a in answers}) == 1
    assert computed == [1]


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed")
def test_with_a_list_picked_the_survey_tree_links_work_and_a_list_view_shows_what_it_can(survey_corpus_index, tmp_path):
    """A helper's pass: with a list picked, the survey's tree linked its nodes with `taxonomy=kv`
    (400: the list has no such node); the survey's list view, on an index that keeps no README of
    it, showed only the error and a literal "null", and no gaps."""
    from playwright.sync_api import sync_playwright

    from tests.test_page import serving

    readme = tmp_path / "mine.md"
    readme.write_text(
        "# Mine\n\n## Caches\n\n- [H2O](https://arxiv.org/abs/2306.14048)\n"
        "- [StreamingLLM](https://arxiv.org/abs/2309.17453)\n\n## Drafts\n\n"
        "- [Speculative decoding](https://arxiv.org/abs/2211.17192)\n"
    )
    run_cli("taxonomy", "add", "mine", readme, "--offline", "--index", survey_corpus_index, check=True)
    base, stop = serving(survey_corpus_index)
    try:
        with sync_playwright() as p:
            browser, page, problems = watched_page(p)
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(base + "/?view=taxonomy&taxonomy=mine")
            page.click(".legend a >> nth=0")  # a survey node, the list still picked
            page.wait_for_selector("article.result")
            page.goto(base + "/?view=list&taxonomy=survey")
            page.wait_for_selector("h3:text('Topics the list has not named')")
            page.wait_for_selector("section.gap")
            shown = page.inner_text("#view") if page.locator("#view").count() else page.inner_text("main")
            assert "keeps no README" in shown and "null" not in shown
            browser.close()
        # The one failure the list view asks for, and shows in words: no README kept to propose against.
        assert [p for p in problems if "/api/propose" not in p and "Failed to load resource" not in p] == []
    finally:
        stop()


# The feed as RFC 4287 names it, read element by element: feedparser forgives what a strict reader
# does not (it lowercases element names, so an `<ID>` or `<TITLE>` passed the tests above).
A = "{http://www.w3.org/2005/Atom}"


def _xml(feed: bytes):
    from xml.etree import ElementTree as ET

    return ET.fromstring(feed)


def test_a_feed_has_every_element_atom_requires_in_its_namespace_as_utf8():
    entry = Entry(
        id="urn:x:1", title="Nyström attention", updated="2024-01-03T00:00:00Z", link="https://arxiv.org/abs/2402.1",
        summary="A summary.", authors=["Ada Lovelace"], categories=["A/B"],
    )  # fmt: skip
    older = Entry(id="urn:x:2", title="Older", updated="2023-05-06T00:00:00Z")
    raw = atom(
        feed_id="urn:f", title="Feed title", self_url="http://h/f.atom", page_url="http://h/", entries=[older, entry]
    )

    assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>") and "Nyström".encode() in raw
    feed = _xml(raw)
    assert feed.tag == f"{A}feed"
    assert feed.findtext(f"{A}id") == "urn:f" and feed.findtext(f"{A}title") == "Feed title"
    assert feed.findtext(f"{A}updated") == "2024-01-03T00:00:00Z"  # the newest entry's
    links = {link.get("rel"): link.attrib for link in feed.findall(f"{A}link")}
    assert links["self"] == {"rel": "self", "href": "http://h/f.atom", "type": "application/atom+xml"}
    assert links["alternate"] == {"rel": "alternate", "href": "http://h/", "type": "text/html"}
    assert feed.findtext(f"{A}author/{A}name") == "semsearch" and feed.findtext(f"{A}generator") == "semsearch"
    first, second = feed.findall(f"{A}entry")
    assert [first.findtext(f"{A}{tag}") for tag in ("id", "title", "updated")] == ["urn:x:2", "Older", older.updated]
    assert second.findtext(f"{A}title") == "Nyström attention" and second.findtext(f"{A}summary") == "A summary."
    assert second.find(f"{A}link").attrib == {"rel": "alternate", "href": "https://arxiv.org/abs/2402.1"}
    assert second.findtext(f"{A}author/{A}name") == "Ada Lovelace"
    assert second.find(f"{A}category").attrib == {"term": "A/B"}
    assert first.find(f"{A}link") is None and first.find(f"{A}summary") is None  # none given, none written


def test_a_feed_without_entries_was_last_updated_at_the_epoch():
    feed = _xml(atom(feed_id="urn:f", title="t", self_url="http://h/f", page_url="http://h/", entries=[]))
    assert feed.findtext(f"{A}updated") == "1970-01-01T00:00:00Z" and feed.find(f"{A}entry") is None


def test_a_date_and_time_with_a_space_and_no_zone_is_read_as_utc():
    assert rfc3339("2024-01-02 10:11:12") == rfc3339("2024-01-02T10:11:12") == "2024-01-02T10:11:12Z"


def test_a_papers_entry_collapses_its_text_cuts_a_long_abstract_at_a_word_and_links_the_paper():
    from semsearch.feeds import SUMMARY_CHARS, paper_entry
    from semsearch.paper import Paper

    words = " ".join(f"word{i:04d}" for i in range(200))  # 1,799 characters
    arxiv = paper_entry(
        Paper(id="2402.01530", title="  Two\n spaces ", abstract=words, published="2024-02-03"), "http://h/"
    )
    assert arxiv.id == arxiv.link == "https://arxiv.org/abs/2402.01530"
    assert arxiv.title == "Two spaces" and arxiv.updated == "2024-02-03T00:00:00Z"
    assert len(arxiv.summary) <= SUMMARY_CHARS and arxiv.summary.endswith(" word0065…")  # a whole word, then "…"
    # A cut that falls just after a word keeps the summary within SUMMARY_CHARS all the same.
    edge = paper_entry(Paper(id="2402.01530", title="T", abstract="a" * 597 + " bb cc"), "http://h/")
    assert edge.summary == "a" * 597 + "…"
    short = paper_entry(Paper(id="acl/2024.x", title="T", abstract="a  b\n c", url=None), "http://h/", ["A/B"])
    assert short.summary == "a b c" and short.categories == ["A/B"]
    assert short.id == short.link == "http://h/paper/acl%2F2024.x"  # its page on this server, "/" escaped


def test_a_lists_node_feed_links_the_lists_view_of_the_node_and_keeps_the_path_readable():
    from semsearch.feeds import node_feed

    feed = _xml(node_feed("my list", "A b/C", [], "http://h/"))
    assert feed.findtext(f"{A}id") == "http://h/feeds/my%20list/A%20b/C.atom"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{A}link")}
    assert links == {
        "self": "http://h/feeds/my%20list/A%20b/C.atom",
        "alternate": "http://h/?view=node&category=A%20b%2FC&taxonomy=my%20list",
    }
    survey = _xml(node_feed("survey", "C", [], "http://h/"))
    assert {link.get("href") for link in survey.findall(f"{A}link")} == {
        "http://h/feeds/survey/C.atom",
        "http://h/?view=node&category=C",
    }


def _digest(name: str, items: int, **more) -> dict:
    groups = {"A/B": [{"id": f"2411.{i:05d}", "title": f"Paper {i}"} for i in range(items)]}
    return {"name": name, "until": name.partition("-")[2], "groups": groups, **more}


def test_the_digests_feed_names_counts_and_links_each_digest_and_the_lists_are_its_own():
    from semsearch.feeds import digests_feed

    digests = [
        _digest("202411020000-202411030000", 2, window="2 Nov – 3 Nov 2024"),
        _digest("202411010000-202411020000", 1, papers=1),
        _digest("202410310000-202411010000", 0),  # found nothing: no entry
    ]
    feed = _xml(digests_feed(digests, "http://h/"))
    assert feed.findtext(f"{A}id") == "http://h/feeds/digests.atom"
    assert {link.get("rel"): link.get("href") for link in feed.findall(f"{A}link")} == {
        "self": "http://h/feeds/digests.atom",
        "alternate": "http://h/?view=digest",
    }
    two, one = feed.findall(f"{A}entry")
    assert two.findtext(f"{A}title") == "2 new papers, 2 Nov – 3 Nov 2024"  # counted from its items
    assert one.findtext(f"{A}title") == "1 new paper, 202411010000-202411020000"  # no window: its name
    assert two.findtext(f"{A}id") == "http://h/api/digests/202411020000-202411030000"
    assert two.find(f"{A}link").get("href") == "http://h/?view=digest&name=202411020000-202411030000"
    assert two.findtext(f"{A}updated") == "2024-11-03T00:00:00Z"
    assert two.findtext(f"{A}summary") == "Paper 0 (2411.00000)\nPaper 1 (2411.00001)"

    listed = _xml(digests_feed(digests[1:2], "http://h/", "my list"))
    assert listed.findtext(f"{A}id") == "http://h/feeds/digests.atom?taxonomy=my%20list"
    assert listed.findtext(f"{A}title") == "semsearch: new papers from arXiv (digests for my list)"
    assert {link.get("href") for link in listed.findall(f"{A}link")} == {
        "http://h/feeds/digests.atom?taxonomy=my%20list",
        "http://h/?view=digest&taxonomy=my%20list",
    }
    [entry] = listed.findall(f"{A}entry")
    assert entry.findtext(f"{A}id") == "http://h/api/digests/202411010000-202411020000?taxonomy=my%20list"
    assert entry.find(f"{A}link").get("href").endswith("name=202411010000-202411020000&taxonomy=my%20list")
    # The survey's digests are the default ones, however named.
    assert digests_feed(digests, "http://h/", "survey") == digests_feed(digests, "http://h/")


def test_the_digests_feed_holds_the_newest_50_digests_and_100_papers_of_each():
    from semsearch.feeds import MAX_ENTRIES, digests_feed

    many = [_digest(f"2024110{i // 60}{i % 60:04d}-202412010000", 1) for i in range(MAX_ENTRIES + 5)]
    many[0] = _digest(many[0]["name"], 150)
    entries = _xml(digests_feed(many, "http://h/")).findall(f"{A}entry")
    assert len(entries) == MAX_ENTRIES
    assert entries[0].findtext(f"{A}title").startswith("150 new papers")
    assert len(entries[0].findtext(f"{A}summary").splitlines()) == 100


def _quiet_days_after_a_digest_with_a_paper(index_dir, days: int = 50) -> None:
    """A daily watch: one digest that found a paper, then `days` that found nothing in scope."""
    with_a_digest(index_dir)  # 202411010000-202411020000
    for day in range(2, 2 + days):
        since, until = (f"2024{11 + (d - 1) // 30:02d}{(d - 1) % 30 + 1:02d}0000" for d in (day, day + 1))
        save_digest(WatchReport(since, until, 3, [], IngestReport()), index_dir=index_dir)


def test_quiet_days_push_no_digest_with_papers_out_of_the_feed(survey_corpus_index, client):
    """The feed took the newest 50 digests, then left out those that found nothing: after 50 quiet
    days of a daily watch it was empty, updated at the epoch, the digest with a paper still listed
    at /api/digests. It holds the newest 50 digests with papers."""
    _quiet_days_after_a_digest_with_a_paper(survey_corpus_index)
    assert len(client.get("/api/digests").json()["digests"]) == 51
    [entry] = parsed(client.get("/feeds/digests.atom")).entries
    assert entry.link.endswith("?view=digest&name=202411010000-202411020000")


@pytest.mark.slow
def test_a_real_servers_digest_feed_keeps_a_digest_with_papers_after_quiet_days(survey_corpus_index):
    from tests.test_server import _request, serving

    _quiet_days_after_a_digest_with_a_paper(survey_corpus_index)
    with serving(survey_corpus_index) as port:
        status, _, body = _request(port, "GET", "/feeds/digests.atom", {})
    assert status == 200
    [entry] = _xml(body).findall(f"{A}entry")
    assert entry.findtext(f"{A}title").startswith("1 new paper, ")


def _a_moment(text: str) -> bool:
    """Whether `text` is an RFC 3339 date-time as Atom wants it (a real day and time, upper-case T and Z)."""
    import re
    from datetime import datetime

    if not re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})", text
    ):
        return False
    try:
        datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


def test_a_day_or_time_that_is_none_becomes_the_epoch():
    """An undated paper was sorted as "0000-00-00" and written so: "0000-00-00T00:00:00Z", no date
    (a feed reader made it 30 November of the year -1)."""
    for unreal in (
        "0000-00-00",
        "2024-13-01",
        "2024-02-30",
        "2024-01-02T24:00:00Z",
        "2024-01-02 10:61:00",
        "２０２４-01-02",
    ):
        assert rfc3339(unreal) == "1970-01-01T00:00:00Z", unreal
    assert rfc3339("2024-02-29") == "2024-02-29T00:00:00Z"


def test_a_nodes_feed_dates_an_undated_paper_at_the_epoch_and_lists_it_last():
    from semsearch.feeds import node_feed
    from semsearch.paper import Paper

    undated, dated = Paper(id="survey:a-paper", title="Undated"), Paper(id="2402.01530", title="Dated")
    feed = _xml(node_feed("survey", "A/B", [undated, dated], "http://h/"))
    entries = feed.findall(f"{A}entry")
    assert [e.findtext(f"{A}title") for e in entries] == ["Dated", "Undated"]
    assert [e.findtext(f"{A}updated") for e in entries] == ["2024-02-01T00:00:00Z", "1970-01-01T00:00:00Z"]


@pytest.mark.slow
def test_a_real_servers_node_feed_dates_every_entry_as_rfc3339(survey_corpus_index):
    from tests.test_server import _request, serving

    with serving(survey_corpus_index) as port:
        status, _, body = _request(port, "GET", f"/feeds/survey/{KV}.atom", {})
    assert status == 200
    feed = _xml(body)
    updated = [feed.findtext(f"{A}updated")] + [e.findtext(f"{A}updated") for e in feed.findall(f"{A}entry")]
    assert len(updated) > 2 and [u for u in updated if not _a_moment(u)] == []
