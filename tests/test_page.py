"""The page in a real browser (Debian's Chromium through Playwright): every view, by mouse and
keyboard, at phone and desktop width, light and dark, with no console errors and nothing fetched
from another host. Screenshots land in test-artifacts/ for a person to look at."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from semsearch.ingest import IngestReport, ingest_jsonl
from semsearch.watch import DigestEntry, WatchReport, save_digest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="Debian chromium not installed"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serving(index_dir: Path):
    """A real uvicorn server over `index_dir` in a thread: (base URL, stop)."""
    import uvicorn

    from semsearch.server import create_app

    port = _free_port()
    app = create_app(index_dir=index_dir, hosts=["127.0.0.1", "localhost"])  # as `semsearch serve` checks Host
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


def with_a_digest(index_dir: Path) -> None:
    entry = DigestEntry(
        "2411.00001", "Evicting <tokens> & more", None, "A/B/KV-Cache Optimization", 0.8, True,
        authors=["Grace Hopper"], snippet="We keep heavy hitters & evict the rest.",
    )  # fmt: skip
    save_digest(WatchReport("202411010000", "202411020000", 1, [entry], IngestReport()), index_dir=index_dir)


@pytest.fixture
def toy_site(survey_corpus_index):
    index_dir = survey_corpus_index
    with_a_digest(index_dir)
    base, stop = serving(index_dir)
    yield base
    stop()


def offline(page, base: str) -> tuple[list[str], list[str]]:
    """Cut `page` off every host but `base`, as with no network: (requests to other hosts, which
    are refused, and failed requests). Both must stay empty."""
    outside, failed = [], []

    def only_here(route):
        if route.request.url.startswith(base + "/") or route.request.url == base:
            return route.continue_()
        outside.append(route.request.url)
        return route.abort("internetdisconnected")

    def failing(request) -> None:
        # The browser's own fetch of the icon is cancelled when the page moves on before it lands
        # (CI, once in a dozen runs); the page's requests have no such excuse.
        if not (request.url.endswith("/static/favicon.svg") and request.failure == "net::ERR_ABORTED"):
            failed.append(f"{request.url}: {request.failure}")

    page.route("**/*", only_here)
    page.on("requestfailed", failing)
    return outside, failed


def tour(
    base: str, name: str, *, width: int, dark: bool, question: str, paper_id: str, unfiled_id: str | None = None
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = lambda page, view: page.screenshot(path=str(ARTIFACTS / f"{name}-{view}.png"), full_page=True)  # noqa: E731
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light")
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        outside, failed = offline(page, base)
        # The page runs under its CSP: waits below are functions, never strings it would have to eval.

        # Landing: what the index holds, examples, the treemap, what is new.
        page.goto(base + "/")
        page.wait_for_selector(".stats .stat b")
        assert page.inner_text(".stats .stat b").replace(",", "").isdigit()
        assert page.locator(".treemap rect").count() > 5 and page.locator(".examples a").count() == 5
        assert "Evicting <tokens> & more" in page.inner_text(".digest-group")
        assert "semsearch ingest survey" in page.inner_text(".hint")  # titles only: how to get abstracts
        labels_fit(page)
        shot(page, "landing")

        # Results from a question: filters, abstract, why, related, more, all in the URL.
        page.fill("#q", question)
        page.keyboard.press("Enter")
        page.wait_for_selector(".result")
        assert page.locator(".result").count() == 10 and "q=" in page.url
        first = page.locator(".result").first
        if first.locator(".why-button").count():
            first.locator(".why-button").click()
            assert "match" in first.locator(".why").inner_text()
        first.locator(".related-button").click()
        page.wait_for_selector(".related .result")
        shot(page, "results")
        page.fill("input[name=year_from]", "2023")
        page.click(".filters button[type=submit]")
        page.wait_for_url("**year_from=2023**")
        page.wait_for_selector(".result")
        years = [int(y) for y in page.eval_on_selector_all(".result[data-year]", "rs => rs.map(r => r.dataset.year)")]
        assert years and min(years) >= 2023
        page.go_back()
        page.wait_for_selector(".result")
        if page.locator(".more a").count():
            page.click(".more a")
            page.wait_for_function("() => document.querySelectorAll('.result').length > 10")

        # A category chip opens its node; from there, trends; compare a second node.
        page.locator(".result .chip").first.click()
        page.wait_for_url("**view=node**")
        page.wait_for_selector(".result")
        page.click("text=Papers per year under this node")
        page.wait_for_selector(".chart polyline")
        page.locator("input[name=category]").nth(1).fill("Model-Centric Methods/Model Compression")
        page.click(".filters button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('.chart polyline').length === 2")
        shot(page, "trends")

        # A node's papers, closest to it first, then newest first.
        page.goto(f"{base}/?view=node&category=Quantization")
        page.wait_for_selector(".result")
        page.select_option("#node-sort", "date")
        page.wait_for_url("**sort=date**")
        page.wait_for_function("() => document.querySelector('#status').textContent.includes('newest first')")
        years = [int(y) for y in page.eval_on_selector_all(".result[data-year]", "rs => rs.map(r => r.dataset.year)")]
        assert years == sorted(years, reverse=True)

        # A question no paper answers under its filters says which filters emptied it.
        page.goto(f"{base}/?q={question.replace(' ', '+')}&year_from=2030")
        page.wait_for_selector(".empty")
        assert "from 2030" in page.inner_text(".empty") and page.locator(".empty a").count() == 1

        # One paper: links, related (diverse too), BibTeX; filed by the survey, so nothing to confirm.
        page.goto(f"{base}/paper/{paper_id}")
        page.wait_for_selector(".paper h2")
        page.wait_for_selector(".related-list .result")
        page.check("#diverse")
        page.wait_for_selector(".related-list .result")
        page.click(".paper-links button")
        page.wait_for_selector("#bibtex-dialog[open]")
        assert page.inner_text("#bibtex-text").startswith("@")
        page.keyboard.press("Escape")
        assert "filed by the survey" in page.inner_text(".paper") and page.locator(".confirm").count() == 0
        shot(page, "paper")
        if unfiled_id:  # a paper the survey does not file: its category is confirmed from a list of leaves
            page.goto(f"{base}/paper/{unfiled_id}")
            page.wait_for_selector("#confirm-category")
            leaf = "Model-Centric Methods/Efficient Inference/Speculative Decoding"
            page.select_option("#confirm-category", leaf)
            page.click(".confirm button[type=submit]")
            page.wait_for_selector("text=Saved as yours")

        # A survey paper without an arXiv id: its index id is not shown.
        page.goto(f"{base}/?view=node&category=Weight-Only+Quantization")
        page.wait_for_selector(".result")
        page.locator(".result h3 a[href*='survey%3A']").first.click()
        page.wait_for_selector(".paper h2")
        assert "survey:" not in page.inner_text("main")

        # Classify: breadcrumbs with probabilities, the verdict in words.
        page.click("#show-classify")
        page.fill("#c-title", "Evicting tokens from the key-value cache")
        page.fill("#c-abstract", "We keep heavy-hitter tokens in the KV cache and evict the rest during decoding.")
        page.click("#classify-form button[type=submit]")
        page.wait_for_selector(".breadcrumbs li")
        assert page.locator(".breadcrumbs li").count() >= 3 and "%" in page.inner_text(".breadcrumbs")
        assert "scope" in page.inner_text(".verdict")
        shot(page, "classify")

        # The taxonomy, then a node reached by keyboard on the treemap.
        page.click("#show-taxonomy")
        page.wait_for_selector(".tree details")
        page.locator(".treemap rect").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**view=node**")
        page.wait_for_selector(".result")

        # The latest digest: text, never markup.
        page.click("#show-digest")
        page.wait_for_selector(".digest-group")
        assert "Evicting <tokens> & more" in page.inner_text(".digest-group li")
        shot(page, "digest")

        # A paper liked on its own page; what to read next from it.
        page.goto(f"{base}/paper/{paper_id}")
        page.click(".paper-links .like-button")
        page.click("#show-liked")
        page.wait_for_selector("#recommended .result")
        assert page.locator(".liked li").count() == 1
        shot(page, "liked")

        # The API, documented by the page itself from /openapi.json.
        page.click("#show-api")
        page.wait_for_selector(".endpoint")
        assert page.locator(".endpoint h3", has_text="GET /api/search").count() == 1
        assert page.locator(".endpoint").count() >= 15
        shot(page, "api")
        browser.close()
    assert problems == [] and outside == [] and failed == []


def labels_fit(page) -> None:
    """Every treemap label is a node's whole name (never cut with …) and lies inside its area."""
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('.treemap text')].map((t) => {
             const r = t.previousElementSibling, b = t.getBBox();
             return {text: t.textContent, name: r.getAttribute('aria-label'), x: b.x, y: b.y, w: b.width, h: b.height,
                     rx: +r.getAttribute('x'), ry: +r.getAttribute('y'), rw: +r.getAttribute('width'),
                     rh: +r.getAttribute('height')};
           })"""
    )
    assert len(boxes) >= 5
    for box in boxes:
        assert "…" not in box["text"] and box["name"].split(" › ")[-1].split(":")[0].replace(" ", "") == box[
            "text"
        ].replace(" ", ""), box
        assert box["x"] >= box["rx"] and box["x"] + box["w"] <= box["rx"] + box["rw"] + 0.5, box
        assert box["y"] >= box["ry"] and box["y"] + box["h"] <= box["ry"] + box["rh"] + 0.5, box


@pytest.mark.parametrize("width, dark", [(390, False), (1280, True)])
def test_every_view_with_the_toy_index(toy_site, width, dark):
    tour(toy_site, f"toy-{width}-{'dark' if dark else 'light'}", width=width, dark=dark,
         question="speculative decoding with a draft model", paper_id="2306.00978",
         unfiled_id="2302.00003")  # fmt: skip


def test_every_view_with_the_real_model(tmp_path):
    from semsearch.ingest import ingest_survey

    ingest_survey(index_dir=tmp_path / "idx", offline=True, progress=False)
    with_a_digest(tmp_path / "idx")
    base, stop = serving(tmp_path / "idx")
    try:
        tour(base, "real-1280-light", width=1280, dark=False, question="how do I shrink the KV cache for long prompts?",
             paper_id="2306.00978")  # fmt: skip
    finally:
        stop()


def test_a_taxonomy_from_a_list_is_chosen_on_the_page(tmp_path, fake_model, corpus_file):
    from playwright.sync_api import sync_playwright

    from semsearch.lists import add_list

    index_dir = tmp_path / "idx"
    ingest_jsonl([corpus_file], index_dir=index_dir, progress=False)
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Decoding list\n## Drafting\n- **Speculative decoding** [[pdf](https://arxiv.org/abs/2302.00003)]\n"
        "## Caching\n- **Cache eviction** [[pdf](https://arxiv.org/abs/2305.00004)]\n"
    )
    add_list("decoding", str(readme), index_dir=index_dir, offline=True)
    with_a_digest(index_dir)  # the survey's watch's
    drafted = DigestEntry("2411.00002", "Drafts that verify themselves", None, "Drafting", 0.9, True)
    save_digest(WatchReport("202411010000", "202411020000", 1, [drafted], IngestReport()), index_dir=index_dir,
                taxonomy="decoding")  # fmt: skip
    base, stop = serving(index_dir)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(base + "/")
            page.wait_for_selector("#taxonomy:not([hidden]) option[value=decoding]", state="attached")
            page.select_option("#taxonomy", "decoding")
            page.wait_for_url("**taxonomy=decoding**")
            page.fill("#q", "speculative decoding draft model")
            page.keyboard.press("Enter")
            page.wait_for_selector(".result .chip")
            assert "taxonomy=decoding" in page.url
            assert set(page.locator(".result .chip").all_inner_texts()) <= {
                "Drafting",
                "Caching",
                "Drafting (predicted)",
                "Caching (predicted)",
            }
            page.locator(".result .chip", has_text="Drafting").first.click()  # the list's node, listed
            page.wait_for_url("**view=node**")
            page.wait_for_selector("#view:not([aria-busy]) h2")  # drawn, not the results' heading before it
            assert "taxonomy=decoding" in page.url and page.inner_text("main h2") == "Drafting"
            page.wait_for_selector(".result")
            page.goto(base + "/?view=digest&taxonomy=decoding")  # the list's watch's digest, not the survey's
            page.wait_for_selector(".digest-group")
            assert "Drafts that verify themselves" in page.inner_text("main")
            assert "Evicting" not in page.inner_text("main")
            assert "taxonomy=decoding" in page.get_attribute("a[href*='digests.atom']", "href")
            # The Taxonomy view with the list picked drew the survey's tree under the picker saying
            # "decoding": it is the list's tree, and its nodes list the list's papers.
            page.goto(base + "/?view=taxonomy")
            page.wait_for_selector(".tree details")
            page.wait_for_selector("#taxonomy:not([hidden]) option[value=decoding]", state="attached")
            page.select_option("#taxonomy", "decoding")
            page.wait_for_url("**view=taxonomy&taxonomy=decoding**")
            page.wait_for_selector("#view:not([aria-busy]) .tree .leaf")
            assert page.eval_on_selector_all(".tree > .leaf > a", "links => links.map(a => a.textContent)") == [
                "Drafting", "Caching"
            ]  # fmt: skip
            assert page.locator(".treemap rect").count() == 2 and "Model-Centric" not in page.inner_text("#view")
            page.click(".tree .leaf a:text-is('Drafting')")
            page.wait_for_url("**view=node**")
            page.wait_for_selector("#view:not([aria-busy]) .result")
            assert "taxonomy=decoding" in page.url and page.inner_text("main h2") == "Drafting"
            page.select_option("#taxonomy", "")  # back to the survey's: its tree, not the list's node asked of it (400)
            page.wait_for_url("**/?view=taxonomy")
            page.wait_for_selector("#view:not([aria-busy]) .tree details")
            assert "Model-Centric Methods" in page.inner_text(".tree")
            browser.close()
        assert problems == []
    finally:
        stop()


def test_only_http_links_and_the_apps_own_paths_become_links(toy_site):
    """Even if the API handed out `javascript:` (an old index, a proxy), the page makes no link of it;
    and the page's Content-Security-Policy is in force: an injected inline script does not run."""
    from playwright.sync_api import sync_playwright

    base, evil = toy_site, "javascript:alert(document.domain)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))

        def poisoned(route):
            answer = route.fetch()
            data = answer.json()
            if not isinstance(data, dict):
                return route.fulfill(response=answer)
            if "links" in data:
                data["links"] = {"page": evil, "code": "https://github.com/x/y", "pdf": "//evil.example/p"}
            for hit in data.get("results", []):
                hit.update(url=evil, venue=None)
            route.fulfill(response=answer, json=data)

        page.route("**/api/**", poisoned)
        page.goto(f"{base}/?q=speculative+decoding")
        page.wait_for_selector(".result")
        page.goto(f"{base}/paper/2306.00978")
        page.wait_for_selector(".paper-links a")
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        assert hrefs and all(h.startswith(("/", "https://")) and not h.startswith("//") for h in hrefs)
        assert "https://github.com/x/y" in hrefs and page.locator(".paper-links a:not([href])").count() == 2
        verdicts = page.evaluate(
            r"""() => ["https://arxiv.org/abs/1", "http://x.org/", "/paper/1", "/?q=a", "javascript:alert(1)",
                      " javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "//evil.example",
                      "/\\evil.example", "/\t/evil.example", "vbscript:x", "https:evil.example", ""].map(safeUrl)"""
        )  # fmt: skip
        assert verdicts == ["https://arxiv.org/abs/1", "http://x.org/", "/paper/1", "/?q=a"] + [None] * 10
        arxiv = page.evaluate(  # a link is called arXiv's by its host (an attacker's pass)
            r"""() => ["https://arxiv.org/abs/1", "http://export.arxiv.org/abs/1", "https://arxiv.org@evil.example/",
                      "https://evil.example/arxiv.org/abs/1", "https://notarxiv.org/", "x"].map(onArxiv)"""
        )  # fmt: skip
        assert arxiv == [True, True, False, False, False, False]
        page.unroute("**/api/**")
        problems.clear()
        try:
            page.add_script_tag(content="window.inlineRan = true")
        except Exception:  # noqa: BLE001 - Playwright may report the refused script itself
            pass
        assert page.evaluate("window.inlineRan === undefined")
        assert any("Content Security Policy" in p for p in problems)  # refused by the policy, not by chance
        browser.close()


