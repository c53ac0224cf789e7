"""Curated markdown lists read as taxonomies (`semsearch.sources.curated`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.errors import SemsearchError
from semsearch.sources.curated import clean_name, parse_list
from tests.conftest import SHARED, examples

README = """# Awesome Fast Decoding

## 📢 News
- [2024/05] We added [a paper](https://arxiv.org/abs/2401.99999).

## Contents
- [Drafting](#drafting)

## 🔍 Methods
### 1️⃣ Drafting / Verifying
- **Draft Models Help.** *A. Author.* [[pdf](https://arxiv.org/pdf/2302.01318v2.pdf)], 2023.
- Tree Drafts, <ins>ICML, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001v3)] [[Code](https://github.com/x/tree)]
- Tree Drafts, <ins>ICML, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]

<details><summary>Early work</summary>

1. [**Blockwise Parallel Decoding.**](https://arxiv.org/abs/1811.03115) *M. Stern.* NeurIPS 2018.
2. **A Paper Without arXiv** [[Paper](https://aclanthology.org/2023.x.pdf)]

</details>

### Lookahead
| Paper | Venue |
|:--|:--|
| [Lookahead Decoding](https://arxiv.org/abs/2402.02057) | ICML 2024 |
| Tool without a paper [[Code](https://github.com/y/tool)] | - |

#### Nothing here yet

## 🔖 Citation
- **Our list**, [[pdf](https://arxiv.org/abs/2501.00000)]

## Surveys
- **Draft Models Help** again [[pdf](https://arxiv.org/abs/2302.01318)]
"""


def test_headings_details_and_tables_become_nodes_and_papers():
    listed = parse_list(README)
    assert listed.title == "Awesome Fast Decoding"  # a lone first `#` is the list's title, not a node
    assert listed.nodes == [
        "Methods",
        "Methods/Drafting, Verifying",
        "Methods/Drafting, Verifying/Early work",
        "Methods/Lookahead",
        "Methods/Lookahead/Nothing here yet",  # a heading without papers, inside a section with papers
        "Surveys",
    ]
    by_title = {p.title: p for p in listed.papers}
    assert set(by_title) == {
        "Draft Models Help",
        "Tree Drafts",
        "Blockwise Parallel Decoding",
        "A Paper Without arXiv",
        "Lookahead Decoding",
    }
    # versions stripped, pdf links read, duplicates under one heading merged, two headings both kept
    assert by_title["Draft Models Help"].arxiv_id == "2302.01318"
    assert by_title["Draft Models Help"].categories == ["Methods/Drafting, Verifying", "Surveys"]
    assert by_title["Tree Drafts"].arxiv_id == "2401.00001"
    assert by_title["Tree Drafts"].categories == ["Methods/Drafting, Verifying"]
    assert by_title["Tree Drafts"].links == ["https://github.com/x/tree"]
    assert by_title["Blockwise Parallel Decoding"].categories == ["Methods/Drafting, Verifying/Early work"]
    assert by_title["A Paper Without arXiv"].arxiv_id is None  # kept by its title
    assert by_title["Lookahead Decoding"].categories == ["Methods/Lookahead"]
    # News, Contents and Citation are not about papers: nothing of theirs is kept
    assert not {"2401.99999", "2501.00000"} & {p.arxiv_id for p in listed.papers}


def test_items_that_link_somewhere_but_are_not_read_as_papers_are_noted():
    """`taxonomy add` says how many: an item left out without a word looked like a paper lost."""
    listed = parse_list(README)
    assert listed.unread == ["Tool without a paper"]  # a row linking its code; no News or Contents item
    plain = README.replace("### Lookahead\n", "### Lookahead\n- [A Paper Elsewhere](https://example.org/paper.pdf)\n\n")
    assert parse_list(plain).unread == ["A Paper Elsewhere", "Tool without a paper"]
    assert parse_list(plain.replace("- [A Paper", "- Prose, no link. [A Paper")).unread[0] == "Prose, no link"


HEADING_CHARACTERS = st.characters(codec="utf-8") | st.sampled_from(["e\u0301", "Ｐ", "/", " ", "*", "1.", "[x](y)"])


@settings(max_examples=examples(300), deadline=1000)
@given(st.lists(HEADING_CHARACTERS, max_size=400).map("".join))
def test_a_heading_name_is_one_any_door_takes_in_one_unicode_form(raw):
    """Whatever a heading holds: a name no longer than a category may be, without the path
    separator, and the same for the heading typed in another Unicode form."""
    import unicodedata

    from semsearch.requests_models import MAX_CATEGORY

    name = clean_name(raw)
    assert len(name) <= MAX_CATEGORY and "/" not in name and name == name.strip()
    assert clean_name(unicodedata.normalize("NFD", raw)) == name == clean_name(unicodedata.normalize("NFKC", raw))


def test_a_heading_name_is_cut_at_a_word_to_300_characters():
    from semsearch.requests_models import MAX_CATEGORY

    name = "a" * 295 + " bcde"
    assert MAX_CATEGORY == 300 and clean_name(name) == name  # 300 exactly: whole
    assert clean_name(name + " more words") == name
    assert clean_name("x" * 400) == "x" * 300  # no word to cut at
    assert clean_name("a" * 296 + ": bbbbbbbbbb") == "a" * 296  # no colon left hanging


def test_heading_names_are_clean():
    assert clean_name("🔍 Method") == "Method"
    assert clean_name("1️⃣ Pruning / Evicting / Sparse") == "Pruning, Evicting, Sparse"
    assert clean_name("[Speculative Decoding](#speculative-decoding):") == "Speculative Decoding"
    assert clean_name("2. **Low-Rank**") == "Low-Rank"


@pytest.mark.parametrize(
    "text, message",
    [
        ("Just prose, no headings, no links.", "no papers found"),
        ("# T\n## A\n- **A paper** [[Paper](https://aclanthology.org/x.pdf)]\n", "no arXiv links"),
    ],
)
def test_a_list_without_papers_is_a_clear_error(text, message):
    with pytest.raises(SemsearchError, match=message):
        parse_list(text)


@pytest.mark.skipif(not (SHARED / "data" / "lists").exists(), reason="../shared not present")
def test_the_survey_list_is_one_instance_of_the_parser():
    """The survey's own README, read by the generic parser, gives the packaged survey data:
    the same 74 nodes in order and the same categories for every paper."""
    listed = parse_list((SHARED / "data" / "lists" / "AIoT-MLSys-Lab__Efficient-LLMs-Survey.md").read_text())
    packaged = json.loads((Path(__file__).parents[1] / "semsearch" / "data" / "survey.json").read_text())
    assert listed.nodes == packaged["nodes"]
    assert {p.title: p.categories for p in listed.papers} == {p["title"]: p["categories"] for p in packaged["papers"]}


def test_a_paper_named_in_fewer_than_four_letters_is_kept_by_its_arxiv_link_and_only_then():
    listed = parse_list(
        "# KV\n## Eviction\n"
        "- [H2O](https://arxiv.org/abs/2306.14048) heavy hitters\n"
        "- [D2O](https://arxiv.org/abs/2406.13035)\n"
        "- **T5** [[Paper](https://aclanthology.org/x.pdf)]\n"  # short, and no arXiv link: not a paper here
    )
    assert {(p.title, p.arxiv_id) for p in listed.papers} == {("H2O", "2306.14048"), ("D2O", "2406.13035")}


def test_an_item_is_the_paper_its_link_names_not_one_its_words_name():
    """A title or note naming another paper's arXiv address or DOI made the item that paper."""
    listed = parse_list(
        "# KV\n## Quantization\n"
        "- Quantized caches (weights as in arxiv.org/abs/2306.00978) [[Paper](https://arxiv.org/abs/2501.00002)]\n"
        "- 10.48550/arXiv.2309.17453 streaming, [**the paper**](https://arxiv.org/pdf/2501.00014v2)\n"
        "- Only its words name it: arxiv.org/abs/2401.00001, **Caches in words**\n"
    )
    assert [p.arxiv_id for p in listed.papers] == ["2501.00002", "2501.00014", "2401.00001"]


@pytest.mark.parametrize("date", ["2023.10 -", "[2023/10]", "2023-10-05:", "🔥"])
def test_an_item_that_opens_with_a_date_is_named_by_its_link_not_by_the_date(date):
    """Lists that date each item first ("1. 2023.10 - [Title](arXiv link) (ICML 2024)") were read
    as papers titled "2023.10 -": offline the index stored that as each title, a paper listed so
    was proposed again under its real title, and a proposed line kept the old paper's title."""
    listed = parse_list(f"# L\n## Drafts\n1. {date} [Draft and Verify](https://arxiv.org/abs/2309.08168) (ACL 2024)\n")
    assert [p.title for p in listed.papers] == ["Draft and Verify"]


def test_a_paper_listed_with_and_without_its_arxiv_link_is_one_paper_under_its_id():
    """Kept apart, the item without the link became a record of its own and every search showed
    the paper twice (an attacker's pass: Graph-Structured Speculative Decoding)."""
    listed = parse_list(
        "# Spec\n## Drafting\n- **Graph-Structured Speculative Decoding** [[code](https://github.com/a/b)]\n"
        "## Verification\n- [Graph-structured speculative decoding](https://arxiv.org/abs/2407.16207)\n"
    )
    assert [(p.arxiv_id, p.categories) for p in listed.papers] == [("2407.16207", ["Drafting", "Verification"])]
    assert [(p.node, p.key) for p in listed.placements] == [("Drafting", "2407.16207"), ("Verification", "2407.16207")]
    linked_first = parse_list(  # the categories in the list's order, whichever item comes first
        "# Spec\n## Verification\n- [Graph-structured speculative decoding](https://arxiv.org/abs/2407.16207)\n"
        "## Drafting\n- **Graph-Structured Speculative Decoding** [[code](https://github.com/a/b)]\n"
    )
    assert [p.categories for p in linked_first.papers] == [["Verification", "Drafting"]]


def test_titles_in_other_scripts_are_papers_of_their_own():
    listed = parse_list(
        "# 列表\n## 剪枝\n- **大模型剪枝综述** [[paper]](https://example.com/a)\n"
        "- **大语言模型的量化方法** [[paper]](https://example.com/b)\n"
        "- [Heavy hitters](https://arxiv.org/abs/2306.14048)\n"
    )
    assert [p.title for p in listed.papers] == ["大模型剪枝综述", "大语言模型的量化方法", "Heavy hitters"]


def test_an_items_arxiv_link_is_its_paper_though_a_code_link_follows_it():
    """The first link whose target is arXiv's names the item, wherever it stands among the links
    (a code link after it left only the words to read, and they named another paper)."""
    listed = parse_list(
        "# KV\n## Quantization\n"
        "- [Caches as in arxiv.org/abs/2306.00978](https://arxiv.org/abs/2501.00002)"
        " [[code](https://github.com/a/b)]\n"
    )
    assert [p.arxiv_id for p in listed.papers] == ["2501.00002"]


def test_a_paper_linked_by_its_hugging_face_or_alphaxiv_page_has_its_arxiv_id():
    """The survey's list links three papers only through huggingface.co/papers: its own ingest read
    their ids, a list added with `taxonomy add` kept them by title (one rule now, `arxiv_id_from_link`)."""
    listed = parse_list(
        "# L\n## KV\n- SnapKV, arXiv, 2024 [[Paper](https://huggingface.co/papers/2404.14469)]\n"
        "- Another [[Paper](https://www.alphaxiv.org/abs/2407.21118v2)]\n"
        "- A model card [[Model](https://huggingface.co/models/2401.00001)]\n"
    )
    assert [p.arxiv_id for p in listed.papers] == ["2404.14469", "2407.21118"]  # a model's page names no paper


def test_a_paper_cited_as_arxiv_cites_it_has_its_arxiv_id():
    """An item that names its paper as "arXiv:2402.13718" (arXiv's own citation form), linked
    elsewhere or not at all, was held by its title alone, and proposed again if its title differed."""
    listed = parse_list(
        "# L\n## KV\n- Cache Paper, arXiv:2402.13718, 2024\n"
        "- [Other Paper](https://openreview.net/forum?id=x) (arXiv: 2401.00001v2)\n"
        "- [Third Paper](https://example.org/p) names none: myarxiv:2401.00002, xarXiv:2401.00003\n"
    )
    assert [p.arxiv_id for p in listed.papers] == ["2402.13718", "2401.00001"]  # the third names no arXiv paper


def test_what_github_shows_as_code_or_a_comment_is_no_heading_and_no_paper():
    """Read line by line, a paper commented out (`<!-- ... -->`) was listed, and a fenced block's
    `## ...` line and list items became a node and papers: GitHub shows neither."""
    listed = parse_list(
        "# L\n## Methods\n- [Real paper](https://arxiv.org/abs/2401.00001)\n"
        "<!--\n- [Commented out](https://arxiv.org/abs/2401.00002)\n-->\n"
        "```markdown\n## Not a heading\n- [In a fence](https://arxiv.org/abs/2401.00003)\n```\n"
        "    - [Indented code](https://arxiv.org/abs/2401.00004)\n"
        "- [Also real](https://arxiv.org/abs/2401.00005)\n"
    )
    assert listed.nodes == ["Methods"]
    assert [(p.arxiv_id, p.categories) for p in listed.papers] == [
        ("2401.00001", ["Methods"]),
        ("2401.00005", ["Methods"]),
    ]


def test_a_title_is_its_words_as_github_shows_them():
    """Escapes, entities and code spans were kept as written, or lost a character: `\\*star\\*`
    became `\\star\\`, `&amp;` stayed, `x_y` in code became `xy` (and titles read back from a
    proposal, which escapes markup, kept their backslashes)."""
    listed = parse_list(
        "# L\n## Methods\n"
        "- [A \\| B \\*star\\* \\# x](https://arxiv.org/abs/2401.00001)\n"
        "- Caches \\[not a link\\] &amp; `kv_cache` tricks, <ins>arXiv, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00002)]\n"
        "- **Bold &lt;and&gt; \\_under\\_**, [[Paper](https://arxiv.org/abs/2401.00003)]\n"
    )
    assert [p.title for p in listed.papers] == [
        "A | B *star* # x",
        "Caches [not a link] & kv_cache tricks",
        "Bold <and> _under_",
    ]


def test_markdown_inside_a_group_without_a_blank_line_is_read_all_the_same():
    """GitHub keeps Markdown right after `<summary>` (no blank line) as HTML, and many lists write
    it so: its papers belong to the group."""
    listed = parse_list(
        "# L\n## Methods\n<details><summary>Early **work**</summary>\n"
        "- [Old paper](https://arxiv.org/abs/1811.03115)\n</details>\n"
        "- [After the group](https://arxiv.org/abs/2401.00001)\n"
    )
    assert listed.nodes == ["Methods", "Methods/Early work"]
    assert [(p.title, p.categories) for p in listed.papers] == [
        ("Old paper", ["Methods/Early work"]),
        ("After the group", ["Methods"]),
    ]
    assert [(p.first, p.last) for p in listed.placements] == [(3, 3), (5, 5)]  # lines of the file


def test_a_badge_is_no_link_of_the_paper_and_a_link_is_kept_once():
    listed = parse_list(
        "# L\n## Methods\n1. [**A title**](https://arxiv.org/abs/2401.00001) "
        "[![stars](https://img.shields.io/github/stars/a/b)](https://github.com/a/b) "
        "[[code](https://github.com/a/b)] ![](https://img.shields.io/badge/ICML-orange)\n"
    )
    assert [p.links for p in listed.papers] == [["https://github.com/a/b"]]


def test_a_lone_carriage_return_is_no_line_end_so_placements_keep_git_line_numbers():
    listed = parse_list(
        "# L\r\n## Methods\n- a\rb [x](https://arxiv.org/abs/2401.00001)\n- [y](https://arxiv.org/abs/2401.00002)\n"
    )
    assert [(p.first, p.last) for p in listed.placements] == [(2, 2), (3, 3)]


AX, AX2 = "https://arxiv.org/abs/2205.14131", "https://arxiv.org/abs/2205.14132"


def _read(markdown: str):
    """The list `## A` (one anchor paper) then `## B` then `markdown`, read."""
    return parse_list(f"# T\n\n## A\n\n- **Anchor** [arXiv](https://arxiv.org/abs/2401.00001)\n\n## B\n\n{markdown}")


@pytest.mark.parametrize(
    "markdown, titles",
    [
        ("- **Fast\n  Paper** [arXiv](AX)", ["Fast Paper"]),  # a line break inside is a space
        ("- Fast\n  Attention [arXiv](AX)", ["Fast Attention"]),
        ("- **`FlashAttention` kernels** [arXiv](AX)", ["FlashAttention kernels"]),  # code is words
        ("- Fast Attention [arXiv](AX)", ["Fast Attention"]),  # the words before its first link
        ("- Fast Attention ![b](https://img.shields.io/b.svg) for all [arXiv](AX)", ["Fast Attention"]),
        ("- Fast Attention [ICML] [arXiv](AX)", ["Fast Attention"]),
        ("- [![x](https://img.shields.io/b.svg) FlashAttention](AX)", []),  # a badge's link names no paper
        ("| Fast Paper | ICML | [arXiv](AX) |\n|---|---|---|\n| Other Paper | ICML | [arXiv](AX2) |",
         ["Fast Paper ICML", "Other Paper ICML"]),  # a row's cells are read as one, the header's too
        ("See [this work](AX) for details.", []),  # prose, not a list item
        ("<pre>\n- [Hidden](AX)\n</pre>", []),  # HTML shown as written
        ("<PRE>\n- [Hidden](AX)\n</PRE>", []),
        ("  <pre>\n- [Hidden](AX)\n  </pre>", []),
        ("<!X\n- [Hidden](AX)\n>", []),
        ("<?x\n- [Hidden](AX)\n?>", []),
    ],
    # No line break in an id: a test named with one cannot be selected again by name (mutmut's runs).
    ids=lambda value: value.replace("\n", " NL ") if isinstance(value, str) else None,
)  # fmt: skip
def test_what_github_shows_is_what_a_paper_is_named(markdown, titles):
    """Each case a mutant of the parser left unnoticed (a mutation pass)."""
    listed = _read(markdown.replace("AX2", AX2).replace("AX", AX))
    assert [p.title for p in listed.papers if p.title != "Anchor"] == titles


@pytest.mark.parametrize(
    "markdown, placed",
    [
        ("<details><summary>G</summary>\n\n- [P1](AX)\n\n</details><details><summary>H</summary>\n\n- [P2](AX2)\n",
         [("P1", "B/G"), ("P2", "B/H")]),  # one group's end and the next one's start on a line
        ("<details><summary>G</summary>\n\n- [P1](AX)\n\nEnd.</details>\n\n- [P2](AX2)", [("P1", "B/G"), ("P2", "B")]),
        ("<details><summary>G</summary>\n\n- [P1](AX)\n\nEnd.</DETAILS>\n\n- [P2](AX2)", [("P1", "B/G"), ("P2", "B")]),
        ("Intro text <details><summary>G</summary>\n\n- [P](AX)\n\n</details>", [("P", "B/G")]),
        ("<details>\n  <summary>G</summary>\n- [P1](AX)\n</details>", [("P1", "B/G")]),
        ("> <div>\n<details><summary>G</summary>\n\n- [P](AX)", [("P", "B/G")]),
        ("## B2 <summary>X</summary>\n\n- [P](AX)", [("P", "B2 X")]),  # a heading's words, not a group
    ],
)  # fmt: skip
def test_groups_open_and_close_where_github_shows_them(markdown, placed):
    listed = _read(markdown.replace("AX2", AX2).replace("AX", AX))
    assert [(p.title, p.categories[0]) for p in listed.papers if p.title != "Anchor"] == placed


def test_headings_keep_the_words_github_shows_in_unicodes_compatibility_form():
    assert clean_name("＆amp; Tools") == "& Tools"  # an entity written in full-width letters
    assert clean_name("［Q］（https://x.org）") == "Q"  # a link written in full-width brackets
    assert clean_name("&#65328;runing") == "Pruning"  # an entity of a full-width letter
    assert clean_name("`vLLM` serving") == "vLLM serving"
    assert clean_name("KV_cache methods") == "KVcache methods"  # as names were read before: nodes kept


def test_ids_links_text_and_lines_are_read_from_the_links_github_makes():
    listed = _read(
        f"- Fast, see arxiv.org/abs/2301.00002 [Code](https://github.com/x/y) [Paper]({AX})\n"
        f"- **Fast Paper** [Code](https://github.com/x/z)\n  [arXiv]({AX2})\n\n"
        "<details><summary>G</summary>\n### Sub\n- [P](https://arxiv.org/abs/2205.14133)\n</details>\n\n"
        "<details><summary>R</summary>\n| Name | Link |\n|---|---|\n"
        "| Row Paper | [arXiv](https://arxiv.org/abs/2205.14134) |\n</details>\n"
    )
    by_id = {p.arxiv_id: p for p in listed.papers}
    assert set(by_id) == {"2401.00001", "2205.14131", "2205.14132", "2205.14133", "2205.14134"}
    assert by_id["2205.14132"].links == ["https://github.com/x/z"]
    assert by_id["2205.14132"].text == f"**Fast Paper** [Code](https://github.com/x/z) [arXiv]({AX2})"
    assert by_id["2205.14134"].text == "Row Paper [arXiv](https://arxiv.org/abs/2205.14134)"
    lines = "# T\n\n## A\n\n- **Anchor** [arXiv](https://arxiv.org/abs/2401.00001)\n\n## B\n\n".count("\n")
    assert listed.heading_lines["B/G/Sub"] == lines + 5
    assert [(p.first, p.last) for p in listed.placements if p.key == "2205.14134"] == [(lines + 12, lines + 12)]


def test_the_headings_limit_is_said_before_the_depth_limit():
    text = "## A\n\n" + "<details><summary>x</summary>\n\n" * 12 + f"- [P]({AX})\n\n" + "## Hi\n\n" * 1001
    with pytest.raises(SemsearchError, match="too many headings"):
        parse_list(text)


def test_the_leaves_are_the_nodes_no_other_node_is_under_at_any_depth():
    listed = parse_list(
        "# T\n\n## A\n\n### B\n\n#### C\n\n- [P1](https://arxiv.org/abs/2401.00001)\n\n"
        "### D\n\n- [P2](https://arxiv.org/abs/2401.00002)\n\n## E\n\n- [P3](https://arxiv.org/abs/2401.00003)\n"
    )
    assert listed.nodes == ["A", "A/B", "A/B/C", "A/D", "E"]
    assert listed.leaves() == ["A/B/C", "A/D", "E"]


def test_a_link_never_closed_ends_the_reading_of_links_and_keeps_those_before_it():
    from semsearch.sources.curated import _links

    assert _links("[a](http://a) then [b](http://b") == [(0, 13, "a", "http://a")]
    assert _links("see [a](http://x") == []


@pytest.mark.parametrize("venue", ["arXiv", "NeurIPS", "openreview"])
def test_a_venue_and_year_broken_markup_left_after_a_title_go_whatever_the_venue_s_case(venue):
    from semsearch.sources.curated import clean_title

    assert clean_title(f"Fast Decoding, {venue}, 2023") == "Fast Decoding"


def test_headings_and_summary_groups_count_together_toward_the_headings_limit():
    group = "<details><summary>g</summary>\n\n</details>\n\n"
    at_limit = "## A\n\n" * 600 + group * 400 + f"- [P]({AX})\n"
    assert parse_list(at_limit).papers  # 1,000: read
    with pytest.raises(SemsearchError, match="^the list has too many headings: more than 1,000$"):
        parse_list("## A\n\n" * 600 + group * 401 + f"- [P]({AX})\n")


def test_an_item_opening_with_a_date_takes_its_first_link_s_text_alone_for_its_title():
    listed = parse_list(
        "## A\n\n- 2023.10 - [Fast Title](https://arxiv.org/abs/2401.00001) and words [Code](https://github.com/x/y)\n"
    )
    assert [p.title for p in listed.papers] == ["Fast Title"]
