"""`semsearch taxonomy propose`: papers given back to a list as a patch in the list's own format.

The lists here are written by the tests from facts (headings, titles, arXiv ids, venues, years):
no README prose is copied. The shared lists (../shared) are read when present, and skipped without.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from semsearch.paper import Paper, normalize_title
from semsearch.propose import MAX_TEMPLATE, list_key, propose, render_line, sections, unified_diff
from semsearch.sources.curated import parse_list
from semsearch.sources.survey import load_survey
from tests.conftest import SHARED, examples

ROOT = Path(__file__).resolve().parents[1]
LISTS = SHARED / "data" / "lists"
KV = "Model-Centric Methods/Efficient Inference/KV-Cache Optimization"
SPECULATIVE = "Model-Centric Methods/Efficient Inference/Speculative Decoding"
SHARED_LISTS = [
    "AIoT-MLSys-Lab__Efficient-LLMs-Survey.md",
    "October2001__Awesome-KV-Cache-Compression.md",
    "hemingkx__SpeculativeDecodingPapers.md",
]
NEW = Paper(
    id="2501.01234",
    title="Folding Caches into Few Bits",
    authors=["Ada Lovelace", "Alan Turing"],
    venue="ICML",
    year=2025,
)


@pytest.fixture
def semsearch(cli):
    """The real command (with the hashing model): in this process in the quick loop, in a process of
    its own in the full suite (conftest's `cli`). Exit code 0 required unless check=False."""
    return lambda *args, check=True: cli(*args, check=check)


# --- the line format of a section --------------------------------------------------------------------
# Three sections written here in the three shapes the shared lists use (facts only).
BREAK = "  "  # a markdown line break, as the two-line items end their first line
WRITTEN = "\n".join(
    [
        "# Test list",
        "",
        "## Quantization",
        "",
        "- Weight-only quantization of language models to four bits, <ins>arXiv, 2024</ins> "
        "[[Paper](https://arxiv.org/abs/2401.00001)]",
        "- SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language Models, "
        "<ins>ICML, 2023</ins> [[Paper](https://arxiv.org/abs/2211.10438)] "
        "[[Code]](https://github.com/mit-han-lab/smoothquant)",
        "",
        "## KV cache",
        "",
        "1. [**Compressing the key-value cache for long prompts.**](https://arxiv.org/abs/2305.00004) "
        "*Ada Lovelace, Alan Turing.* Arxiv 2023.",
        "",
        "2. [**SnapKV: LLM Knows What You are Looking for Before Generation.**](https://arxiv.org/abs/2404.14469) "
        "*Yuhong Li, Deming Chen.* Arxiv 2024. "
        "[![GitHub Repo stars](https://img.shields.io/github/stars/FasterDecoding/SnapKV)]"
        "(https://github.com/FasterDecoding/SnapKV)",
        "",
        "## Speculative decoding",
        "",
        "- **Speculative decoding with a small draft model**" + BREAK,
        "  *Ada Lovelace, Alan Turing.* [[pdf](https://arxiv.org/pdf/2302.00003)], 2023.02. "
        "![](https://img.shields.io/badge/Arxiv-orange)",
        "- **Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding Heads**" + BREAK,
        "  *Tianle Cai, Tri Dao.* [[pdf](https://arxiv.org/pdf/2401.10774)], "
        "[[code](https://github.com/FasterDecoding/Medusa)], 2024.01. "
        "![](https://img.shields.io/badge/ICML2024-orange) ![](https://img.shields.io/badge/Medusa-blue)",
        "",
    ]
)


def test_a_new_paper_is_written_like_the_plainest_line_of_its_section():
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    templates = [t for s in found.values() for t in s.templates]

    assert render_line(found["Quantization"], templates, NEW, "arXiv") == (
        "- Folding Caches into Few Bits, <ins>ICML, 2025</ins> [[Paper](https://arxiv.org/abs/2501.01234)]"
    )
    assert render_line(found["KV cache"], templates, NEW, "Arxiv") == (
        "3. [**Folding Caches into Few Bits.**](https://arxiv.org/abs/2501.01234) *Ada Lovelace, Alan Turing.* "
        "ICML 2025."
    )
    assert render_line(found["Speculative decoding"], templates, NEW, "Arxiv") == (
        "- **Folding Caches into Few Bits**  \n"
        "  *Ada Lovelace, Alan Turing.* [[pdf](https://arxiv.org/pdf/2501.01234)], 2025.01. "
        "![](https://img.shields.io/badge/ICML2025-orange)"
    )


def test_a_line_with_a_long_word_before_its_year_is_written_in_time():
    """A year after a run of word characters that does not end the text before it ("aaa…a! 2023")
    is replaced in time linear in the line: one line of 50,000 took 25 s, 100,000 two minutes."""
    from semsearch.propose import Template
    from semsearch.sources.curated import ListedPaper

    line = "- [A Title](https://arxiv.org/abs/2401.00001) " + "a" * 50_000 + "! 2023"
    template = Template(line, ListedPaper("A Title", "2401.00001"), extras=0)  # longer than `learn` takes
    started = time.monotonic()
    written = template.render(NEW, None, "arXiv")
    assert time.monotonic() - started < 3  # 0.01 s
    assert written == "- [Folding Caches into Few Bits](https://arxiv.org/abs/2501.01234) " + "a" * 50_000 + "! 2025"


def test_an_item_too_long_to_be_a_lists_form_is_not_imitated():
    """An item of 40,000 code links (1.2 MB) is no form of the list's lines: a new paper is written
    like the list's other items, else plainly, at once (imitating it took 43 s a paper)."""
    long_item = "- [A Title](https://arxiv.org/abs/2401.00001)" + " [[Code]](https://github.com/x)" * 40_000
    markdown = f"## Quantization\n\n{long_item}\n\n## Pruning\n\n- [Pruned](https://arxiv.org/abs/2401.00002) [[Code]](https://x.org)\n"
    found = sections(parse_list(markdown), markdown.splitlines())
    assert found["Quantization"].templates == []
    started = time.monotonic()
    written = render_line(found["Quantization"], found["Pruning"].templates, NEW, "arXiv")
    assert time.monotonic() - started < 3  # 0.001 s
    assert written == "- [Folding Caches into Few Bits](https://arxiv.org/abs/2501.01234)"


@pytest.mark.parametrize(
    "after, extras",
    [
        ("", 0),
        (" [pdf](https://arxiv.org/pdf/2401.00001)", 0),  # the paper's own arXiv link
        (" [![arXiv](https://img.shields.io/badge/arXiv-2401.00001-b31b1b.svg)](https://arxiv.org/abs/2401.00001)", 0),
        (" [[Code]](https://github.com/x)", 1),
        (" [[Code]](https://github.com/x) [[Blog]](https://x.org)", 2),
        (" [![Code](https://img.shields.io/badge/Code-blue)](https://github.com/x)", 1),
        (" [![Code](https://img.shields.io/badge/Code-blue)](https://github.com/x) [[Blog]](https://x.org)", 2),
        (" ![ICML](https://img.shields.io/badge/ICML_2024-orange)", 0),  # a venue badge, written anew
        (" ![Stars](https://img.shields.io/github/stars/x/y)", 1),  # a badge, not also a link
        (" ![ICML](https://img.shields.io/badge/ICML_2024-orange)[Code](https://github.com/x)", 1),  # no space
    ],
)  # fmt: skip
def test_an_items_extras_are_the_parts_of_its_paper_alone_a_new_line_would_drop(after, extras):
    """`render_line` imitates a section's plainest item: the one with the fewest such parts."""
    from semsearch.propose import Template
    from semsearch.sources.curated import ListedPaper

    item = "- [A Title](https://arxiv.org/abs/2401.00001)" + after
    template = Template.learn([item], ListedPaper("A Title", "2401.00001"))
    assert template is not None and template.extras == extras


@pytest.mark.parametrize(
    "item",
    [
        "- [Code](https://github.com/x)A Title [arXiv](https://arxiv.org/abs/2401.00001)",
        "- A Title[Code](https://github.com/x) [arXiv](https://arxiv.org/abs/2401.00001)",
    ],
)
def test_a_link_next_to_the_title_without_a_space_is_not_the_titles_own(item):
    from semsearch.propose import Template
    from semsearch.sources.curated import ListedPaper

    template = Template.learn([item], ListedPaper("A Title", "2401.00001"))
    assert template is not None and template.extras == 1


def test_a_section_whose_items_carry_a_venue_badge_writes_a_new_paper_with_one():
    """A bare badge `![ICML](…)` was counted as a part of its paper alone (as a link too): an item
    with its venue badge looked no plainer than a later one with a code link, which was imitated,
    and the new paper came without the badge the section's items carry."""
    markdown = (
        "## Quantization\n\n"
        "- [Quantizing Weights Well](https://arxiv.org/abs/2401.00001) ![ICML](https://img.shields.io/badge/ICML_2024-orange)\n"
        "- [Pruning Heads Fast](https://arxiv.org/abs/2401.00002) [[Code]](https://github.com/x/y)\n"
    )
    found = sections(parse_list(markdown), markdown.splitlines())
    written = render_line(found["Quantization"], [], NEW, "arXiv")
    assert written.startswith("- [Folding Caches into Few Bits](https://arxiv.org/abs/2501.01234) ![")
    assert "img.shields.io/badge/" in written and "github" not in written


@pytest.mark.parametrize("length, imitated", [(MAX_TEMPLATE, True), (MAX_TEMPLATE + 1, False)])
def test_an_item_of_at_most_max_template_characters_is_a_form_to_imitate(length, imitated):
    head = "- [A Title](https://arxiv.org/abs/2401.00001) "
    item = head + "x" * (length - len(head))
    markdown = f"## Quantization\n\n{item}\n"
    found = sections(parse_list(markdown), markdown.splitlines())
    assert len(item) == length and len(found["Quantization"].templates) == int(imitated)


@given(st.text(st.sampled_from("aZ9_-, .!é٣²ⅷ\u0301\n"), max_size=12))
@settings(max_examples=500, deadline=1000)
def test_the_word_before_a_year_is_the_one_the_old_pattern_found(text):
    """`_last_word` reads back from the end what `([A-Za-z][\\w\\-]*)[ ,]*$` found."""
    from semsearch.propose import _last_word

    found = re.search(r"([A-Za-z][\w\-]*)[ ,]*$", text)
    assert _last_word(text) == (found.start(1) if found else None)


@pytest.mark.parametrize(
    "badge, written",
    [
        ("[![arXiv](https://img.shields.io/badge/arXiv-2306.07629-b31b1b.svg)](https://arxiv.org/abs/2306.07629)",
         "[![arXiv](https://img.shields.io/badge/arXiv-2501.01234-b31b1b.svg)](https://arxiv.org/abs/2501.01234)"),
        ("[![PDF](https://img.shields.io/badge/PDF-red)](https://arxiv.org/pdf/2306.07629v1.pdf)",
         "[![PDF](https://img.shields.io/badge/PDF-red)](https://arxiv.org/pdf/2501.01234.pdf)"),
    ],
)  # fmt: skip
def test_a_badge_that_links_the_listed_papers_arxiv_page_links_the_new_ones(badge, written):
    """A list that links each paper by a badge wrapped in its arXiv link wrote the new paper's line
    with the listed paper's link (the badge was rewritten from the line as read, its link
    included) and an arXiv badge as an orange venue badge; a PDF badge, dropped, took the only link."""
    markdown = f"# L\n## H\n* **SqueezeLLM: Dense-and-Sparse Quantization** {badge}\n"
    listed = parse_list(markdown)
    line = render_line(sections(listed, markdown.splitlines())["H"], [], NEW, "arXiv")
    assert line == f"* **Folding Caches into Few Bits** {written}"


@pytest.mark.parametrize("mark", ["?", "!", "."])
def test_a_title_that_ends_with_its_own_mark_takes_no_period_after_it(mark):
    """The KV-cache list closes its bold titles with a period: "Worth the Wait?" came out "Wait?."."""
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    asking = replace(NEW, title=f"Are Caches Worth the Wait{mark}")
    assert render_line(found["KV cache"], [], asking, "Arxiv").startswith(
        f"3. [**Are Caches Worth the Wait{mark}**](https://arxiv.org/abs/2501.01234) *Ada Lovelace"
    )
    survey_like = render_line(found["Quantization"], [], asking, "arXiv")
    assert survey_like.startswith(f"- Are Caches Worth the Wait{mark}, <ins>")  # no period there to drop


def test_a_new_line_links_arxiv_as_most_of_its_sections_items_do():
    """The survey's pruning section links arXiv's abstract pages but for one arXiv DOI, on its last
    plain item: the line copied from that item gave every pruning paper proposed a DOI link."""
    markdown = "\n".join(
        [
            "# L",
            "## H",
            "- Paper one, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2301.00001)]",
            "- Paper two, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2301.00002)] [[Code](https://github.com/a/b)]",
            "- Paper three, <ins>arXiv, 2023</ins> [[Paper](https://doi.org/10.48550/arXiv.2301.00003)]",
            "",
        ]
    )
    proposals, _ = propose(markdown, _Store([NEW]), _Placer(["H"]))
    assert [p.line for p in proposals] == [
        "- Folding Caches into Few Bits, <ins>ICML, 2025</ins> [[Paper](https://arxiv.org/abs/2501.01234)]"
    ]


def test_a_stored_preprint_venue_is_the_lists_arxiv_and_a_lines_month_is_its_arxiv_month():
    """A maintainer's pass: a venue stored as "arXiv 2024" became an "arXiv2024" badge (68 lines of
    514), "arXiv, ICML 2024" an "arXiv,_ICML2024" one, and 2412.00876 published at a 2025 venue was
    written "2025.12"."""
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    templates = [t for s in found.values() for t in s.templates]
    speculative = found["Speculative decoding"]
    preprint = Paper(id="2412.00876", title="Folding Caches into Few Bits", venue="arXiv 2024", year=2024)
    assert render_line(speculative, templates, preprint, "Arxiv").endswith(
        "2024.12. ![](https://img.shields.io/badge/Arxiv-orange)"
    )
    later = Paper(id="2412.00876", title="Folding Caches into Few Bits", venue="arXiv, ICML 2025", year=2025)
    assert render_line(speculative, templates, later, "Arxiv").endswith(
        "2024.12. ![](https://img.shields.io/badge/ICML2025-orange)"
    )


def test_a_preprint_is_never_dated_before_arxiv_had_it_but_a_venue_may_come_first():
    """The survey's list dates some preprints a year before their arXiv ids (2308.14352, "2022"):
    written into a list as "Arxiv 2022". A workshop may precede the posting."""
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    templates = [t for s in found.values() for t in s.templates]
    early = Paper(id="2308.14352", title="Folding Caches into Few Bits", venue="arXiv", year=2022)
    assert render_line(found["KV cache"], templates, early, "Arxiv").endswith("Arxiv 2023.")
    workshop = Paper(id="2406.02542", title="Folding Caches into Few Bits", venue="ICML Workshop", year=2023)
    assert render_line(found["KV cache"], templates, workshop, "Arxiv").endswith("ICML Workshop 2023.")


def test_authors_and_venues_cannot_add_links_images_or_markup_to_a_line():
    """An author's name went into the patch as written: a working link and a remote image in a
    pull request (an attacker's pass)."""
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    templates = [t for s in found.values() for t in s.templates]
    hostile = replace(
        NEW,
        authors=["Ann Lee* [phish](https://evil.example/login) <img src=https://evil.example/t.png>", "<b>Eve</b>"],
        venue="ICML](https://evil.example) <script>",
    )
    for section in found.values():
        line = render_line(section, templates, hostile, "Arxiv")
        assert "evil.example" in line and "](https://evil" not in line and "<img" not in line, line
        assert "<b>" not in line and "<script" not in line and "Lee*" not in line, line
        assert [p.arxiv_id for p in parse_list(f"# t\n## x\n\n{line}\n").papers] == ["2501.01234"]


def test_a_paper_without_a_venue_gets_the_lists_own_spelling_of_arxiv_and_no_invented_authors():
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    bare = Paper(id="2502.00042", title="Another Cache Paper", published="2025-02-03")

    line = render_line(found["KV cache"], [], bare, "Arxiv")

    assert line == "3. [**Another Cache Paper.**](https://arxiv.org/abs/2502.00042) Arxiv 2025."


# "[Title](link) - *Surname et al.*, Venue Year.": the form of many awesome lists (written here).
ET_AL = "\n".join(
    [
        "# Another test list",
        "",
        "## Speculative decoding",
        "",
        "- [Fast Inference from Transformers via Speculative Decoding](https://arxiv.org/abs/2211.17192) - "
        "*Leviathan et al.*, ICML 2023.",
        "- [Accelerating Large Language Model Decoding with Speculative Sampling](https://arxiv.org/abs/2302.01318) - "
        "*Chen et al.*, arXiv 2023.",
        "",
    ]
)


def test_authors_are_written_as_the_section_abbreviates_them():
    """A section of "*Leviathan et al.*," lines got "*Ada Lovelace, Alan Turing.*,": every name, and
    "al."'s period kept as if it closed the names (a helper's pass, on a list of its own)."""
    found = sections(parse_list(ET_AL), ET_AL.splitlines())["Speculative decoding"]

    assert render_line(found, [], NEW, "arXiv") == (
        "- [Folding Caches into Few Bits](https://arxiv.org/abs/2501.01234) - *Lovelace et al.*, ICML 2025."
    )
    alone = replace(NEW, authors=["Ada Lovelace"])
    assert render_line(found, [], alone, "arXiv") == (
        "- [Folding Caches into Few Bits](https://arxiv.org/abs/2501.01234) - *Ada Lovelace*, ICML 2025."
    )
    # A name ending in "al." closes the names with its period, as any other: only "et al." is not one.
    closing = ET_AL.replace("*Leviathan et al.*", "*Yaniv Leviathan, Yossi Neal.*").replace(
        "*Chen et al.*", "*Charlie Chen, Noor Jamal.*"
    )
    found = sections(parse_list(closing), closing.splitlines())["Speculative decoding"]
    assert render_line(found, [], NEW, "arXiv") == (
        "- [Folding Caches into Few Bits](https://arxiv.org/abs/2501.01234) - *Ada Lovelace, Alan Turing.*, ICML 2025."
    )


def test_a_paper_without_authors_leaves_no_dangling_separator():
    """Without authors, "- *Leviathan et al.*, ICML 2023." became " -, arXiv 2025." (a helper's pass)."""
    found = sections(parse_list(ET_AL), ET_AL.splitlines())["Speculative decoding"]
    bare = Paper(id="2502.00042", title="Another Cache Paper", published="2025-02-03")

    assert render_line(found, [], bare, "arXiv") == (
        "- [Another Cache Paper](https://arxiv.org/abs/2502.00042) - arXiv 2025."
    )


def _skeleton(text: str, title: str) -> list[str]:
    """A line's markup with its facts blanked: the title, links' targets, authors (italics), years,
    dates and venues become placeholders, words become `w`, and the markup tokens remain."""
    at = text.lower().find(title.lower())
    text = text[:at] + "T" + text[at + len(title) :] if at != -1 else text
    text = re.sub(r"\]\([^)\s]*\)", "](U)", text)
    text = re.sub(r"(?<!\*)\*(?!\*)[^*\n]+?(?<!\*)\*(?!\*)", "A", text)
    text = re.sub(r"<ins>[^<]*</ins>", "<ins>V</ins>", text)
    text = re.sub(r"\b\d{4}\.\d{2}\b", "D", text)
    text = re.sub(r"\b(?:19|20)\d{2}\b", "Y", text)
    text = re.sub(r"^\s*\d+([.)])", r"N\1", text)
    tokens = re.findall(r"\*\*|<ins>|</ins>|!\[|\]\(|[A-Za-z][\w\-]*|[^\sA-Za-z]", text)
    collapsed: list[str] = []
    for token in tokens:
        word = token not in {"T", "U", "A", "V", "D", "Y", "N"} and token[0].isalpha()
        token = "w" if word else token
        if not (token == "w" and collapsed[-1:] == ["w"]):
            collapsed.append(token)
    return collapsed


def _subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(token in it for token in short)


@pytest.mark.skipif(not LISTS.exists(), reason="needs ../shared/data/lists")
@pytest.mark.parametrize("name", SHARED_LISTS)
def test_every_proposed_line_has_the_format_of_its_sections_lines_on_the_shared_lists(name):
    markdown = (LISTS / name).read_text(encoding="utf-8")
    listed = parse_list(markdown)
    lines = markdown.splitlines()
    found = sections(listed, lines)
    templates = [t for s in found.values() for t in s.templates]
    by_key = {list_key(p): p for p in listed.papers}
    checked = 0
    for node, section in found.items():
        if not section.templates:
            continue
        line = render_line(section, templates, NEW, "arXiv")
        # read back by the list's own parser, under that heading, it is the new paper
        heading = "#" * (node.count("/") + 2) + " " + node.rsplit("/", 1)[-1]
        back = parse_list(f"# t\n{heading}\n\n{line}\n").papers
        assert [(p.arxiv_id, normalize_title(p.title)) for p in back] == [(NEW.id, normalize_title(NEW.title))], line
        # and its markup is that of a line already there, less parts of that paper alone
        existing = [
            _skeleton("\n".join(lines[p.first : p.last + 1]), by_key[p.key].title)
            for p in listed.placements
            if p.node == node
        ]
        mine = _skeleton(line, NEW.title)
        assert any(_subsequence(mine, theirs) and mine[:4] == theirs[:4] for theirs in existing), (node, line)
        checked += 1
    assert checked >= 10


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=4, max_size=120),
    authors=st.lists(st.text(st.characters(whitelist_categories=("L",)), min_size=1, max_size=12), max_size=4),
)
@example(title=",0000", authors=[])  # a title that starts with a comma: the list marker keeps its space
def test_any_title_written_in_any_section_reads_back_as_that_paper(title, authors):
    readable = " ".join("".join(c for c in title if c.isprintable()).split())
    if len(normalize_title(readable)) < 4 or len(re.sub(r"[\W_]", "", readable)) < 4:
        return  # the parser ignores items whose title is too short to name a paper
    paper = Paper(id="2503.04567", title=title, authors=authors)
    listed = parse_list(WRITTEN)
    found = sections(listed, WRITTEN.splitlines())
    for node, section in found.items():
        line = render_line(section, [], paper, "arXiv")
        back = parse_list(f"# t\n## {node}\n\n{line}\n").papers
        assert [p.arxiv_id for p in back] == ["2503.04567"], line
        assert back[0].categories == [node]


