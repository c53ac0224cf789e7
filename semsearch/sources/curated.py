"""Curated paper lists in markdown ("awesome lists", a survey's README) read as taxonomies.

A list is headings with papers under them. The parser keeps facts only: the heading path of each
paper, its title, its arXiv id and its other links.

- Headings `#` to `######` and `<details><summary>NAME</summary>` groups are nodes; a group sits one
  level under the heading that holds it. A lone first `#` heading is the list's title, not a node.
- A list item (`-`, `*`, `1.`, with its continuation lines) or a table row that links to arXiv
  (abs or pdf, any version) is a paper, labelled with the path of the headings above it. An item
  without an arXiv link but with a bold title or a linked title to a paper is kept by its title.
- A paper listed under two headings keeps both; the same paper twice under one heading is one.
- Sections that are not about papers (News, Citation, Contributing, ...) are skipped. A heading
  without any paper under it is a node only inside a top-level section that has papers (a survey's
  "LLM Frameworks" table of tools is part of its taxonomy; "Why ... are needed?" is not).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from semsearch.errors import SemsearchError
from semsearch.paper import normalize_title, parse_arxiv_id

SKIPPED_SECTIONS = re.compile(
    r"^(news|updates?|notice|citation|cite|contribut\w*|contributors|acknowledge?ments?|license|star history|"
    r"table of contents?|contents?|community support|keywords? convention|tutorials?|blogs?( & projects?)?)\b",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SUMMARY = re.compile(r"<summary>(.*?)</summary>", re.IGNORECASE)
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
_LINK = re.compile(r"\[+([^\]]*)\]+\(\s*([^)\s]+)[^)]*\)")  # also "[[Code]](url)", which lists write too
_ARXIV_ID = re.compile(  # abs, pdf and html pages, any version, and arXiv's DOIs
    r"(?:arxiv\.org/(?:abs|pdf|html)/|10\.48550/arxiv\.)(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})",
    re.IGNORECASE,
)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_TAGS = re.compile(r"<[^>]+>")


@dataclass
class ListedPaper:
    title: str
    arxiv_id: str | None
    categories: list[str] = field(default_factory=list)  # node paths, in the order the list gives them
    links: list[str] = field(default_factory=list)  # other links (code, venue page), first seen first
    text: str = ""  # the item as written (markdown): where a list's own marks, e.g. a venue, may be read


@dataclass
class CuratedList:
    title: str | None
    nodes: list[str]  # paths, parents before children, in document order
    papers: list[ListedPaper]

    def leaves(self) -> list[str]:
        return [n for n in self.nodes if not any(other.startswith(n + "/") for other in self.nodes)]


def clean_name(text: str) -> str:
    """A heading as a node name: markdown, emoji, numbering and path separators removed."""
    text = _LINK.sub(r"\1", _TAGS.sub("", text))
    text = re.sub(r"[*_`]", "", text)
    text = re.sub(r"\d?\ufe0f?\u20e3", "", text)  # keycap digits: 1️⃣
    text = "".join(c for c in text if unicodedata.category(c)[0] not in ("S", "C") and c != "\ufe0f" or c in " -")
    text = re.sub(r"^\s*(?:\d+[.)]\s+|[IVX]+\.\s+)", "", text)
    text = text.replace(" / ", ", ").replace("/", "-")
    return " ".join(text.split()).strip(" :-")


def _title_of(text: str) -> str:
    """The paper's title in a list item: its bold part, else its first link's text, else the text
    before the first link or venue mark."""
    bold = _BOLD.search(text)
    if bold:
        return clean_title(bold.group(1))
    first = _LINK.search(text)
    if first and first.start() == 0 and first.group(1).strip() and not first.group(1).startswith("!"):
        return clean_title(first.group(1))
    head = re.split(r"\[\[|\s\[|</?ins>|!\[", text, maxsplit=1)[0]
    return clean_title(head)


def clean_title(text: str) -> str:
    text = _LINK.sub(r"\1", _TAGS.sub("", text))
    text = re.sub(r"[*_`]", "", text).replace("，", ",")
    text = re.sub(r",\s*(?:[A-Za-z][\w\- ]*,\s*)?(?:19|20)\d{2}\s*$", "", text)  # venue, year of broken markup
    return " ".join(text.split()).strip(" ,.;:")


def _arxiv_id(text: str) -> str | None:
    match = _ARXIV_ID.search(text)
    return parse_arxiv_id(match.group(1)) if match else None


def _items(lines: list[str]):
    """(line number, kind, text) for headings, summaries, closing details, list items with their
    continuation lines, and table rows."""
    item: list[str] | None = None
    start = 0
    for number, line in enumerate(lines):
        heading, summary, bullet = _HEADING.match(line), _SUMMARY.search(line), _ITEM.match(line)
        row = line.lstrip().startswith("|")
        closing = "</details>" in line.lower()
        if item is not None and (heading or summary or bullet or row or closing or not line.strip()):
            yield start, "item", " ".join(item)
            item = None
        if heading:
            yield number, "heading", heading
        elif summary:
            yield number, "summary", summary.group(1)
        elif bullet:
            item, start = [bullet.group(2)], number
        elif row:
            yield number, "row", line
        elif item is not None:
            item.append(line.strip())
        if closing:
            yield number, "close", ""
    if item is not None:
        yield start, "item", " ".join(item)


def parse_list(markdown: str) -> CuratedList:
    """The nodes and papers of a curated markdown list (see the module's rules)."""
    lines = markdown.splitlines()
    levels = [len(m.group(1)) for m in map(_HEADING.match, lines) if m]
    title = None
    first_heading = next((m for m in map(_HEADING.match, lines) if m), None)
    drop_title = bool(levels) and levels.count(1) == 1 and len(first_heading.group(1)) == 1
    stack: list[tuple[float, str | None]] = []  # (level, name or None when skipped)
    found: dict[str, ListedPaper] = {}
    node_order: dict[str, None] = {}
    headings: dict[str, None] = {}  # every heading's path, papers or not
    details_base: list[float] = []

    def path() -> str | None:
        names = [name for _, name in stack]
        return None if not names or None in names else "/".join(names)

    def open_node(level: float, raw: str) -> None:
        while stack and stack[-1][0] >= level:
            stack.pop()
        name = clean_name(raw)
        stack.append((level, None if not name or SKIPPED_SECTIONS.match(name) else name))

    for _, kind, text in _items(lines):
        if kind == "heading":
            level = len(text.group(1))
            if drop_title and level == 1:
                title = clean_name(text.group(2))
                stack.clear()
                continue
            details_base.clear()
            open_node(level, text.group(2))
            if path():
                headings.setdefault(path(), None)
        elif kind == "summary":
            base = stack[-1][0] if stack else 0
            details_base.append(base)
            open_node(base + 0.5, text)
            if path():
                headings.setdefault(path(), None)
        elif kind == "close":
            if details_base:
                level = details_base.pop() + 0.5
                while stack and stack[-1][0] >= level:
                    stack.pop()
        else:
            where = path()
            if where is None:
                continue
            if kind == "row":
                cells = [c.strip() for c in text.strip().strip("|").split("|")]
                if not cells or set("".join(cells)) <= set(":- "):
                    continue
                text = " ".join(cells)  # the first cell names the paper
            arxiv_id = _arxiv_id(text)
            if arxiv_id is None and (kind == "row" or not (_BOLD.search(text) or "[paper]" in text.lower())):
                continue  # prose, a tool, a link list: a paper without an arXiv link shows as one
            name = _title_of(text)
            if len(name) < 4:
                continue
            key = arxiv_id or normalize_title(name)
            paper = found.get(key)
            if paper is None:
                links = [u for _, u in _LINK.findall(text) if "arxiv" not in u.lower() and not u.startswith("#")]
                paper = found[key] = ListedPaper(name, arxiv_id, links=links, text=text)
            if where not in paper.categories:
                paper.categories.append(where)
            for depth in range(1, where.count("/") + 2):
                node_order.setdefault("/".join(where.split("/")[:depth]), None)
    if not found:
        raise SemsearchError("no papers found: the list needs headings and items that link to arXiv")
    if not any(p.arxiv_id for p in found.values()):
        raise SemsearchError("no arXiv links found: semsearch fetches a list's papers from arXiv by their links")
    with_papers = {node.split("/")[0] for node in node_order}
    nodes = [h for h in headings if h in node_order or h.split("/")[0] in with_papers]
    return CuratedList(title, nodes, list(found.values()))
