"""The page in the states a tour does not meet: answers that are slow, fail or arrive after the
reader has moved on, an index whose every paper has an abstract, text that does not fit a phone's
width or runs right to left, and a keyboard on the treemap. Debian's Chromium, as tests/test_page.py."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.test_page import ARTIFACTS, CHROMIUM, offline, serving

pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(not CHROMIUM, reason="Debian chromium not installed"),
]

# Fetches whose URL holds a key wait that many milliseconds first: an answer the server is slow to give.
SLOW_FETCH = """(() => {
  const fetchNow = window.fetch;
  window.slow = {};
  window.fetch = async (url, options) => {
    for (const [part, ms] of Object.entries(window.slow)) {
      if (String(url).includes(part)) await new Promise((r) => setTimeout(r, ms));
    }
    return fetchNow(url, options);
  };
})();"""


@pytest.fixture(scope="module")
def site(unchanged_survey_corpus_index):
    base, stop = serving(unchanged_survey_corpus_index)
    yield base
    stop()


@contextmanager
def browsing(base: str, *, width: int = 1280):
    """A page cut off from every other host: (page, JS errors). No error may be left at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
        page.set_default_timeout(10_000)
        page.add_init_script(SLOW_FETCH)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        outside, _ = offline(page, base)
        yield page, errors
        browser.close()
    assert outside == []


def patched(page, pattern: str, **fields) -> None:
    """Answers of `pattern` as the server gives them, with `fields` set."""

    def answer(route):
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), **fields})

    page.route(pattern, answer)


def test_an_index_whose_every_paper_has_an_abstract_shows_no_stray_null(site):
    """The landing page left out its "indexed by title only" hint with `null`, which the DOM wrote
    as the word "null" under the statistics; a node's view did the same with a list chosen."""
    with browsing(site) as (page, errors):
        patched(page, "**/api/overview", with_abstract=10, papers=10)
        page.goto(site + "/")
        page.wait_for_selector(".treemap rect")
        assert "null" not in page.inner_text("main")
        page.goto(site + "/?view=node&category=Quantization&taxonomy=survey")
        page.wait_for_selector(".result")
        assert "null" not in page.inner_text("main")
    assert errors == []


def test_an_answer_that_arrives_after_the_reader_moved_on_is_not_drawn(site):
    """A paper slow to load, then "Classify a paper": the paper was drawn over the classify view
    when it came, under the classify view's URL; a slow search's "10 papers for …" was said over
    the taxonomy the reader had gone to."""
    with browsing(site) as (page, errors):
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        page.evaluate("window.slow['/api/papers/'] = 1500")
        page.locator(".result h3 a").first.click()
        page.click("#show-classify")
        page.wait_for_selector("#classify-form")
        page.wait_for_timeout(2500)  # the paper's answer has come by now
        assert page.inner_text("#view h2") == "Where does a paper belong?" and "/paper/" not in page.title()
        assert page.locator("#classify-form").count() == 1

        page.evaluate("window.slow = {'/api/search': 1500}")
        page.fill("#q", "quantizing weights")
        page.keyboard.press("Enter")
        page.click("#show-taxonomy")
        page.wait_for_selector(".tree details")
        page.wait_for_timeout(2500)
        assert page.inner_text("#view h2") == "Taxonomy" and "papers for" not in page.inner_text("#status")
    assert errors == []


def test_a_view_slow_to_answer_says_it_is_loading(site):
    """Only a search said "Searching…": a paper, a node or the landing page slow to answer left the
    last view and its status ("10 papers for …") in place, as if the click had done nothing."""
    with browsing(site) as (page, errors):
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        page.evaluate("window.slow['/api/papers'] = 1500")
        page.locator(".result h3 a").first.click()
        page.wait_for_timeout(300)
        assert page.inner_text("#status") == "Loading…" and page.get_attribute("#view", "aria-busy") == "true"
        page.wait_for_selector(".paper h2")
        page.wait_for_function("() => document.querySelector('#status').textContent === ''")
        assert page.get_attribute("#view", "aria-busy") is None
        page.click("#show-taxonomy")  # not slowed: no "Loading…" left behind once it is drawn
        page.wait_for_selector(".tree details")
        assert page.inner_text("#status") == ""
    assert errors == []