TABLE = (
    "# T\n\n## Caches\n\n| Paper | Venue |\n|---|---|\n"
    "| [Evicting tokens from the key-value cache](https://arxiv.org/abs/2401.00001) | ICML 2024 |\n"
)
HOSTILE_TITLES = [
    "Quantized caches, see arxiv.org/abs/2306.00978 for the weights",  # another paper's arXiv address
    "10.48550/arXiv.2309.17453 Streaming caches",
    "# A heading of its own",
    "1. An ordered list of its own",
    "Caches | in | cells",
    "A title ending in a backslash \\",
    "Phishing https://evil.example/login and www.evil.example",
    "~~Struck~~ _emphasis_ &amp; entities",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_a_hostile_title_or_author_is_written_as_words_and_read_back_as_its_own_paper(title):
    """A proposed line read back by the list's parser is the proposed paper under its own title, and GitHub shows it
    with the markup of a plain line: a title naming another paper's arXiv address filed that paper
    instead, and titles or authors opened headings, lists, table cells and links (an attacker's pass)."""
    from tests.test_markup import GITHUB, _shown

    hostile, plain = replace(NEW, title=title, authors=[title, "Ada Lovelace"]), replace(NEW, title="Plain words")
    for markdown in (WRITTEN, TABLE):
        found = sections(parse_list(markdown), markdown.splitlines())
        for node, section in found.items():
            context = TABLE.split("| [")[0] if markdown is TABLE else f"# t\n## {node}\n\n"
            line, usual = (context + render_line(section, [], p, "arXiv") + "\n" for p in (hostile, plain))
            assert [(p.arxiv_id, p.categories) for p in parse_list(line).papers] == [(NEW.id, [node])], line
            assert parse_list(line).papers[0].title == title  # its words, not the escapes that keep them words
            assert _shown(line, GITHUB)[0] == _shown(usual, GITHUB)[0], line


def test_a_hostile_title_proposed_by_the_command_is_its_own_paper_once_the_patch_is_applied(
    semsearch, survey_corpus_index, tmp_path
):
    """As a maintainer meets it: `ingest jsonl` then `taxonomy propose` (a process of its own in the
    full suite), the patch applied with git, the list read back and rendered as GitHub does."""
    from tests.test_markup import GITHUB, _shown

    hostile = tmp_path / "hostile.jsonl"
    title = "# Caches | see arxiv.org/abs/2101.00001 and https://evil.example/x \\"
    record = {"id": "2501.04242", "title": title, "abstract": "We quantize the key-value cache to four bits."}
    hostile.write_text(json.dumps(record) + "\n")
    semsearch("ingest", "jsonl", hostile, "--index", survey_corpus_index)
    repo = tmp_path / "list"
    repo.mkdir()
    (repo / "README.md").write_text(survey_readme(set()), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    before = _shown((repo / "README.md").read_text(encoding="utf-8"), GITHUB)[0]
    patch = semsearch(
        "taxonomy", "propose", "survey", "--list", repo / "README.md", "--ids", "2501.04242",
        "--min-confidence", "0", "--index", survey_corpus_index,
    ).stdout  # fmt: skip
    (tmp_path / "p.diff").write_text(patch)
    subprocess.run(["git", "apply", tmp_path / "p.diff"], cwd=repo, check=True)
    after = (repo / "README.md").read_text(encoding="utf-8")
    taken = {p.arxiv_id for p in parse_list(after).papers}
    assert "2501.04242" in taken and "2101.00001" not in taken
    kinds = _shown(after, GITHUB)[0]
    assert kinds.count("heading_open") == before.count("heading_open")
    assert kinds.count("link_open") == before.count("link_open") + 1  # its own arXiv link, no other


# --- the patch ---------------------------------------------------------------------------------------
def test_the_diff_inserts_after_the_given_lines_in_the_files_line_endings(tmp_path):
    markdown = "# L\r\n\r\n## A\r\n- one [x](https://arxiv.org/abs/2401.00001)\r\n## B\r\n- two"
    diff = unified_diff(markdown, {3: ["- new"], 5: ["- last"]})
    (tmp_path / "README.md").write_bytes(markdown.encode())
    (tmp_path / "p.diff").write_text(diff, newline="")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "p.diff"], cwd=tmp_path, check=True)
    assert (tmp_path / "README.md").read_bytes() == (
        b"# L\r\n\r\n## A\r\n- one [x](https://arxiv.org/abs/2401.00001)\r\n- new\r\n## B\r\n- two\r\n- last\r\n"
    )


