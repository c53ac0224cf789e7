"""Text from papers written into Markdown for other people (`semsearch.markup`): words, never markup,
as GitHub's flavour reads it (markdown-it's "gfm-like": tables, strike-through, bare links)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from semsearch.markup import text
from semsearch.paper import one_line
from tests.conftest import examples

GFM = MarkdownIt("gfm-like")  # links bare domains too ("example.org"), which GitHub does not
GITHUB = MarkdownIt("gfm-like")
GITHUB.linkify.set({"fuzzy_link": False, "fuzzy_email": False})  # GitHub: scheme:// and www. (kept apart)
GITHUB.linkify.add("//", None)  # nor does it link "//host"
HOSTILE = [
    "# A heading",
    "1. An ordered list",
    "3) Another",
    "- a bullet",
    "+ a bullet",
    "> a quote",
    "===",
    "---",
    "```",
    "see https://evil.example/x or www.evil.example",
    "arxiv.org/abs/2306.00978 and 10.48550/arXiv.2309.17453",
    "a | b | c",
    "a trailing backslash \\",
    "~~struck~~ *em* _em_ **strong** `code` [link](https://evil.example) ![img](https://evil.example/i.png)",
    "<script>alert(1)</script> <img src=x> &amp; &#x3C;b&#x3E;",
    "[x]: https://evil.example",
    "line\nbreak\r\n# heading after",
]


def _shown(markdown: str, parser: MarkdownIt = GFM) -> tuple[list[str], str]:
    """(the markup token types of `markdown` as `parser` reads it, the text it shows)."""
    kinds, shown = [], []
    for token in parser.parse(markdown):
        kinds.append(token.type)
        for child in token.children or []:
            if child.type in ("text", "text_special"):
                shown.append(child.content)
            else:
                kinds.append(child.type)
    return kinds, "".join(shown)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_is_shown_as_its_words_in_a_list_item_a_table_cell_and_after_a_marker(hostile):
    plain = _shown("- plain words\n")[0]
    assert _shown(f"- {text(hostile)}\n") == (plain, one_line(hostile))
    assert _shown(f"  {text(hostile)}\n")[1] == one_line(hostile)  # a digest's continuation line
    table = "| a | b |\n|---|---|\n| {} | x |\n"
    assert _shown(table.format(text(hostile))) == (_shown(table.format("plain"))[0], "ab" + one_line(hostile) + "x")


# Text made of markup's pieces as much as of any characters.
PIECES = st.sampled_from(
    ["https://", "www.", "arxiv.org/abs/2306.00978", "&amp;", "&#1;", "1.", "1)", "**", "](", "\n"]
)
ANY = st.characters(codec="utf-8", exclude_categories=("Cs",))
MARKUP = st.sampled_from(list("#-+=>*_[]()<>|~`\\&;:/.! 1aw\t"))


@settings(max_examples=examples(600), deadline=1000)
@given(st.lists(st.one_of(PIECES, MARKUP, ANY), max_size=40).map("".join))
@example("1. x")
@example("#")
@example("www.a.b")
def test_any_text_is_shown_as_its_words(value):
    shown = one_line(value)
    if not shown:
        return
    kinds, words = _shown(f"- {text(value)}\n", GITHUB)
    assert kinds == _shown("- plain\n")[0] and words == shown
    assert "www." not in text(value).lower()  # what GITHUB leaves out, GitHub links
    assert not re.search(r"arxiv\.org/|10\.48550/", text(value), re.I)  # a list parser's arXiv link