def test_a_failed_answer_is_said_in_words_where_the_reader_looks(site):
    """Failures the reader met: "cover more kinds of work" failing left "Loading related work…"
    for good (an uncaught error); a paper that is not there was said in the status line above the
    last search's ten results, still shown under the paper's URL; a server that is down was
    "Failed to fetch", a proxy's HTML 502 "HTTP 502"."""
    with browsing(site) as (page, errors):
        page.goto(site + "/paper/2306.00978")
        page.wait_for_selector(".related-list .result")
        busy = {"error": "the index is being republished: try again"}
        page.route("**/api/related/**", lambda route: route.fulfill(status=503, json=busy))
        page.check("#diverse")
        page.wait_for_selector(".related-list .error")
        assert page.inner_text(".related-list") == busy["error"]
        page.unroute("**/api/related/**")

        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        page.evaluate("go('/paper/9999.99999')")
        page.wait_for_selector("#view .error")
        assert page.locator(".result").count() == 0 and "9999.99999" in page.inner_text("#view")
        assert "9999.99999" in page.inner_text("#status.error")

        page.route("**/api/search?**", lambda route: route.fulfill(status=502, body="<h1>Bad Gateway</h1>"))
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector("#status.error")
        assert "server answered 502" in page.inner_text("#status")
        page.unroute("**/api/search?**")

        page.route("**/api/**", lambda route: route.abort("connectionrefused"))
        page.goto(site + "/?view=taxonomy")
        page.wait_for_selector("#status.error")
        assert "server did not answer" in page.inner_text("#status") and "fetch" not in page.inner_text("main")
    assert errors == []


def test_the_treemap_area_the_keyboard_is_on_is_outlined_as_every_control_is(site):
    """Tabbing onto the treemap showed no focus ring: its areas' `:focus` rule took the outline
    away and only lightened the area by a fifth, which nobody could tell from its neighbours."""
    with browsing(site) as (page, errors):
        page.goto(site + "/")
        page.wait_for_selector(".treemap rect")
        page.locator(".examples a").last.focus()
        page.keyboard.press("Tab")
        ring = page.evaluate(
            """() => { const e = document.activeElement, s = getComputedStyle(e);
                       return [e.tagName, s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor]; }"""
        )
        assert ring[0] == "rect" and ring[1] == "solid" and ring[2] >= 3, ring
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator(".treemap").screenshot(path=str(ARTIFACTS / "treemap-focus.png"))
    assert errors == []


WORD = "Supercalifragilisticexpialidociousquantizationwithoutanyspacesinthisword"


@pytest.mark.parametrize("path", ["/?q=speculative+decoding", "/paper/2306.00978", "/docs"])
def test_a_phone_320_pixels_wide_never_scrolls_sideways(site, path):
    """At 320 px (a small phone, or 1280 px zoomed to 400%), a word longer than the screen (the dev
    index holds an abstract with "states,inLLMtrainingcanemploylow-precision…") pushed the whole
    page sideways, and so did the API view's tables."""
    with browsing(site, width=320) as (page, errors):
        long_title = f"A title of many words and one that does not end: {WORD}{WORD}"
        patched(page, "**/api/papers/2306.00978", title=long_title, abstract=f"We study {WORD}{WORD}.")

        def long_hits(route):
            answer = route.fetch()
            data = answer.json()
            for hit in data["results"]:
                hit.update(title=long_title, abstract=f"We study {WORD}{WORD}. " * 3)
            route.fulfill(response=answer, json=data)

        page.route("**/api/search?**", long_hits)
        page.goto(site + path)
        page.wait_for_selector(".result, .endpoint")
        page.wait_for_function("() => !document.querySelector('#view').hasAttribute('aria-busy')")
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1]
        if path != "/docs":
            assert WORD in page.inner_text("main")  # wrapped, not hidden
    assert errors == []