def survey_readme(leave_out: set[str]) -> str:
    """The packaged survey's papers (facts) as a README in the survey's line format, less some."""
    survey = load_survey()
    out = ["# Test survey list", ""]
    for node in survey.nodes:
        out.append("#" * min(node.count("/") + 2, 6) + " " + node.rsplit("/", 1)[-1])
        for paper in survey.papers:
            if node in paper.survey_categories and paper.arxiv_id and paper.arxiv_id not in leave_out:
                venue = f"{paper.venue or 'arXiv'}, {paper.year or 2024}"
                out.append(f"- {paper.title}, <ins>{venue}</ins> [[Paper](https://arxiv.org/abs/{paper.arxiv_id})]")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_the_patch_applies_to_its_readme_and_a_second_run_proposes_none_of_it_again(
    semsearch, survey_corpus_index, tmp_path, newline
):
    """A README with CRLF line ends was read with Python's newline translation: its patch had LF
    ends, and `git apply` refused it."""
    survey = load_survey()
    chosen = sorted({p.arxiv_id for p in survey.papers if p.arxiv_id})[::40]
    repo = tmp_path / "list"
    repo.mkdir()
    (repo / "README.md").write_bytes(survey_readme(set(chosen)).replace("\n", newline).encode())
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)

    first = semsearch(
        "taxonomy", "propose", "survey", "--list", repo / "README.md", "--ids", ",".join(chosen),
        "--min-confidence", "0", "--index", survey_corpus_index,
    )  # fmt: skip
    (tmp_path / "p.diff").write_text(first.stdout)
    assert first.stdout.startswith("--- a/README.md\n+++ b/README.md\n")
    assert first.stdout.count("\n+- ") == len(chosen)
    subprocess.run(["git", "apply", "--check", tmp_path / "p.diff"], cwd=repo, check=True)
    subprocess.run(["git", "apply", tmp_path / "p.diff"], cwd=repo, check=True)

    taken = parse_list((repo / "README.md").read_text(encoding="utf-8"))
    assert {p.arxiv_id for p in taken.papers} >= set(chosen)
    second = semsearch(
        "taxonomy", "propose", "survey", "--list", repo / "README.md", "--ids", ",".join(chosen), "--json",
        "--index", survey_corpus_index,
    )  # fmt: skip
    assert json.loads(second.stdout) == []


def test_json_gives_each_paper_its_heading_confidence_and_line_and_unsure_ones_stay_out_of_the_patch(
    semsearch, survey_corpus_index, tmp_path
):
    chosen = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})[::60]
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set(chosen)), encoding="utf-8")
    repeated = [part for paper_id in chosen for part in ("--ids", paper_id)]
    args = ["taxonomy", "propose", "survey", "--list", readme, *repeated, "--index", survey_corpus_index]

    rows = json.loads(semsearch(*args, "--json", "--min-confidence", "0").stdout)
    assert {r["id"] for r in rows} == set(chosen)
    assert all(set(r) == {"id", "title", "node", "confidence", "line", "unsure"} for r in rows)
    assert all(r["line"].startswith(f"- {r['title']}, <ins>") and not r["unsure"] for r in rows)
    assert all(0.0 <= r["confidence"] <= 1.0 and r["node"] in load_survey().nodes for r in rows)

    unsure = semsearch(*args, "--min-confidence", "1")
    assert unsure.stdout == ""  # no paper is sure at 1: nothing guessed into a patch
    assert len([line for line in unsure.stderr.splitlines() if line.startswith("unsure")]) == len(chosen)