def test_the_last_watch_is_shown_as_a_utc_day_whatever_the_readers_time_zone(toy_site):
    """Digests and windows are UTC days; the landing page showed the last watch in the browser's
    own zone: a watch at 23:30 UTC on 6 Dec read "7 Dec 2026" in Auckland (a helper's clock audit)."""
    from playwright.sync_api import sync_playwright

    def late_watch(route):
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "last_watch": "2026-12-06T23:30:00+00:00"})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for zone in ("Pacific/Auckland", "America/Los_Angeles"):
            page = browser.new_context(timezone_id=zone).new_page()
            page.route("**/api/overview", late_watch)
            page.goto(f"{toy_site}/")
            page.wait_for_selector(".stats")
            assert "6 Dec 2026" in page.inner_text(".stats"), zone
        browser.close()


def test_the_why_of_a_paper_below_a_name_alone_says_it_is_the_named_papers_related_work(toy_site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{toy_site}/?q=GPTQ")
        page.wait_for_selector(".result")
        first, second = page.locator(".result").nth(0), page.locator(".result").nth(1)
        for result in (first, second):
            result.locator(".why-button").click()
        assert "the question names it" in first.locator(".why").inner_text()
        assert "the question is a name alone" in second.locator(".why").inner_text()
        browser.close()


def test_a_result_linking_elsewhere_with_arxiv_org_in_its_path_is_not_called_arxiv(toy_site):
    """A hit's link is shown as "arXiv" by its host (`onArxiv`), not by "arxiv.org" anywhere in it:
    "https://evil.example/arxiv.org/abs/1" is an http link the API hands out, and is "link"."""
    from playwright.sync_api import sync_playwright

    elsewhere = "https://evil.example/arxiv.org/abs/1"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()

        def elsewhere_links(route):
            answer = route.fetch()
            data = answer.json()
            for hit in data.get("results", []) if isinstance(data, dict) else []:
                hit.update(url=elsewhere, venue=None)
            route.fulfill(response=answer, json=data)

        page.route("**/api/**", elsewhere_links)
        page.goto(f"{toy_site}/?q=speculative+decoding")
        page.wait_for_selector(".result")
        shown = page.eval_on_selector_all(f'.result a[href="{elsewhere}"]', "links => links.map(a => a.textContent)")
        browser.close()
    assert shown and set(shown) == {"link"}