def test_why_never_says_a_meaning_matches_below_nothing(site):
    """`explain.dense` is a cosine, below 0 for a paper found by its words alone (the dev index's
    "banana bread recipe with walnuts" gives -0.0041): "Why" said "meaning matches -0%", and a
    cosine of -0.2 would have been "-20%". Every share the page shows is 0–100%."""
    with browsing(site) as (page, errors):

        def below_nothing(route):
            answer = route.fetch()
            data = answer.json()
            for hit, dense in zip(data["results"], (-0.0041, -0.2, 1.0000002), strict=False):  # the first three
                hit["explain"]["dense"] = dense
            route.fulfill(response=answer, json=data)

        page.route("**/api/search?**", below_nothing)
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        whys = []
        for n in range(3):
            page.locator(".why-button").nth(n).click()
            whys.append(page.locator(".why").nth(n).inner_text())
        assert [why.split(";")[0].rstrip(".") for why in whys] == ["meaning matches 0%"] * 2 + ["meaning matches 100%"]
    assert errors == []


def test_a_title_and_abstract_in_arabic_read_right_to_left(site):
    """A paper in a right-to-left script was laid out left to right: its abstract "نقترح طريقة لضغط
    ذاكرة KV في النماذج …" showed its first words at the left, so read from the right it began in
    the middle, and its full stop stood at the wrong end. Titles and abstracts take their own direction."""
    title, abstract = "ضغط ذاكرة KV في النماذج الكبيرة؟", "نقترح طريقة لضغط ذاكرة KV في النماذج اللغوية الكبيرة."
    with browsing(site) as (page, errors):

        def arabic(route):
            answer = route.fetch()
            data = answer.json()
            data["results"][0].update(title=title, abstract=abstract)
            route.fulfill(response=answer, json=data)

        page.route("**/api/search?**", arabic)
        patched(page, "**/api/papers/2306.00978", title=title, abstract=abstract)
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        direction = "(e) => (e.matches(':dir(rtl)') ? 'rtl' : 'ltr')"
        first, second = page.locator(".result").nth(0), page.locator(".result").nth(1)
        assert first.locator("h3").evaluate(direction) == first.locator(".abstract").evaluate(direction) == "rtl"
        assert second.locator("h3").evaluate(direction) == "ltr"  # English stays as it was
        page.goto(site + "/paper/2306.00978")
        page.wait_for_selector(".paper h2")
        heading, words = page.locator(".paper h2"), page.locator(".paper > .abstract")
        assert heading.evaluate(direction) == words.evaluate(direction) == "rtl"
    assert errors == []


def test_why_and_related_say_whether_they_are_open(site):
    """The "Whole abstract" button told a screen reader it was expanded or not; "Why" and "Related", which
    open a passage below them in the same way, said nothing of it."""
    with browsing(site) as (page, errors):
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        first = page.locator(".result").first
        for button, opened in ((".why-button", ".why"), (".related-button", ".related")):
            control, opened = first.locator(f":scope > .actions {button}"), f":scope > {opened}"
            assert control.get_attribute("aria-expanded") == "false"
            control.click()
            assert control.get_attribute("aria-expanded") == "true" and first.locator(opened).is_visible()
            control.click()
            assert control.get_attribute("aria-expanded") == "false" and not first.locator(opened).is_visible()
    assert errors == []


def test_a_new_view_is_not_read_out_whole_and_the_keyboard_starts_at_its_heading(site):
    """The whole view was a live region: a screen reader read every result, or all 18 endpoints of
    the API, aloud as each view was drawn (and each opened list of related work). And the link
    followed was gone with the old view, so the keyboard started again at the top of the page.
    The status line says what a view found; the focus lands on the new view's heading."""
    with browsing(site) as (page, errors):
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        assert page.evaluate("document.querySelector('#view').closest('[aria-live]')") is None
        title = page.inner_text(".result h3")
        page.locator(".result h3 a").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector(".paper h2")
        page.wait_for_function("() => document.activeElement.tagName === 'H2'")
        assert page.evaluate("document.activeElement.textContent") == title
        page.keyboard.press("Tab")  # on into the paper, not back to the header
        assert page.evaluate("!!document.activeElement.closest('.paper')")

        page.fill("#q", "quantizing weights")  # a search keeps the focus in its field
        page.keyboard.press("Enter")
        page.wait_for_url("**quantizing**")
        page.wait_for_selector(".result")
        assert page.evaluate("document.activeElement.id") == "q"
    assert errors == []