def test_since_proposes_only_the_papers_that_appeared_on_or_after_the_day(semsearch, survey_corpus_index, tmp_path):
    # The survey's papers carry no date offline: a paper appeared in the month its arXiv id names.
    chosen = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})[::60]
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set(chosen)), encoding="utf-8")
    repeated = [part for paper_id in chosen for part in ("--ids", paper_id)]
    args = ["taxonomy", "propose", "survey", "--list", readme, *repeated, "--json", "--min-confidence", "0"]
    middle = chosen[len(chosen) // 2]
    day = f"20{middle[:2]}-{middle[2:4]}-01"
    later = json.loads(semsearch(*args, "--since", day, "--index", survey_corpus_index).stdout)
    assert {r["id"] for r in later} == {i for i in chosen if i[:4] >= middle[:4]}
    assert 0 < len(later) < len(chosen)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "2024-13-01"], "since"),
        (["--min-confidence", "2"], "min_confidence"),
        (["--min-confidence", "nan"], "min_confidence"),
        (["--ids", "9999.99999"], "no paper"),
        (["--ids", ",,"], "ids: List should have at least 1 item"),  # it proposed every paper
    ],
)
def test_bad_input_is_one_line_and_exit_2(semsearch, survey_corpus_index, tmp_path, args, says):
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set()), encoding="utf-8")
    done = semsearch(
        "taxonomy", "propose", "survey", "--list", readme, *args, "--index", survey_corpus_index, check=False
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr


def test_a_missing_or_damaged_readme_is_one_line_and_exit_2(semsearch, survey_corpus_index, tmp_path):
    damaged = tmp_path / "README.md"
    damaged.write_bytes(b"\xff\xfe\x00binary" * 100)
    for source in (tmp_path / "absent.md", damaged, tmp_path):
        done = semsearch("taxonomy", "propose", "survey", "--list", source, "--index", survey_corpus_index, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_an_unknown_list_or_one_whose_readme_the_index_never_kept_is_refused(semsearch, survey_corpus_index):
    unknown = semsearch("taxonomy", "propose", "nope", "--index", survey_corpus_index, check=False)
    assert unknown.returncode == 2 and "no taxonomy 'nope'" in unknown.stderr
    offline = semsearch("taxonomy", "propose", "survey", "--offline", "--index", survey_corpus_index, check=False)
    assert offline.returncode == 2 and "keeps no README" in offline.stderr


def test_the_count_of_one_proposed_paper_reads_as_one(semsearch, survey_corpus_index, tmp_path):
    """The count closing a patch of one paper read "1 papers proposed"."""
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme({"2306.00978"}), encoding="utf-8")
    done = semsearch(
        "taxonomy", "propose", "survey", "--list", readme, "--ids", "2306.00978", "--min-confidence", "0",
        "--index", survey_corpus_index,
    )  # fmt: skip
    assert done.stderr.splitlines()[-1].startswith("1 paper proposed, 0 unsure"), done.stderr


def test_the_refusal_for_a_missing_readme_shows_a_command_that_runs(semsearch, survey_corpus_index, tmp_path):
    """The refusal named `semsearch taxonomy propose --list FILE`, without the list's name: run as
    shown it failed on a missing argument. The command it shows, with a README for FILE, proposes."""
    refused = semsearch("taxonomy", "propose", "survey", "--offline", "--index", survey_corpus_index, check=False)
    shown = re.findall(r"`semsearch (taxonomy propose [^`]*)`", refused.stderr)
    assert len(shown) == 1, refused.stderr
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set()), encoding="utf-8")
    words = [str(readme) if word == "FILE" else word for word in shown[0].split()]
    done = semsearch(*words, "--offline", "--json", "--index", survey_corpus_index, check=False)
    assert done.returncode == 0 and isinstance(json.loads(done.stdout), list), done.stderr


# --- placement figures on two versions of a list -------------------------------------------------------
def test_eval_propose_places_the_papers_a_newer_list_added(semsearch, survey_only_index, tmp_path):
    survey = load_survey()
    added = sorted({p.arxiv_id for p in survey.papers if p.arxiv_id})[::25]
    old, new = tmp_path / "old.md", tmp_path / "new.md"
    old.write_text(survey_readme(set(added)), encoding="utf-8")
    new.write_text(survey_readme(set()), encoding="utf-8")

    report = json.loads(semsearch("eval", "propose", old, new, "--json", "--index", survey_only_index).stdout)

    assert report["added"] == len(added)
    assert 0.0 <= report["first_at_or_under"] <= report["top3_at_or_under"] <= 1.0
    assert report["proposed"] + report["unsure_or_out"] == len(added)


def test_eval_propose_scores_the_first_heading_against_the_maintainers_and_any_of_three():
    """In-process, on a list the index holds none of (each paper known by its title, embedded now):
    two new papers go where the maintainers put them; one on pruning, filed under Quantization,
    is right only among the three suggestions."""
    from semsearch.propose import evaluate_propose
    from tests.conftest import HashingModel
    from tests.test_gaps import PRUNING, QUANTIZATION, SPECULATIVE

    class Nothing:
        """A store holding no paper."""

        def find(self, paper_id):
            return None

        def vec_ids_with_title(self, title):
            return []

        def papers_by_vec_id(self, vec_ids):
            return {}

        def embeddings_for(self, vec_ids):
            return {}

        def iter_papers(self):
            return iter(())

    ids: dict[str, int] = {}

    def readme(added: dict[str, list[str]]) -> str:
        lines = ["# Toy list"]
        for heading, titles in [("Pruning", PRUNING), ("Quantization", QUANTIZATION), ("Speculative", SPECULATIVE)]:
            lines += ["", f"## {heading}", ""]
            for title in titles + added.get(heading, []):
                lines.append(f"- [{title}](https://arxiv.org/abs/2501.{ids.setdefault(title, len(ids) + 1):05d})")
        return "\n".join(lines) + "\n"

    old = readme({})
    new = readme(
        {
            "Pruning": ["Pruning attention heads by magnitude"],
            "Quantization": ["Pruning layers of pruning models"],
            "Speculative": ["Speculative decoding with many drafts"],
        }
    )
    model = HashingModel()

    assert evaluate_propose(Nothing(), old, new, model.encode) == {
        "added": 3,
        "with_abstract": 0,
        "first_at_or_under": 2 / 3,
        "top3_at_or_under": 1.0,
        "in_scope": 3,
        "on_topic": 3,
        "proposed": 3,
        "proposed_first_right": 2 / 3,
        "unsure_or_out": 0,
        "min_confidence": 0.35,
    }
    assert "Pruning layers of pruning models" in model.encoded  # the papers the index lacks, by their titles


def test_eval_propose_of_a_curated_list_keeps_what_it_proposes_to_the_lists_topic(
    semsearch, survey_only_index, tmp_path
):
    """A curated list's proposals are also judged by its own topic; the evaluation crashed on the
    topic step's two levels (a traceback, exit 1)."""
    papers = [p for p in load_survey().papers if p.arxiv_id]
    kinds = {"Caches": "KV-Cache", "Quantization": "Quantization"}
    chosen = {h: [p for p in papers if any(k in c for c in p.survey_categories)][:12] for h, k in kinds.items()}

    def readme(leave_out: set[str]) -> str:
        out = ["# A curated list", ""]
        for heading, listed in chosen.items():
            out += [f"## {heading}", ""]
            out += [f"- [{p.title}](https://arxiv.org/abs/{p.arxiv_id})" for p in listed if p.arxiv_id not in leave_out]
        return "\n".join(out) + "\n"

    added = {p.arxiv_id for listed in chosen.values() for p in listed[::4]}
    old, new = tmp_path / "old.md", tmp_path / "new.md"
    old.write_text(readme(added), encoding="utf-8")
    new.write_text(readme(set()), encoding="utf-8")
    report = json.loads(semsearch("eval", "propose", old, new, "--json", "--index", survey_only_index).stdout)
    assert report["added"] == len(added) and report["proposed"] <= report["on_topic"] <= len(added)


def test_eval_propose_refuses_two_versions_that_add_nothing(semsearch, survey_only_index, tmp_path):
    same = tmp_path / "same.md"
    same.write_text(survey_readme(set()), encoding="utf-8")
    done = semsearch("eval", "propose", same, same, "--index", survey_only_index, check=False)
    assert done.returncode == 2 and "adds no papers" in done.stderr


def test_your_label_in_the_survey_is_written_under_its_heading_whatever_the_classifier_says(
    semsearch, survey_corpus_index, tmp_path
):
    """`label ID NODE` says where a paper goes in the survey, as `label --taxonomy NAME` does in a list:
    `taxonomy propose survey` writes it there, sure, in scope or not (it was left out when out of scope)."""
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set()), encoding="utf-8")
    args = ["taxonomy", "propose", "survey", "--list", readme, "--json", "--index", survey_corpus_index]
    node = next(n for n in load_survey().nodes if n.endswith("/Post-Training Quantization"))
    before = [r for r in json.loads(semsearch(*args).stdout) if r["id"] == "2308.00007"]
    assert not before or (before[0]["node"], before[0]["confidence"]) != (node, 1.0)

    semsearch("label", "2308.00007", "Post-Training Quantization", "--index", survey_corpus_index)
    mine = [r for r in json.loads(semsearch(*args).stdout) if r["id"] == "2308.00007"]
    assert [(r["node"], r["confidence"], r["unsure"]) for r in mine] == [(node, 1.0, False)]
    patch = semsearch(*args[:-3], "--index", survey_corpus_index).stdout
    lines = patch.splitlines()
    added = [i for i, line in enumerate(lines) if line.startswith("+") and "2308.00007" in line]
    heading = next(i for i, line in enumerate(lines) if line.endswith(" Post-Training Quantization"))
    assert len(added) == 1 and added[0] > heading, patch


@pytest.mark.parametrize("asked", ["2308.00007v2", "https://arxiv.org/abs/2308.00007", "arXiv:2308.00007"])
def test_your_label_holds_for_a_paper_asked_for_by_any_form_of_its_id(semsearch, survey_corpus_index, tmp_path, asked):
    """`--ids` takes a paper by a version or a URL as it takes it by its id; its label holds all the
    same: it was placed by the classifier instead, less surely than 1, so a cutoff left it out."""
    readme = tmp_path / "README.md"
    readme.write_text(survey_readme(set()), encoding="utf-8")
    node = next(n for n in load_survey().nodes if n.endswith("/Post-Training Quantization"))
    semsearch("label", "2308.00007", "Post-Training Quantization", "--index", survey_corpus_index)
    args = ["taxonomy", "propose", "survey", "--list", readme, "--index", survey_corpus_index]
    args += ["--min-confidence", "0.99"]  # under 1: only the label makes it sure

    mine = json.loads(semsearch(*args, "--ids", asked, "--json").stdout)
    assert [(r["id"], r["node"], r["confidence"], r["unsure"]) for r in mine] == [("2308.00007", node, 1.0, False)]
    assert semsearch(*args, "--ids", asked).stdout == semsearch(*args, "--ids", "2308.00007").stdout != ""


@pytest.mark.skipif(not LISTS.exists(), reason="needs ../shared/data/lists")
def test_a_list_added_keeps_its_readme_for_propose(semsearch, survey_corpus_index, tmp_path):
    source = tmp_path / "kv.md"
    shutil.copy(LISTS / "October2001__Awesome-KV-Cache-Compression.md", source)
    semsearch("taxonomy", "add", "kv", source, "--offline", "--index", survey_corpus_index)
    source.unlink()  # propose reads the README the index kept, not the file
    rows = json.loads(
        semsearch(
            "taxonomy",
            "propose",
            "kv",
            "--ids",
            "2305.00004",
            "--min-confidence",
            "0",
            "--json",
            "--index",
            survey_corpus_index,
        ).stdout
    )
    assert [r["id"] for r in rows] == ["2305.00004"]
    assert rows[0]["line"].startswith(tuple(f"{n}. [**" for n in range(1, 400)))


