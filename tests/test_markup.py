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
GITHUB.linkify.set({"fuzzy_link": False})  # GitHub: scheme://, www. and e-mail addresses (kept apart)
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
    "see https://evil.example/x or www.evil.com",
    "write to security@evil.com or first.last+tag@mail.evil.org",
    "a.@evil.com a+@evil.com a-@evil.com me@1evil.com x=@evil.com",
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
    ["https://", "www.", "www.evil.com", "a.b+c@evil.com", "@", "arxiv.org/abs/2306.00978", "&amp;", "&#1;", "1.", "1)"]
    + ["**", "](", "\n"]
)
ANY = st.characters(codec="utf-8", exclude_categories=("Cs",))
MARKUP = st.sampled_from(list("#-+=>*_[]()<>|~`\\&;:/.! 1aw\t"))


@settings(max_examples=examples(600), deadline=1000)
@given(st.lists(st.one_of(PIECES, MARKUP, ANY), max_size=40).map("".join))
@example("1. x")
@example("#")
@example("www.a.b")
@example("me@evil.com")
def test_any_text_is_shown_as_its_words(value):
    shown = one_line(value)
    if not shown:
        return
    kinds, words = _shown(f"- {text(value)}\n", GITHUB)
    assert kinds == _shown("- plain\n")[0] and words == shown
    assert "www." not in text(value).lower()  # what GITHUB leaves out, GitHub links
    assert not re.search(r"arxiv\.org/|10\.48550/", text(value), re.I)  # a list parser's arXiv link


def test_text_in_a_links_label_ends_no_link_and_opens_none():
    """A digest writes a title as a link's label (`**[title](url)**`): a `]` in it that is not
    escaped ends the label early, and "A](https://evil.example) B" made a link of its own."""
    for hostile in ["A](https://evil.example) B", "x] [y](https://evil.example)", "[x]: https://evil.example"]:
        kinds, words = _shown(f"- **[{text(hostile)}](https://example.org/)**\n", GITHUB)
        assert kinds.count("link_open") == 1 and words == one_line(hostile)


def test_a_number_of_up_to_nine_digits_opening_a_line_is_no_list():
    """CommonMark reads 1 to 9 digits and "." or ")" as an ordered item ("123456789. x" is one)."""
    plain = _shown("- plain words\n")[0]
    for value in ("123456789. Nine digits", "123456789) Nine digits", "12. Twelve"):
        assert _shown(f"- {text(value)}\n") == (plain, value)


def test_an_arxiv_address_or_doi_in_text_is_no_id_a_list_parser_reads():
    """A title naming another paper ("… as in arXiv.org/abs/2306.00978", its DOI 10.48550/arXiv.…)
    proposed into a list: the list's parser must not read that paper's id from the line."""
    from semsearch.sources.curated import _ARXIV_ID

    for value in ("as in ArXiv.org/abs/2306.00978", "doi 10.48550/arXiv.2309.17453", "WWW.evil.example"):
        assert _ARXIV_ID.search(text(value)) is None
        assert "www." not in text(value).lower()
        assert _shown(f"- {text(value)}\n")[1] == value