@pytest.mark.parametrize("path", ["/?q=speculative+decoding", "/?q=speculative+decoding&year_from=2030"])
def test_a_result_list_has_a_heading_of_its_own(site, path):
    """Results were h3s straight under the page's h1 (axe: heading-order): a screen reader's list of
    headings had no "Results" to jump to, nor a level between."""
    with browsing(site) as (page, errors):
        page.goto(site + path)
        page.wait_for_selector(".result, .empty")
        levels = page.eval_on_selector_all("h1, h2, h3, h4", "hs => hs.map((h) => +h.tagName[1])")
        assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), levels
        assert page.inner_text("#view h2") == "Results for “speculative decoding”"
    assert errors == []


def test_a_damaged_index_under_the_open_page_is_said_on_it(site):
    """With the newest generation damaged under the running server (a label just confirmed on the
    page is in it), the server answers from the one before and /api/health says "degraded"; the
    page said nothing, and the label seemed to have vanished. It now says so above every view,
    as it does a failing watch, and says nothing once the index is whole again."""
    damaged = {
        "status": "degraded", "generation": "gen-000003", "papers": 1855,
        "integrity": "gen-000004 is damaged (vectors.faiss checksum mismatch); serving gen-000003",
    }  # fmt: skip
    with browsing(site) as (page, errors):
        health = {"answer": damaged}
        page.route("**/api/health", lambda route: route.fulfill(json=health["answer"]))
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        page.wait_for_selector("#notice:not([hidden])")
        assert "gen-000004 is damaged" in page.inner_text("#notice") and "older" in page.inner_text("#notice")
        health["answer"] = {
            "status": "degraded",
            "generation": "gen-000003",
            "watch": {"state": "failing", "last_error": "arXiv unreachable"},
        }
        page.click("#show-taxonomy")
        page.wait_for_function("() => document.querySelector('#notice').textContent.includes('arXiv unreachable')")
        assert "watch" in page.inner_text("#notice")
        health["answer"] = {"status": "ok", "generation": "gen-000005"}
        page.click("#show-classify")
        page.wait_for_selector("#notice[hidden]", state="attached")
    assert errors == []


@pytest.mark.parametrize("width", [320, 1280])
def test_every_button_keeps_its_label_on_one_line(site, width):
    """Breaking long words anywhere (so that they never push the page sideways) also broke the
    header's "Search" into "Searc / h": a flex item may shrink to its longest piece of a word."""
    with browsing(site, width=width) as (page, errors):
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".result")
        broken = page.eval_on_selector_all(
            "button",
            """bs => bs.filter((b) => b.offsetParent && b.textContent.trim()).filter((b) => {
                 const r = document.createRange(); r.selectNodeContents(b);
                 return new Set([...r.getClientRects()].map((line) => Math.round(line.top))).size > 1;
               }).map((b) => b.textContent)""",
        )
        assert broken == []
    assert errors == []


def test_more_results_by_keyboard_goes_on_at_the_first_new_result(site):
    """The "More results" link drew the list again, longer, and the keyboard started over at the top of
    the page: fifty Tabs back down to where the reader was. The focus now lands on the first new
    result."""
    with browsing(site) as (page, errors):
        page.goto(site + "/?q=speculative+decoding")
        page.wait_for_selector(".more a")
        page.locator(".more a").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelectorAll('#results > .result').length > 10")
        page.wait_for_function("() => document.activeElement.closest('.result')")
        eleventh = page.locator("#results > .result").nth(10)
        assert page.evaluate("document.activeElement.textContent") == eleventh.locator("h3").inner_text()
    assert errors == []


def contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two "rgb(r, g, b)" colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in colour[colour.index("(") + 1 : -1].split(",")[:3]]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_focus_ring_stands_out_from_the_page(site, scheme):
    """The focus ring was #f0b429 on white in the light scheme: 1.9:1, where a focus indicator needs
    3:1 against what is next to it (WCAG 1.4.11); a low-vision reader lost the keyboard's place."""
    with browsing(site) as (page, errors):
        page.emulate_media(color_scheme=scheme)
        page.goto(site + "/")
        page.wait_for_selector(".examples a")
        page.locator("#q").focus()
        page.keyboard.press("Tab")  # the Search button, then a link: rings drawn by the keyboard
        page.keyboard.press("Tab")
        ring, ground = page.evaluate(
            """() => [getComputedStyle(document.activeElement).outlineColor,
                      getComputedStyle(document.body).backgroundColor]"""
        )
        assert contrast(ring, ground) >= 3, (ring, ground)
    assert errors == []


def test_a_page_of_another_site_cannot_make_the_server_work(site):
    """A page on any site could have the reader's browser send GET /api/gaps (seconds of CPU each) to
    a server on loopback: the answers stayed unread, the work was done. Chromium says where such a
    request comes from; `localhost` is another site than `127.0.0.1`, so a page served as one asks
    the other as a foreign site would. Its own server's page, same-origin, is answered as before."""
    from playwright.sync_api import sync_playwright

    foreign = site.replace("127.0.0.1", "localhost")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(bypass_csp=True).new_page()  # the page's own policy would stop the fetch first
        page.goto(f"{foreign}/?view=classify")  # a page of "another site", as far as the browser can tell
        with page.expect_response(lambda r: r.url.startswith(site + "/api/search")) as asked:
            page.evaluate("url => fetch(url, {mode: 'no-cors'}).catch(() => null)", f"{site}/api/search?q=kv+cache")
        refused = asked.value.status
        own = page.evaluate("() => fetch('/api/search?q=kv+cache').then((r) => r.status)")
        browser.close()
    assert (refused, own) == (403, 200)


def test_papers_liked_on_any_view_give_what_to_read_next_and_stay_in_this_browser(site):
    """The CLI, the API and MCP recommend from papers one liked; the page had no way to say so. A
    Like toggle on every paper keeps it in this browser (not the index, which a page served to
    several readers would mix); "Liked papers" lists them, what to read next below them, and "Not
    for me" on a recommendation is sent as a dislike."""
    with browsing(site) as (page, errors):
        asked = []
        page.on("request", lambda r: asked.append(r.post_data_json) if r.url.endswith("/api/recommend") else None)
        page.goto(site + "/?q=quantizing+weights+to+4+bits")
        page.wait_for_selector(".result")
        likes = page.locator(".result > .actions .like-button")
        liked_ids = [page.locator(".result").nth(i).get_attribute("data-id") for i in (0, 2)]
        for i in (0, 2):
            likes.nth(i).click()
        page.reload()  # kept across a reload: the buttons say so
        page.wait_for_selector(".result")
        assert [likes.nth(i).get_attribute("aria-pressed") for i in range(3)] == ["true", "false", "true"]
        assert likes.first.inner_text().strip().endswith("Like")  # a toggle keeps its name

        page.click("#show-liked")
        page.wait_for_selector("#recommended .result")
        assert page.inner_text("h2") == "Papers you liked (2)"
        assert page.eval_on_selector_all(".liked li", "rows => rows.map(r => r.dataset.id)") == liked_ids
        shown = page.eval_on_selector_all("#recommended .result", "rs => rs.map(r => r.dataset.id)")
        assert len(shown) == 10 and not set(shown) & set(liked_ids)
        assert page.inner_text("#status") == "10 papers to read next, from 2 you liked"
        assert asked[-1] == {"likes": liked_ids, "dislikes": [], "k": 10, "details": True}

        page.locator("#recommended .result").first.locator("text=Not for me").click()
        page.wait_for_function(f"() => document.querySelector('.disliked li')?.dataset.id === {shown[0]!r}")
        page.wait_for_selector("#recommended .result")
        assert asked[-1]["dislikes"] == [shown[0]]
        assert shown[0] not in page.eval_on_selector_all("#recommended .result", "rs => rs.map(r => r.dataset.id)")
        page.locator(".liked li").first.locator("text=Remove").click()
        page.wait_for_function("() => document.querySelector('#view h2')?.textContent === 'Papers you liked (1)'")
        page.wait_for_selector("#recommended .result")
        page.wait_for_function("() => document.activeElement.tagName === 'H2'")  # the keyboard goes on from the heading

        # Liked on another index served at this address, or stored by something else: said, never a failure.
        page.evaluate("""localStorage.setItem('semsearch.taste',
            JSON.stringify({likes: ['2306.00978', '9999.99999', 7, null, '2306.00978'], dislikes: 'x'}))""")
        page.reload()
        page.wait_for_selector("#recommended .result")
        assert page.inner_text("h2") == "Papers you liked (1)"
        assert page.inner_text(".hint").startswith("1 paper you marked is not in this index")
        page.click("text=Forget them")
        page.wait_for_selector(".hint", state="detached")  # the view drawn again without them
        page.wait_for_selector("#recommended .result")
        assert page.evaluate("JSON.parse(localStorage.getItem('semsearch.taste'))") == {
            "likes": ["2306.00978"], "dislikes": []
        }  # fmt: skip
        page.evaluate("localStorage.setItem('semsearch.taste', '{not json')")
        page.reload()
        page.wait_for_selector(".empty")
        assert "None yet" in page.inner_text("#view")
    assert errors == []