def test_a_list_that_dates_each_item_first_gets_a_line_naming_the_new_paper_alone(
    semsearch, survey_corpus_index, tmp_path
):
    """Items as "1. 2023.10 - [Title](arXiv link) (Venue Year)" were read as titled "2023.10 -": the
    proposed line kept the listed paper's title beside the new one's ("5. New Title [Old Title](new
    link)"), and the list's own papers were stored under the date."""
    source = tmp_path / "dated.md"
    items = [
        "1. 2023.09 - [Caches Drafted in Layers](https://arxiv.org/abs/2309.99001) (ACL 2024)",
        "2. 2023.10 - [Drafts Verified in Trees](https://arxiv.org/abs/2310.99002) (ICLR 2024)",
        "3. 2023.11 - [Heads That Draft](https://arxiv.org/abs/2311.99003) (ICML 2024)",
    ]
    source.write_text("# Dated list\n\n## 🚀 Drafting\n\n" + "\n".join(items) + "\n", encoding="utf-8")
    semsearch("taxonomy", "add", "dated", source, "--offline", "--index", survey_corpus_index)
    rows = json.loads(
        semsearch(
            "taxonomy", "propose", "dated", "--ids", "2302.07863", "--min-confidence", "0", "--json",
            "--index", survey_corpus_index,
        ).stdout
    )  # fmt: skip
    line = rows[0]["line"]
    new = "[Speculative Decoding with Big Little Decoder](https://arxiv.org/abs/2302.07863)"
    assert line.startswith(f"4. 2023.02 - {new} (")
    assert "Heads That Draft" not in line
    held = semsearch(
        "taxonomy", "propose", "dated", "--ids", "2311.99003", "--json", "--index", survey_corpus_index
    )  # fmt: skip
    assert json.loads(held.stdout) == []


def test_a_list_linked_by_arxiv_badges_is_proposed_lines_linking_the_new_papers(
    semsearch, survey_corpus_index, tmp_path
):
    """Both proposed lines linked the section's last listed paper (its badge's link, kept as read)."""
    source = tmp_path / "badged.md"
    badge = "[![arXiv](https://img.shields.io/badge/arXiv-{0}-b31b1b.svg)](https://arxiv.org/abs/{0})"
    items = [f"* **{t}** " + badge.format(i) for t, i in [("Caches in Few Bits", "2309.99001"), ("Bits", "2310.99002")]]
    source.write_text("# Badged list\n\n## Quantization\n\n" + "\n".join(items) + "\n", encoding="utf-8")
    semsearch("taxonomy", "add", "badged", source, "--offline", "--index", survey_corpus_index)
    patch = semsearch(
        "taxonomy", "propose", "badged", "--ids", "2302.07863,2306.00978", "--min-confidence", "0",
        "--index", survey_corpus_index,
    ).stdout  # fmt: skip
    added = [line for line in patch.splitlines() if line.startswith("+*")]
    assert [re.findall(r"\d{4}\.\d{5}", line) for line in added] == [["2302.07863"] * 2, ["2306.00978"] * 2]


NOTED = [  # items with a note under them (a nested bullet) and blank-line-free tables with a row that is no paper
    "* **Caches in Few Bits** [arXiv](https://arxiv.org/abs/2309.99001)\n  * A note, 2023<br>on two lines\n"
    "* **Bits Everywhere** [arXiv](https://arxiv.org/abs/2310.99002)\n  * Its note, 2023\n",
    "| Title | Venue |\n|---|---|\n| [Caches in Few Bits](https://arxiv.org/abs/2309.99001) | ACL 2023 |\n"
    "| [Reforming Caches](https://openreview.net/forum?id=abc) | ICLR 2020 |\n"
    "| [Bits Everywhere](https://arxiv.org/abs/2310.99002) | ICML 2023 |\n",
]


