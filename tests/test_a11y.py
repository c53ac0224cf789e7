"""The page for everyone: axe-core finds no serious or critical violation on any view, and a
keyboard alone goes from a question to a copied BibTeX entry, with no network.

axe-core (MPL-2.0, vendored as tests/vendor/axe.min.js with its licence header and
tests/vendor/axe-core.LICENSE; `npm pack axe-core`, version in its header) runs inside the page.
The page's Content-Security-Policy forbids injected scripts, so these browser contexts bypass it;
tests/test_page.py checks the page under its policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_page import CHROMIUM, offline, with_a_digest  # noqa: F401 - pytestmark below reads CHROMIUM

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(not CHROMIUM, reason="Debian chromium not installed"),
]
BLOCKING = ("serious", "critical")
# A reader's taste as the page keeps it: one paper liked (its toggle shown pressed), one not for them.
LIKED = "localStorage.setItem('semsearch.taste', JSON.stringify({likes: ['2306.00978'], dislikes: ['2302.00003']}))"

# Each view, how to reach it, and what shows it is ready.
VIEWS = {
    "landing": ("/", ".treemap rect"),
    "results": ("/?q=speculative+decoding+with+a+draft+model", ".result"),
    "empty results": ("/?q=speculative+decoding&year_from=2030", ".empty"),
    "paper": ("/paper/2306.00978", ".related-list .result"),
    "unfiled paper": ("/paper/2302.00003", "#confirm-category"),
    "classify": ("/?view=classify", "#classify-form"),
    "taxonomy": ("/?view=taxonomy", ".tree details"),
    "node": ("/?view=node&category=Quantization", ".result"),
    "trends": ("/?view=trends&category=Quantization&category=Model+Compression", ".chart polyline"),
    "digest": ("/?view=digest", ".digest-group"),
    "liked": ("/?view=liked", "#recommended .result"),  # with the papers LIKED names, set below
    "api": ("/docs", ".endpoint"),
}


@pytest.fixture
def site(survey_corpus_index):
    from tests.test_page import serving

    with_a_digest(survey_corpus_index)
    base, stop = serving(survey_corpus_index)
    yield base
    stop()


def browser_page(p, *, dark: bool = False, width: int = 1280):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    context = browser.new_context(
        bypass_csp=True, viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light"
    )
    return browser, context, context.new_page()


def axe_problems(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']} {v['id']}: {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_axe_finds_nothing_serious_on_any_view(site, dark):
    from playwright.sync_api import sync_playwright

    found, errors = {}, []
    with sync_playwright() as p:
        browser, _, page = browser_page(p, dark=dark)
        page.add_init_script(LIKED)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        outside, failed = offline(page, site)
        for name, (path, ready) in VIEWS.items():
            page.goto(site + path)
            page.wait_for_selector(ready)
            page.wait_for_function("() => !document.querySelector('#view p')?.textContent.startsWith('Loading')")
            found[name] = axe_problems(page)
        browser.close()
    assert {name: problems for name, problems in found.items() if problems} == {}
    assert errors == [] and outside == [] and failed == []


def test_the_vendored_axe_keeps_its_licence_header():
    head = AXE.read_text(encoding="utf-8")[:600]
    assert head.startswith("/*! axe v") and "Mozilla Public" in head and "Deque Systems" in head


def test_by_keyboard_alone_from_a_question_to_a_copied_bibtex_entry(site):
    """Tab to the question, type, Enter; Tab to the first result's BibTeX button, Enter; the dialog
    takes the focus on Copy, Enter copies; Escape closes it and the focus returns to the button."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, context, page = browser_page(p)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
        outside, failed = offline(page, site)
        page.goto(site + "/")
        page.wait_for_selector(".treemap rect")
        for _ in range(10):  # the search field is among the first stops
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "q":
                break
        assert page.evaluate("document.activeElement.id") == "q"
        page.keyboard.type("speculative decoding with a draft model")
        page.keyboard.press("Enter")
        page.wait_for_selector(".result")
        first_title = page.inner_text(".result h3")
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate("[document.activeElement.textContent, !!document.activeElement.closest('.result')]")
            if focused == ["BibTeX", True]:
                break
        assert focused == ["BibTeX", True]
        page.keyboard.press("Enter")
        page.wait_for_selector("#bibtex-dialog[open]")
        assert page.evaluate("document.activeElement.id") == "copy-bibtex"
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#copy-bibtex').textContent === 'Copied'")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("@") and copied == page.inner_text("#bibtex-text")
        assert first_title.split(":")[0].lower()[:10] in copied.lower()
        page.keyboard.press("Escape")
        assert page.evaluate("document.activeElement.textContent") == "BibTeX"
        browser.close()
    assert outside == [] and failed == []