def test_liked_papers_the_server_fails_to_read_are_not_called_missing_nor_offered_to_forget(site):
    """Any failure to read a liked paper counted it as "not in this index (marked on another one)",
    with "Forget them" beside it: a server stopped or restarting for a moment, and one click lost
    every like. Only a paper the index answers 404 for is missing; another failure is said as such."""
    stored = {"likes": ["2306.00978", "2211.10438"], "dislikes": []}
    with browsing(site) as (page, errors):
        page.goto(site + "/")
        page.evaluate("taste => localStorage.setItem('semsearch.taste', JSON.stringify(taste))", stored)
        page.route("**/api/papers/**", lambda route: route.abort())  # the server does not answer
        page.click("#show-liked")
        page.wait_for_selector("#view .error")
        assert "did not answer" in page.inner_text("#status")
        assert page.locator("text=Forget them").count() == 0 and "not in this index" not in page.inner_text("#view")
        assert page.evaluate("JSON.parse(localStorage.getItem('semsearch.taste'))") == stored
    assert errors == []


def test_a_stored_taste_of_the_wrong_shape_still_gives_what_to_read_next(site):
    """What localStorage holds is read, not trusted: an id that is not well-formed text (a lone
    surrogate) failed the whole view with "URI malformed", and a paper both liked and disliked (only
    written by something other than the page's buttons) was sent as both, which the API refuses."""
    with browsing(site) as (page, errors):
        page.goto(site + "/")
        page.evaluate("""localStorage.setItem('semsearch.taste',
            JSON.stringify({likes: ['2306.00978', '\\ud800', '2211.10438'], dislikes: ['2211.10438', 'x\\udc00']}))""")
        page.click("#show-liked")
        page.wait_for_selector("#recommended .result")
        assert page.inner_text("h2") == "Papers you liked (2)"
        assert page.locator(".disliked").count() == 0  # liked wins: the page's buttons never keep both
        assert page.inner_text("#status") == "10 papers to read next, from 2 you liked"
    assert errors == []


def test_likes_a_browser_will_not_store_last_until_the_page_closes_as_the_page_says(site):
    """Storage full or off: the page said "likes last until the page closes", but kept nothing at
    all, so the Like just pressed showed as not pressed and the liked view said "None yet"."""
    with browsing(site) as (page, errors):
        page.add_init_script(
            "Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };"
        )
        page.goto(site + "/?q=quantizing+weights+to+4+bits")
        page.wait_for_selector(".result")
        liked = page.locator(".result").first.get_attribute("data-id")
        button = page.locator(".result > .actions .like-button").first
        button.click()
        assert "likes last until the page closes" in page.inner_text("#status")
        assert button.get_attribute("aria-pressed") == "true"
        page.click("#show-liked")
        page.wait_for_selector("#recommended .result")
        assert page.eval_on_selector_all(".liked li", "rows => rows.map(r => r.dataset.id)") == [liked]
    assert errors == []