@pytest.mark.parametrize("items", NOTED, ids=["noted items", "table"])
def test_a_new_item_goes_after_the_last_items_note_and_a_new_row_into_its_table(
    semsearch, survey_corpus_index, tmp_path, items
):
    """A new item went between the last paper and the nested note under it (the note then read as
    the new paper's), after a blank line it added: items with notes, and table rows with a row that
    is no paper between them, looked blank-separated. A new table row after a blank line is no row."""
    repo = tmp_path / "list"
    repo.mkdir()
    readme = f"# Noted list\n\n## Quantization\n\n{items}\n## Other\n\nText.\n"
    (repo / "README.md").write_text(readme, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    semsearch("taxonomy", "add", "noted", repo / "README.md", "--offline", "--index", survey_corpus_index)
    patch = semsearch(
        "taxonomy", "propose", "noted", "--ids", "2302.07863", "--min-confidence", "0", "--index", survey_corpus_index,
    ).stdout  # fmt: skip
    (tmp_path / "p.diff").write_text(patch)
    subprocess.run(["git", "apply", tmp_path / "p.diff"], cwd=repo, check=True)
    after = (repo / "README.md").read_text(encoding="utf-8")
    added = next(line for line in patch.splitlines() if line.startswith("+") and "2302.07863" in line)[1:]
    assert after == readme.replace(items, items + added + "\n")
    assert {p.arxiv_id: p.categories for p in parse_list(after).papers}["2302.07863"] == ["Quantization"]


def test_a_numbered_section_ending_in_an_item_that_is_no_paper_is_numbered_on_after_it(
    semsearch, survey_corpus_index, tmp_path
):
    """A numbered section whose last item links OpenReview (no paper to the parser) took its new
    items before that item, numbered as it is: "4. new" above "4. 2023.10 - [Online](openreview…)"."""
    repo = tmp_path / "list"
    repo.mkdir()
    items = [
        "1. 2023.09 - [Caches Drafted in Layers](https://arxiv.org/abs/2309.99001) (ACL 2024)",
        "2. 2023.10 - [Drafts Verified in Trees](https://arxiv.org/abs/2310.99002) (ICLR 2024)",
        "3. 2023.11 - [Heads That Draft](https://arxiv.org/abs/2311.99003) (ICML 2024)",
        "4. 2023.12 - [Drafting Online](https://openreview.net/forum?id=abc) (ICML 2024)",
    ]
    readme = "# Dated list\n\n## Drafting\n\n" + "\n".join(items) + "\n\n## Other\n\nText.\n"
    (repo / "README.md").write_text(readme, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    semsearch("taxonomy", "add", "dated", repo / "README.md", "--offline", "--index", survey_corpus_index)
    patch = semsearch(
        "taxonomy", "propose", "dated", "--ids", "2302.07863", "--min-confidence", "0", "--index", survey_corpus_index,
    ).stdout  # fmt: skip
    (tmp_path / "p.diff").write_text(patch)
    subprocess.run(["git", "apply", tmp_path / "p.diff"], cwd=repo, check=True)
    section = (repo / "README.md").read_text(encoding="utf-8").split("## Drafting\n\n")[1].split("\n\n")[0]
    assert section.splitlines()[:4] == items
    assert section.splitlines()[4].startswith("5. 2023.02 - [Speculative Decoding with Big Little Decoder](")


def test_a_paper_the_list_links_elsewhere_than_arxiv_is_not_proposed_again(semsearch, survey_corpus_index, tmp_path):
    """An item linking a paper's OpenReview page (no paper to the parser: no arXiv link, no bold
    title) was proposed again from the index's arXiv copy of the same title, in another case."""
    source = tmp_path / "linked.md"
    items = [
        "1. 2023.09 - [Caches Drafted in Layers](https://arxiv.org/abs/2309.99001) (ACL 2024)",
        "2. 2023.10 - [speculative decoding with big little decoder](https://openreview.net/forum?id=abc) (NeurIPS)",
        "3. 2023.11 - [Heads That Draft](https://arxiv.org/abs/2311.99003) (ICML 2024)",
    ]
    source.write_text("# Linked list\n\n## Drafting\n\n" + "\n".join(items) + "\n", encoding="utf-8")
    semsearch("taxonomy", "add", "linked", source, "--offline", "--index", survey_corpus_index)
    rows = semsearch(
        "taxonomy", "propose", "linked", "--ids", "2302.07863,2306.00978", "--min-confidence", "0", "--json",
        "--index", survey_corpus_index,
    ).stdout  # fmt: skip
    assert [row["id"] for row in json.loads(rows)] == ["2306.00978"]


def _kv_list(leave_out: set[str] = frozenset()) -> str:
    """A list of the survey's KV-cache and speculative-decoding papers (facts: headings, titles, ids)."""
    survey, out = load_survey(), ["# My list", ""]
    for heading, node in (("KV cache", KV), ("Speculative decoding", SPECULATIVE)):
        out += [f"## {heading}", ""]
        out += [
            f"- [{p.title}](https://arxiv.org/abs/{p.arxiv_id})"
            for p in survey.papers
            if node in p.survey_categories and p.arxiv_id and p.arxiv_id not in leave_out
        ]
        out.append("")
    return "\n".join(out)


def test_a_paper_the_lists_maintainers_took_out_is_not_proposed_again_unless_asked_for(
    semsearch, survey_corpus_index, tmp_path
):
    """A maintainer who deleted a paper from the README was offered it again by every later run:
    the rule was "any paper the README does not hold", and the index still held the paper."""
    taken_out = sorted(p.arxiv_id for p in load_survey().papers if KV in p.survey_categories and p.arxiv_id)[:2]
    (tmp_path / "v1.md").write_text(_kv_list(), encoding="utf-8")
    (tmp_path / "v2.md").write_text(_kv_list(set(taken_out)), encoding="utf-8")
    at = ("--index", survey_corpus_index)
    everything = ("--min-confidence", "0", "--json", *at)

    def proposed(*args) -> set[str]:
        return {row["id"] for row in json.loads(semsearch("taxonomy", "propose", "mine", *args, *everything).stdout)}

    semsearch("taxonomy", "add", "mine", tmp_path / "v1.md", "--offline", *at)
    # The README given to propose against took them out: the one the index kept held them.
    assert not proposed("--list", tmp_path / "v2.md") & set(taken_out)
    semsearch("taxonomy", "refresh", tmp_path / "v2.md", "--taxonomy", "mine", "--offline", *at)
    assert not proposed() & set(taken_out)
    # A later refresh keeps the record; asked for by id, a paper taken out is proposed.
    semsearch("taxonomy", "refresh", tmp_path / "v2.md", "--taxonomy", "mine", "--offline", *at)
    told = semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", *at).stderr
    assert f"not proposed again: 2 papers the list took out ({', '.join(taken_out)}); --ids proposes one" in told
    assert proposed("--ids", taken_out[0]) == {taken_out[0]}
    asked = semsearch("taxonomy", "propose", "mine", "--ids", taken_out[0], "--min-confidence", "0", *at)
    assert "not proposed again" not in asked.stderr and asked.stdout.count("\n+- [") == 1
    # The record goes with the README: an undo puts back the list that held them, a redo takes them out again.
    semsearch("taxonomy", "refresh", "--undo", "mine", *at)
    assert "not proposed again" not in semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", *at).stderr
    semsearch("taxonomy", "refresh", "--undo", "mine", *at)
    assert not proposed() & set(taken_out)
    # Put back in the list by its maintainers, a paper leaves the record.
    semsearch("taxonomy", "refresh", tmp_path / "v1.md", "--taxonomy", "mine", "--offline", *at)
    assert "not proposed again" not in semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", *at).stderr


def test_a_paper_taken_out_that_the_user_labels_in_the_list_is_proposed_and_not_said_to_be_left_out(
    semsearch, survey_corpus_index, tmp_path
):
    """The user's label in a list proposes the paper, taken out or not (as --ids does), and it was
    proposed; yet stderr said it was 'not proposed again', and the answer's `removed` named it."""
    taken_out = sorted(p.arxiv_id for p in load_survey().papers if KV in p.survey_categories and p.arxiv_id)[:2]
    (tmp_path / "v1.md").write_text(_kv_list(), encoding="utf-8")
    (tmp_path / "v2.md").write_text(_kv_list(set(taken_out)), encoding="utf-8")
    at = ("--index", survey_corpus_index)
    semsearch("taxonomy", "add", "mine", tmp_path / "v1.md", "--offline", *at)
    semsearch("taxonomy", "refresh", tmp_path / "v2.md", "--taxonomy", "mine", "--offline", *at)
    semsearch("label", taken_out[0], "KV cache", "--taxonomy", "mine", *at)
    done = semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", *at)
    assert f"/abs/{taken_out[0]})" in done.stdout
    assert f"not proposed again: 1 paper the list took out ({taken_out[1]}); --ids proposes one" in done.stderr


def test_a_list_added_in_place_of_another_took_nothing_out_of_it(semsearch, survey_corpus_index, tmp_path):
    """`taxonomy add NAME OTHER --replace` puts another list under the name, as `taxonomy remove` then
    `add` does: the first list's papers the second lacks were recorded as taken out of it by its
    maintainers, who never listed them, and no later run proposed them."""
    taken_out = sorted(p.arxiv_id for p in load_survey().papers if KV in p.survey_categories and p.arxiv_id)[:2]
    (tmp_path / "first.md").write_text(_kv_list(), encoding="utf-8")
    (tmp_path / "other.md").write_text(_kv_list(set(taken_out)), encoding="utf-8")
    at = ("--index", survey_corpus_index)
    semsearch("taxonomy", "add", "mine", tmp_path / "first.md", "--offline", *at)
    semsearch("taxonomy", "add", "mine", tmp_path / "other.md", "--replace", "--offline", *at)
    told = semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", *at).stderr
    assert "not proposed again" not in told, told
    rows = semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", "--json", *at).stdout
    assert set(taken_out) <= {row["id"] for row in json.loads(rows)}
    # Refreshed from then on, the list the name now holds records what its maintainers take out.
    later = max(re.findall(r"abs/([\d.]+)", _kv_list(set(taken_out))))
    (tmp_path / "other.md").write_text(_kv_list({*taken_out, later}), encoding="utf-8")
    semsearch("taxonomy", "refresh", tmp_path / "other.md", "--taxonomy", "mine", "--offline", *at)
    told = semsearch("taxonomy", "propose", "mine", "--min-confidence", "0", *at).stderr
    assert f"not proposed again: 1 paper the list took out ({later})" in told, told


def test_the_record_of_papers_taken_out_is_by_link_or_title_and_leaves_what_the_list_holds_again():
    from semsearch.propose import recorded_removals, removed_since

    before = "# L\n\n## H\n\n- [A Cache Paper](https://arxiv.org/abs/2401.00001)\n- [Drafts Galore](https://arxiv.org/abs/2401.00002)\n"
    relinked = (
        "# L\n\n## H\n\n- [A Cache Paper](https://openreview.net/forum?id=x) [pdf](https://arxiv.org/pdf/2401.00009)\n"
    )
    assert removed_since(before, relinked) == {"2401.00002"}  # the first is still listed, by its title
    assert removed_since(None, relinked) == set()  # a list seen for the first time took nothing out
    recorded = recorded_removals(None, before, relinked)
    assert json.loads(recorded) == ["2401.00002"]
    assert json.loads(recorded_removals(recorded, relinked, before)) == []  # listed again: out of the record
    assert recorded_removals(recorded, relinked, None) == recorded  # no README: the record stands


def test_every_door_says_which_papers_the_list_took_out(survey_corpus_index, cli, tmp_path):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    taken_out = sorted(p.arxiv_id for p in load_survey().papers if KV in p.survey_categories and p.arxiv_id)[:1]
    (tmp_path / "v1.md").write_text(_kv_list(), encoding="utf-8")
    (tmp_path / "v2.md").write_text(_kv_list(set(taken_out)), encoding="utf-8")
    cli("taxonomy", "add", "mine", tmp_path / "v1.md", "--offline", "--index", survey_corpus_index, check=True)
    cli("taxonomy", "refresh", tmp_path / "v2.md", "--taxonomy", "mine", "--offline", "--index", survey_corpus_index)
    with TestClient(create_app(index_dir=survey_corpus_index)) as client:
        answer = client.get("/api/propose", params={"taxonomy": "mine", "min_confidence": 0})
    assert answer.status_code == 200 and answer.json()["removed"] == taken_out
    assert taken_out[0] not in {p["id"] for p in answer.json()["proposals"]}


# --- any list, any papers: the patch applies and files each paper where it was placed ---------------------
class _Store:
    """The calls `propose` makes of an index, over a few papers."""

    def __init__(self, papers: list[Paper]):
        self.papers = dict(enumerate(papers))

    def iter_papers(self):
        return iter(self.papers.items())

    def find(self, paper_id):
        return next((v for v, p in self.papers.items() if p.id == paper_id), None)

    def papers_by_vec_id(self, vec_ids):
        return {v: self.papers[v] for v in vec_ids}

    def embeddings_for(self, vec_ids):
        return {v: np.full(4, v, dtype=np.float32) for v in vec_ids}  # a paper's vector says its vec_id

    def embedding(self, vec_id):
        return self.embeddings_for([vec_id])[vec_id]

    def vec_ids_with_title(self, title):
        return [v for v, p in self.papers.items() if normalize_title(p.title) == normalize_title(title)]


class _Placer:
    """A classifier that places paper i under leaf i mod n, surely, and finds every paper in scope."""

    def __init__(self, leaves: list[str]):
        self.leaves = leaves

    def scope_probabilities(self, texts, vectors):
        return np.ones(len(vectors))

    def leaf_scores(self, texts, vectors):
        scores = np.zeros((len(texts), len(self.leaves)))
        for row, text in enumerate(texts):
            words = text.split()
            scores[row, int(words[1]) % len(self.leaves) if len(words) > 1 and words[1].isdigit() else 0] = 1.0
        return scores

    def probabilities(self, scores):
        return scores


STYLES = [
    "- {t}, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/{i})]",
    "{n}. [**{t}.**](https://arxiv.org/abs/{i}) *Ada Lovelace.* Arxiv 2024.\n",
    "- **{t}**  \n  *Ada Lovelace.* [[pdf](https://arxiv.org/pdf/{i})], 2024.01. ![](https://img.shields.io/badge/Arxiv-orange)",
]


@pytest.mark.slow
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sections_=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=4),
    new=st.integers(1, 6),
    crlf=st.booleans(),
    odd=st.sampled_from(["", "\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029"]),
)
def test_any_list_takes_its_patch_and_then_holds_each_paper_under_its_heading(
    tmp_path_factory, sections_, new, crlf, odd
):
    """`odd`: a character Python's `splitlines` takes for a line end and git does not, at the end of
    the intro and of every item: the patch's line numbers must be git's."""
    out, leaves, serial = ["# A list", f"An intro{odd} in two parts", ""], [], 0
    for number, (style, items) in enumerate(sections_):
        leaves.append(f"Heading {number}")
        out += [f"## Heading {number}", ""]
        for n in range(1, items + 1):
            serial += 1
            out.append(STYLES[style].format(t=f"Listed paper number {serial}", i=f"2401.{serial:05d}", n=n) + odd)
    markdown = ("\r\n" if crlf else "\n").join(out) + ("\r\n" if crlf else "\n")
    papers = [Paper(id=f"2502.{k:05d}", title=f"Paper {k} about caches") for k in range(new)]

    proposals, patch = propose(markdown, _Store(papers), _Placer(leaves), min_confidence=0.0)

    repo = tmp_path_factory.mktemp("list")
    (repo / "README.md").write_bytes(markdown.encode())
    (repo / "p.diff").write_bytes(patch.encode())
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "apply", "p.diff"], cwd=repo, check=True, capture_output=True)
    taken = {p.arxiv_id: p.categories for p in parse_list((repo / "README.md").read_bytes().decode()).papers}
    assert {p.id: [p.node] for p in proposals} == {p.id: taken[p.id] for p in papers}
    again, second = propose((repo / "README.md").read_bytes().decode(), _Store(papers), _Placer(leaves))
    assert again == [] and second == ""


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("blank", [False, True])
def test_a_section_kept_in_arxiv_order_takes_each_new_paper_at_its_place(tmp_path, newest_first, blank):
    """A speculative-decoding list runs oldest first; its new lines of 2023 went after those of 2026,
    and its maintainer moved each by hand. A numbered section, or one in no order, still grows at its end."""
    ids = ["2301.00001", "2305.00001", "2401.00001", "2402.00001"][:: -1 if newest_first else 1]
    items = [f"- [Listed paper {i}](https://arxiv.org/abs/{i})" for i in ids]
    body = "\n\n".join(items) if blank else "\n".join(items)
    markdown = f"# L\n\n## H\n\n{body}\n\n## Other\n\n- [Other paper](https://arxiv.org/abs/2402.00009)\n"
    papers = [Paper(id=i, title=f"New paper {i}") for i in ("2212.00002", "2303.00002", "2303.00003", "2412.00002")]
    papers.append(Paper(id="2305.00002", title="New paper of the month of a listed one"))
    proposals, patch = propose(markdown, _Store(papers), _Placer(["H"]), min_confidence=0.0)
    (tmp_path / "README.md").write_text(markdown)
    (tmp_path / "p.diff").write_text(patch)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "p.diff"], cwd=tmp_path, check=True)
    text = (tmp_path / "README.md").read_text()
    listed = re.findall(r"arxiv.org/abs/([0-9.]+)", text.split("## Other")[0])
    # By month (an id's first four digits); a new paper of a listed one's month goes after it.
    oldest_first = ["2212.00002", "2301.00001", "2303.00002", "2303.00003", "2305.00001", "2305.00002"]
    oldest_first += ["2401.00001", "2402.00001", "2412.00002"]
    newest_first_ = ["2412.00002", "2402.00001", "2401.00001", "2305.00001", "2305.00002", "2303.00003"]
    newest_first_ += ["2303.00002", "2301.00001", "2212.00002"]
    expected = newest_first_ if newest_first else oldest_first
    assert listed == expected and len(proposals) == 5
    gaps = re.findall(r"\)\n\n- \[", text.split("## Other")[0])
    assert (len(gaps) == len(expected) - 1) if blank else not gaps  # the section's own spacing


def test_a_section_ordered_by_the_months_its_items_show_takes_a_new_paper_by_that_month():
    """The speculative-decoding list shows each item's month ("2023.12") and orders by it, whatever
    the link: an OpenReview one, or an arXiv id of a later month. Dated by arXiv ids alone, a 2024.01
    line went above 2023.12 ones (or, the order not seen, to the section's end)."""
    shown = [
        ("2311.00001", "https://arxiv.org/pdf/2311.00001", "2023.11"),
        (None, "https://openreview.net/pdf?id=abc", "2023.12"),
        ("2405.00001", "https://arxiv.org/pdf/2405.00001", "2023.12"),
        ("2401.00005", "https://arxiv.org/pdf/2401.00005", "2024.01"),
        ("2402.00001", "https://arxiv.org/pdf/2402.00001", "2024.02"),
    ]
    items = [f"- **Listed paper {n}**{BREAK}\n  [[pdf]({url})], {month}." for n, (_, url, month) in enumerate(shown)]
    markdown = "# L\n\n## H\n\n" + "\n".join(items) + "\n"
    proposals, patch = propose(markdown, _Store([Paper(id="2401.00009", title="A new one")]), _Placer(["H"]))
    lines = patch.splitlines()
    at = lines.index(f"+- **A new one**{BREAK}")
    assert [p.id for p in proposals] == ["2401.00009"] and lines[at + 1].endswith("], 2024.01."), patch
    assert lines[at - 1].endswith("2024.01.") and lines[at + 2] == f" - **Listed paper 4**{BREAK}", patch  # 2024.02


def test_a_paper_whose_title_no_list_item_could_carry_is_not_proposed():
    """A title the list's parser would not take as a paper (under four characters, e.g. a PDF's
    broken "ING") would be proposed again on every run after the list took it."""
    markdown = "# L\n\n## H\n\n- A listed paper, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]\n"
    papers = [Paper(id="2502.00001", title="ING"), Paper(id="2502.00002", title="A real title")]
    proposals, patch = propose(markdown, _Store(papers), _Placer(["H"]), min_confidence=0.0)
    assert [p.id for p in proposals] == ["2502.00002"] and patch.count("\n+- ") == 1


def test_a_paper_the_list_gives_under_another_items_link_is_not_proposed_again():
    """Two items linking one arXiv id (a slip in the list) are one record; the second item's
    paper, in the index under its own id, was offered back to the list as new."""
    markdown = (
        "# L\n\n## H\n\n- A listed paper, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]\n"
        "- Another listed paper, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]\n"
    )
    listed = parse_list(markdown)
    assert [(p.title, p.other_titles) for p in listed.papers] == [("A listed paper", ["Another listed paper"])]
    papers = [Paper(id="2502.00001", title="Another Listed Paper"), Paper(id="2502.00002", title="A new paper")]
    proposals, _ = propose(markdown, _Store(papers), _Placer(["H"]), min_confidence=0.0)
    assert [p.id for p in proposals] == ["2502.00002"]


def test_a_paper_the_list_holds_is_not_proposed_from_its_pdf_read_copy():
    """The survey's list was proposed LoRA, Performers, PoSE, Scatterbrain, Compacter and
    expert-choice routing, which it holds by title, from the arXiv copies whose titles a PDF gave
    with its spacing garbled or its authors run on (dev index, `taxonomy propose survey`: 641 → 635);
    phi-1.5, whose title runs on from phi-1's, is another arXiv paper (an attacker's pass)."""
    markdown = (
        "# L\n\n## H\n\n- LoRA: Low-Rank Adaptation of Large Language Models, <ins>ICLR, 2022</ins> "
        "[[Paper](https://openreview.net/forum?id=nZeVKeeFYf9)]\n"
        "- Rethinking Attention with Performers, <ins>ICLR, 2021</ins> [[Paper](https://openreview.net/forum?id=Ua6z)]\n"
        "- Attention Is All You Need, <ins>NeurIPS, 2017</ins> [[Paper](https://arxiv.org/abs/1706.03762)]\n"
        "- Textbooks Are All You Need, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2306.11644)]\n"
    )
    papers = [
        Paper(id="2106.09685", title="LORA: L OW-RANK ADAPTATION OF LARGE LANGUAGE MODELS Edward Hu Yelong Shen"),
        Paper(id="2009.14794", title="RETHINKING ATTENTION WITH PERFORMERS Krzysztof Choromanski 1, Valerii"),
        Paper(id="2502.00003", title="Attention Is All You Need In Speech Separation"),  # another paper
        Paper(id="2309.05463", title="Textbooks Are All You Need II: phi-1.5 technical report"),  # another arXiv id
        Paper(id="2502.00004", title="Attention is all you need"),  # the very title: held, whatever its id
    ]
    proposals, _ = propose(markdown, _Store(papers), _Placer(["H"]), min_confidence=0.0)
    assert sorted(p.id for p in proposals) == ["2309.05463", "2502.00003"]


def test_a_paper_is_proposed_without_the_authors_its_pdf_ran_on_after_its_title():
    """41 of the 634 papers the dev index proposed to the survey's list carried their authors in
    their titles ("... of Large Language Models Liang Li, Qingyuan Li, Bo Zhang, Xiangxiang Chu"),
    read from a PDF; a maintainer would have pasted the names as title."""
    markdown = "# L\n\n## H\n\n- A listed paper, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]\n"
    papers = [Paper(id="2502.00001", title="Fast Decoding of Small Models Ada Lovelace, Alan Turing, Grace Hopper")]
    (proposal,), patch = propose(markdown, _Store(papers), _Placer(["H"]), min_confidence=0.0)
    assert proposal.title == "Fast Decoding of Small Models"
    assert (
        proposal.line
        == "- Fast Decoding of Small Models, <ins>arXiv, 2025</ins> [[Paper](https://arxiv.org/abs/2502.00001)]"
    )
    assert "Lovelace" not in patch


def test_a_paper_out_of_scope_is_proposed_only_when_asked_for_by_id():
    """Out of scope (a scope probability under one half, however near) is not the list's topic:
    never proposed on its own, but placed when its id is asked for."""
    markdown = "# L\n\n## H\n\n- A listed paper, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]\n"
    papers = [Paper(id="2502.00001", title="Folding proteins"), Paper(id="2502.00002", title="Decoding faster")]

    class JustOutside(_Placer):
        def scope_probabilities(self, texts, vectors):
            return np.where(vectors[:, 0] == 0, 0.499, 0.5)  # vec_id 0 just under one half

    proposals, _ = propose(markdown, _Store(papers), JustOutside(["H"]), min_confidence=0.0)
    assert [p.id for p in proposals] == ["2502.00002"]
    proposals, _ = propose(markdown, _Store(papers), JustOutside(["H"]), ids=["2502.00001"], min_confidence=0.0)
    assert [p.id for p in proposals] == ["2502.00001"]


CACHE_WORDS = ["key value cache eviction", "kv cache compression", "cache token eviction", "evicting cached keys"]
QUANT_WORDS = ["weight quantization bits", "low bit integer weights", "quantized weights rounding", "bits per weight"]


def _titled(words: list[str], n: int, start: int) -> list[Paper]:
    """Papers whose titles differ by their topic's words only (with an abstract: titles embedded anew)."""
    return [
        Paper(id=f"2501.{start + i:05d}", title=f"{words[i % len(words)]} variant {start + i}", abstract="An abstract.")
        for i in range(n)
    ]


def test_a_list_is_offered_papers_on_its_own_topic_not_all_of_its_field():
    """A list's classifier calls in scope what is efficient-LLM work, and a KV-cache list was offered
    weight quantization (a list's own scope, docs/evaluation.md). `on_topic` separates the list's
    titles from the rest of the index: of candidates all in scope, only its topic's are proposed."""
    from semsearch.propose import MIN_TOPIC_PAPERS, Candidate, on_topic
    from tests.conftest import HashingModel

    embed = HashingModel().encode
    listed = [Candidate(p, None) for p in _titled(CACHE_WORDS, 12, 0)]
    cache, quant = _titled(CACHE_WORDS, 6, 100), _titled(QUANT_WORDS, 6, 200)
    field = [Candidate(p, None) for p in _titled(QUANT_WORDS + ["pruning heads", "draft decoding"], 30, 300)]
    kept = on_topic(listed, [Candidate(p, None) for p in cache + quant], field, embed)
    assert kept.near[:6].sum() >= 5 and not kept.near[6:].any(), kept
    assert not (kept.sure & ~kept.near).any() and kept.sure[:6].sum() >= 4  # sure: nearer still
    # Too few papers to learn a topic from: scope alone decides, as before.
    few = on_topic(listed[: MIN_TOPIC_PAPERS - 1], [Candidate(p, None) for p in quant], field, embed)
    assert few.near.all() and few.sure.all()

    lines = "".join(f"- [{p.title}](https://arxiv.org/abs/{p.id})\n" for p in (c.paper for c in listed))
    markdown = f"# L\n\n## Caches\n\n{lines}"
    store = _Store(cache + quant + [c.paper for c in field])
    proposed, _ = propose(markdown, store, _Placer(["Caches"]), min_confidence=0.0, embed=embed)
    offered = {p.id for p in proposed}
    assert offered and offered <= {p.id for p in cache}  # in scope, all; on the list's topic, these
    everything, _ = propose(markdown, store, _Placer(["Caches"]), min_confidence=0.0)
    assert {p.id for p in quant} <= {p.id for p in everything}  # without the model: scope alone


def test_a_paper_at_the_edge_of_a_lists_topic_is_listed_apart_not_written_into_the_patch(monkeypatch):
    """On the topic at 9 in 10 of the list's own papers, 120 lines went into a KV-cache list's patch,
    few on KV caches; under 3 in 4 a paper is now unsure, and says why."""
    from semsearch import propose as module
    from semsearch.propose import Proposal, text_report
    from tests.conftest import HashingModel

    embed = HashingModel().encode
    lines = "".join(f"- [{p.title}](https://arxiv.org/abs/{p.id})\n" for p in _titled(CACHE_WORDS, 12, 0))
    markdown = f"# L\n\n## Caches\n\n{lines}"
    store = _Store(_titled(CACHE_WORDS, 6, 100) + _titled(QUANT_WORDS + ["pruning heads", "draft decoding"], 30, 300))
    sure, patch = propose(markdown, store, _Placer(["Caches"]), min_confidence=0.0, embed=embed)
    assert any(not p.unsure for p in sure) and patch.count("\n+- ") == sum(not p.unsure for p in sure)

    monkeypatch.setattr(module, "TOPIC_SURE_PERCENTILE", 100.0)  # no candidate as high as every listed paper
    edge, patch = propose(markdown, store, _Placer(["Caches"]), min_confidence=0.0, embed=embed)
    assert {p.id for p in edge} == {p.id for p in sure} and all(p.unsure for p in edge) and patch == ""
    said = text_report([Proposal(p.id, p.title, p.node, 0.9, "", True) for p in edge], 0.35)
    assert said and all(line.startswith("unsure (0.90, at the edge of the list's topic): ") for line in said)
    assert text_report([Proposal("x", "T", "A/B", 0.3499, "", True)], 0.35) == ["unsure (0.34): x T -> B"]
    assert [text_report([Proposal("x", "T", "A/B", c, "", True)], 0.9)[0][8:12] for c in (0.29, 0.57, 0.58)] == [
        "0.29",
        "0.57",
        "0.58",
    ]  # not 0.28, 0.56, 0.57: binary floats a hair under
    at_the_cutoff = text_report([Proposal("x", "T", "A/B", 0.35, "", True)], 0.35)  # placed surely enough
    assert at_the_cutoff == ["unsure (0.35, at the edge of the list's topic): x T -> B"]


def test_on_a_lists_topic_is_as_high_as_9_in_10_of_its_papers_and_surely_so_as_3_in_4():
    from semsearch.propose import topic_verdict

    verdict = topic_verdict(np.arange(101.0), np.array([5.0, 10.0, 15.0, 25.0, 90.0]))
    assert verdict.near.tolist() == [False, True, True, True, True]
    assert verdict.sure.tolist() == [False, False, False, True, True]


# --- answers kept per index generation -------------------------------------------------------------
class _Generation:
    def __init__(self, path: Path, created_at: str = "2026-12-05T10:00:00Z", files: dict | None = None):
        self.generation_dir = path
        self.manifest = SimpleNamespace(created_at=created_at, files=files)


def test_an_answer_is_computed_once_per_index_generation_and_key(tmp_path):
    from semsearch.propose import per_generation

    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    first, second = _Generation(tmp_path / "gen-000001"), _Generation(tmp_path / "gen-000002")
    assert per_generation(first, ("propose", "survey"), compute) == {"n": 1}
    assert per_generation(first, ("propose", "survey"), compute) == {"n": 1}  # asked again: kept
    assert per_generation(first, ("gaps", "survey"), compute) == {"n": 2}  # another question
    assert per_generation(second, ("propose", "survey"), compute) == {"n": 3}  # a new generation
    # The index removed and built again at the same path: gen-000001 again, but not the same one.
    rebuilt = _Generation(tmp_path / "gen-000001", "2026-12-05T11:00:00Z")
    assert per_generation(rebuilt, ("propose", "survey"), compute) == {"n": 4}
    same_second = _Generation(tmp_path / "gen-000001", "2026-12-05T11:00:00Z", {"papers.db": "b2:other"})
    assert per_generation(same_second, ("propose", "survey"), compute) == {"n": 5}
    assert per_generation(same_second, ("propose", "survey"), compute) == {"n": 5}
    assert per_generation(object(), ("propose", "survey"), compute) == {"n": 6}  # no generation: never kept
    assert per_generation(object(), ("propose", "survey"), compute) == {"n": 7}


def test_the_kept_answers_are_bounded(tmp_path, monkeypatch):
    from semsearch import propose as module

    monkeypatch.setattr(module, "CACHED_ANSWERS", 2)
    for number in range(5):
        module.per_generation(_Generation(tmp_path / f"gen-{number}"), ("gaps",), lambda: {})
    assert len(module._answers) <= 2


@pytest.mark.parametrize(
    ("line", "written"),
    [
        (
            "- **Title one here.** [[pdf](https://arxiv.org/abs/2401.00001)] "
            "[[code](https://github.com/x/y)], ICML 2024.",
            "- **Folding Caches into Few Bits.** [[pdf](https://arxiv.org/abs/2501.01234)], ICML 2025.",
        ),
        (
            "- **Title one here.** [pdf](https://arxiv.org/abs/2401.00001), [code](https://github.com/x/y), ICML 2024.",
            "- **Folding Caches into Few Bits.** [pdf](https://arxiv.org/abs/2501.01234), ICML 2025.",
        ),
        (  # the link was dropped before the line's period, and left "ICML 2025 ."
            "- **Title one here.** [pdf](https://arxiv.org/abs/2401.00001), ICML 2024 [code](https://github.com/x/y).",
            "- **Folding Caches into Few Bits.** [pdf](https://arxiv.org/abs/2501.01234), ICML 2025.",
        ),
    ],
)
def test_a_code_link_of_the_template_goes_with_its_own_brackets_and_nothing_more(line, written):
    from semsearch.propose import Template

    template = Template.learn([line], parse_list(f"# L\n\n## A\n{line}\n").papers[0])
    assert template.render(NEW, None, "arXiv") == written


def test_a_line_is_tidied_of_inner_runs_of_spaces_and_the_commas_a_dropped_part_left():
    from semsearch.propose import _tidy

    assert _tidy("- A  title   with runs ,  of spaces,") == "- A title with runs, of spaces"
    assert _tidy("1.  Kept after its marker\t") == "1.  Kept after its marker\t"


def test_a_month_is_read_from_a_new_style_arxiv_id_only():
    from semsearch.propose import _yymm

    assert _yymm("2401.00001") == "2401" and _yymm("2401.12345") == "2401"
    assert _yymm("cs/0601001") is None and _yymm(None) is None and _yymm("2401.001") is None


def test_a_proposals_confidence_is_given_to_four_places():
    from semsearch.propose import Proposal

    assert Proposal("2501.00001", "T", "A", 0.123456, "- T").to_dict()["confidence"] == 0.1235


def test_a_venue_badge_is_an_orange_or_an_arxiv_shields_badge_and_nothing_else():
    from semsearch.propose import _venue_badge

    assert _venue_badge("https://img.shields.io/badge/ICML2024-orange")
    assert _venue_badge("https://img.shields.io/badge/arXiv-2401.00001-b31b1b.svg")  # its own colour
    assert not _venue_badge("https://img.shields.io/badge/Code-blue")  # a feature of that paper alone
    assert not _venue_badge("https://img.shields.io/github/stars/x/arxiv-tools")  # not a shields badge


def test_a_year_is_in_a_link_target_only_between_its_brackets_opening_and_closing_on_its_line():
    from semsearch.propose import _in_link_target

    text = "2022 [blog](https://x.org/2023/post) 2024\n[a](b\n2025)"
    assert _in_link_target(text, text.index("2023"))
    assert not _in_link_target(text, text.index("2022"))  # before any link: a link after it is no matter
    assert not _in_link_target(text, text.index("2024"))
    assert not _in_link_target(text, text.index("2025"))  # a target does not run over a line's end


def test_a_titles_brackets_asterisks_quotes_and_tags_are_written_as_look_alikes():
    """A maintainer reads the list's file: "[x]" is "(x)", bold marks are dropped, a backtick is a
    quote and a tag's brackets are ‹ ›, not a line of backslashes (`markup.text` escapes the rest)."""
    from semsearch.propose import _safe_title

    assert _safe_title("[Bold] **claim** `code` <tag>") == "(Bold) claim 'code' ‹tag›"


@pytest.mark.parametrize(
    "markdown",
    [
        "# L\n## Caches\n- Old caches, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)] \n",
        "# L\n## Caches\n- **Old caches**  \n  *A. Author.* [[pdf](https://arxiv.org/pdf/2401.00001.pdf)], 2024.01. \n",
    ],
    ids=["one-line", "line-break"],
)
def test_a_proposed_line_ends_with_no_space_a_line_break_kept(markdown):
    """The survey's items end in a space, which proposed lines copied: `git apply` warned "2 lines add
    whitespace errors" (a week of use). A markdown line break (two spaces inside an item) stays."""
    [section] = sections(parse_list(markdown), markdown.splitlines()).values()
    line = render_line(section, [], NEW, "arXiv")
    assert all(not part.endswith(" ") for part in line.split("\n")[-1:]) and not line.endswith(" ")
    assert ("**Folding Caches into Few Bits**  \n" in line) == ("**Old caches**  \n" in markdown)
    assert [p.title for p in parse_list(f"# L\n## Caches\n{line}\n").papers] == [NEW.title]


def test_eval_propose_min_confidence_proposes_fewer_the_surer_it_must_be(semsearch, survey_only_index, tmp_path):
    added = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})[::25]
    old, new = tmp_path / "old.md", tmp_path / "new.md"
    old.write_text(survey_readme(set(added)), encoding="utf-8")
    new.write_text(survey_readme(set()), encoding="utf-8")

    def report(at: str) -> dict:
        given = ("eval", "propose", old, new, "--min-confidence", at, "--json", "--index", survey_only_index)
        return json.loads(semsearch(*given).stdout)

    bold, sure = report("0"), report("1")
    assert (bold["min_confidence"], sure["min_confidence"]) == (0.0, 1.0)
    assert bold["proposed"] >= sure["proposed"] and sure["proposed"] + sure["unsure_or_out"] == len(added)
    refused = semsearch(
        "eval", "propose", old, new, "--min-confidence", "1.5", "--index", survey_only_index, check=False
    )
    assert (refused.returncode, refused.stderr.count("\n")) == (2, 1) and "min_confidence" in refused.stderr
