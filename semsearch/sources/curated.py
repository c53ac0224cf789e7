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

The parser runs in linear time on any input: links, tags, bold text, headings and `<summary>`s are
found by small scanners (str.find), and the few regexes left cannot backtrack (no nested or
adjacent quantifiers over overlapping classes). A list larger than the limits below is refused
with one line naming the limit, before any parsing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace

from semsearch.errors import SemsearchError
from semsearch.paper import normalize_title, parse_arxiv_id, split_lines, web_url

SKIPPED_SECTIONS = re.compile(
    r"^(news|updates?|notice|citation|cite|contribut\w*|contributors|acknowledge?ments?|license|star history|"
    r"table of contents?|contents?|community support|keywords? convention|tutorials?|blogs?( & projects?)?)\b",
    re.IGNORECASE,
)
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
_SUMMARY_OPEN = re.compile(r"<summary>", re.IGNORECASE)
_SUMMARY_CLOSE = re.compile(r"</summary>", re.IGNORECASE)

MAX_CHARS = 5_000_000  # a README of 5 MB is far past any real list (the survey's is 90 KB)
MAX_HEADINGS = 1_000  # headings and <summary> groups: each can be a node, and 4,900 nodes took 3.1 GB to train on
MAX_DEPTH = 12  # a node path's names (6 heading levels, then nested <details>)
MAX_ITEMS = 100_000  # list items and table rows
MAX_NAME = 300  # a heading's name is cut (at a word) to what every door takes as a category
_ARXIV_ID = re.compile(  # abs, pdf and html pages, any version, and arXiv's DOIs
    r"(?:arxiv\.org/(?:abs|pdf|html)/|10\.48550/arxiv\.)([0-9]{4}\.[0-9]{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/[0-9]{7})",
    re.IGNORECASE,
)


def _links(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, label, url) of each markdown link `[label](url ...)`, left to right, also
    `[[Code]](url)` as lists write it: what `\\[+([^\\]]*)\\]+\\(\\s*([^)\\s]+)[^)]*\\)` finds, without its
    cubic backtracking on a run of `[`. Whether a link starts at a `[` depends only on the first `]`
    after it, so every `[` before that `]` shares one answer: each character is looked at a bounded
    number of times."""
    found, start = [], text.find("[")
    while start != -1:
        label_at = start
        while label_at < len(text) and text[label_at] == "[":
            label_at += 1
        close = text.find("]", label_at)
        if close == -1:
            break  # no `]` after here: no link can start at a later `[` either
        after = close
        while after < len(text) and text[after] == "]":
            after += 1
        link = None
        if after < len(text) and text[after] == "(":
            url_at = after + 1
            while url_at < len(text) and text[url_at].isspace():
                url_at += 1
            url_end = url_at
            while url_end < len(text) and text[url_end] != ")" and not text[url_end].isspace():
                url_end += 1
            end = text.find(")", url_end)
            if url_end > url_at and end != -1:
                link = (start, end + 1, text[label_at:close], text[url_at:url_end])
            elif end == -1 and url_end > url_at:
                break  # no `)` after here: no later link can close
        if link:
            found.append(link)
            start = text.find("[", link[1])
        else:  # every `[` up to the `]` fails the same way
            start = text.find("[", close)
    return found


def _unlinked(text: str) -> str:
    """`text` with each link replaced by its label."""
    parts, at = [], 0
    for start, end, label, _ in _links(text):
        parts += [text[at:start], label]
        at = end
    return "".join(parts) + text[at:]


def _untagged(text: str) -> str:
    """`text` without HTML tags (`<` up to the next `>`, at least one character between)."""
    parts, at, start = [], 0, text.find("<")
    while start != -1:
        end = text.find(">", start + 1)
        if end == -1:
            break
        if end == start + 1:  # "<>" is no tag; a tag may start at that ">"'s neighbour
            start = text.find("<", start + 1)
            continue
        parts.append(text[at:start])
        at = end + 1
        start = text.find("<", at)
    return "".join(parts) + text[at:]


def _bold(text: str) -> str | None:
    """The first `**bold**` part's text (at least one character), else None."""
    start = text.find("**")
    while start != -1:
        end = text.find("**", start + 3)
        if end != -1:
            return text[start + 2 : end]
        return None  # no closing `**` after this one: none after a later one either
    return None


def _heading(line: str) -> tuple[int, str] | None:
    """(level, text) of an ATX heading line (`## Name ##`), else None."""
    level = len(line) - len(line.lstrip("#"))
    if not 1 <= level <= 6 or level == len(line) or not line[level].isspace():
        return None
    return level, line[level:].strip().rstrip("#").rstrip()


def _summary(line: str) -> str | None:
    """The text of the first `<summary>...</summary>` in a line, else None."""
    opened = _SUMMARY_OPEN.search(line)
    if opened is None:
        return None
    closed = _SUMMARY_CLOSE.search(line, opened.end())
    return line[opened.end() : closed.start()] if closed else None


@dataclass
class ListedPaper:
    title: str
    arxiv_id: str | None
    categories: list[str] = field(default_factory=list)  # node paths, in the order the list gives them
    links: list[str] = field(default_factory=list)  # other links (code, venue page), first seen first
    text: str = ""  # the item as written (markdown): where a list's own marks, e.g. a venue, may be read
    # Names of other items that link the same arXiv id (a list's slip, or one paper under two names):
    # the paper is one record, and none of them is new to the list.
    other_titles: list[str] = field(default_factory=list)


@dataclass
class Placement:
    """Where a list writes one paper: under `node`, lines `first` to `last` (0-based) of the file.
    Proposals are written after a section's items, in the shape of those items."""

    node: str
    first: int
    last: int
    kind: str  # "item" or "row"
    key: str  # the paper's arXiv id, else its normalised title


@dataclass
class CuratedList:
    title: str | None
    nodes: list[str]  # paths, parents before children, in document order
    papers: list[ListedPaper]
    placements: list[Placement] = field(default_factory=list)  # every paper item, in document order
    heading_lines: dict[str, int] = field(default_factory=dict)  # node -> the line of its heading

    def leaves(self) -> list[str]:
        parents = {node.rsplit("/", depth)[0] for node in self.nodes for depth in range(1, node.count("/") + 1)}
        return [n for n in self.nodes if n not in parents]


def name_form(text: str) -> str:
    """Unicode's compatibility form, the one heading names are read in and typed names compared in:
    "Cafe\u0301" (as a Mac types it) is "Café", full-width "Ｐruning" is "Pruning"."""
    return unicodedata.normalize("NFKC", text)


def clean_name(text: str) -> str:
    """A heading as a node name: markdown, emoji, numbering and path separators removed, in Unicode's
    compatibility form (a heading typed on a Mac, "Cafe\u0301", and "Café" are one node, as are
    "Ｐruning" and "Pruning": questions are read in that form too), at most MAX_NAME characters."""
    text = name_form(_unlinked(_untagged(text)))
    text = re.sub(r"[*_`]", "", text)
    text = re.sub(r"\d?\ufe0f?\u20e3", "", text)  # keycap digits: 1️⃣
    text = "".join(c for c in text if unicodedata.category(c)[0] not in ("S", "C") and c != "\ufe0f" or c in " -")
    text = re.sub(r"^\s*(?:\d+[.)]\s+|[IVX]+\.\s+)", "", text)
    text = text.replace(" / ", ", ").replace("/", "-")
    text = " ".join(text.split()).strip(" :-")
    if len(text) > MAX_NAME:
        cut = text[: MAX_NAME + 1].rsplit(" ", 1)[0]
        text = (cut if 0 < len(cut) <= MAX_NAME else text[:MAX_NAME]).strip(" :-")
    return text


def _title_of(text: str) -> str:
    """The paper's title in a list item: its bold part, else its first link's text, else the text
    before the first link or venue mark."""
    bold = _bold(text)
    if bold is not None:
        return clean_title(bold)
    links = _links(text)
    label = links[0][2] if links and links[0][0] == 0 else ""
    if label.strip() and not label.startswith("!"):
        return clean_title(label)
    head = re.split(r"\[\[|\s\[|</?ins>|!\[", text, maxsplit=1)[0]
    return clean_title(head)


def clean_title(text: str) -> str:
    text = _unlinked(_untagged(text))
    text = re.sub(r"[*_`]", "", text).replace("，", ",")
    text = re.sub(r",\s*(?:[A-Za-z][\w\- ]*,\s*)?(?:19|20)\d{2}\s*$", "", text)  # venue, year of broken markup
    return " ".join(text.split()).strip(" ,.;:")


def _arxiv_id(text: str) -> str | None:
    """The item's arXiv id: a link's target first, then its text (a title may name another paper's
    arXiv address, and a proposed line puts the title before its own link)."""
    for *_, url in _links(text):
        if match := _ARXIV_ID.search(url):
            return parse_arxiv_id(match.group(1))
    match = _ARXIV_ID.search(text)
    return parse_arxiv_id(match.group(1)) if match else None


def _items(lines: list[str]):
    """(first line number, last line number, kind, text) for headings, summaries, closing details,
    list items with their continuation lines, and table rows."""
    item: list[str] | None = None
    start = last = 0
    for number, line in enumerate(lines):
        heading, summary, bullet = _heading(line), _summary(line), _ITEM.match(line)
        row = line.lstrip().startswith("|")
        closing = "</details>" in line.lower()
        if item is not None and (heading or summary is not None or bullet or row or closing or not line.strip()):
            yield start, last, "item", " ".join(item)
            item = None
        if heading:
            yield number, number, "heading", heading
        elif summary is not None:
            yield number, number, "summary", summary
        elif bullet:
            item, start, last = [bullet.group(2)], number, number
        elif row:
            yield number, number, "row", line
        elif item is not None:
            item.append(line.strip())
            last = number
        if closing:
            yield number, number, "close", ""
    if item is not None:
        yield start, last, "item", " ".join(item)


def _one_record_per_title(
    found: dict[str, ListedPaper], placements: list[Placement]
) -> tuple[dict[str, ListedPaper], list[Placement]]:
    """A paper the list gives once without an arXiv link and once with one is one paper, under
    the arXiv id: kept apart, it was stored twice and showed twice in every search."""
    linked = {normalize_title(p.title): key for key, p in found.items() if p.arxiv_id}
    moved = {key: linked[key] for key, p in found.items() if not p.arxiv_id and key in linked}
    position = {key: at for at, key in enumerate(found)}  # linear, as the parser promises
    for key, into in moved.items():
        first, then = found.pop(key), found[into]
        if position[key] > position[into]:
            first, then = then, first
        found[into].categories = first.categories + [c for c in then.categories if c not in first.categories]
    return found, [replace(p, key=moved.get(p.key, p.key)) for p in placements]


def parse_list(markdown: str) -> CuratedList:
    """The nodes and papers of a curated markdown list (see the module's rules)."""
    if len(markdown) > MAX_CHARS:
        raise SemsearchError(f"the list is too large: more than {MAX_CHARS:,} characters")
    lines = split_lines(markdown)
    levels = [found[0] for found in map(_heading, lines) if found]
    if len(levels) > MAX_HEADINGS:
        raise SemsearchError(f"the list has too many headings: more than {MAX_HEADINGS:,}")
    title = None
    drop_title = bool(levels) and levels.count(1) == 1 and levels[0] == 1
    stack: list[tuple[float, str | None]] = []  # (level, name or None when skipped)
    found: dict[str, ListedPaper] = {}
    node_order: dict[str, None] = {}
    headings: dict[str, None] = {}  # every heading's path, papers or not
    details_base: list[float] = []
    counted = {"heading": 0, "summary": 0, "item": 0, "row": 0}

    def path() -> str | None:
        names = [name for _, name in stack]
        return None if not names or None in names else "/".join(names)

    def open_node(level: float, raw: str) -> None:
        while stack and stack[-1][0] >= level:
            stack.pop()
        name = clean_name(raw)
        stack.append((level, None if not name or SKIPPED_SECTIONS.match(name) else name))
        if len(stack) > MAX_DEPTH:
            raise SemsearchError(f"the list nests too deep: more than {MAX_DEPTH} levels of headings and groups")

    placements: list[Placement] = []
    heading_lines: dict[str, int] = {}
    for first, last, kind, text in _items(lines):
        if kind in counted:
            counted[kind] += 1
            if counted["heading"] + counted["summary"] > MAX_HEADINGS:
                raise SemsearchError(f"the list has too many headings: more than {MAX_HEADINGS:,}")
            if counted["item"] + counted["row"] > MAX_ITEMS:
                raise SemsearchError(f"the list has too many items: more than {MAX_ITEMS:,}")
        if kind == "heading":
            level, name = text
            if drop_title and level == 1:
                title = clean_name(name)
                stack.clear()
                continue
            details_base.clear()
            open_node(level, name)
            if path():
                headings.setdefault(path(), None)
                heading_lines.setdefault(path(), first)
        elif kind == "summary":
            base = stack[-1][0] if stack else 0
            details_base.append(base)
            open_node(base + 0.5, text)
            if path():
                headings.setdefault(path(), None)
                heading_lines.setdefault(path(), first)
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
            if arxiv_id is None and (kind == "row" or not (_bold(text) is not None or "[paper]" in text.lower())):
                continue  # prose, a tool, a link list: a paper without an arXiv link shows as one
            name = _title_of(text)
            if not name or (len(name) < 4 and arxiv_id is None):
                continue  # a short name is a paper's only with its arXiv link ("[H2O](arxiv...)")
            key = arxiv_id or normalize_title(name)
            paper = found.get(key)
            if paper is not None and normalize_title(name) != normalize_title(paper.title):
                if name not in paper.other_titles:
                    paper.other_titles.append(name)
            if paper is None:
                links = [
                    url
                    for *_, url in _links(text)
                    if "arxiv" not in url.lower() and not url.startswith("#") and web_url(url) is not None
                ]
                paper = found[key] = ListedPaper(name, arxiv_id, links=links, text=text)
            if where not in paper.categories:
                paper.categories.append(where)
            placements.append(Placement(where, first, last, kind, key))
            for depth in range(1, where.count("/") + 2):
                node_order.setdefault("/".join(where.split("/")[:depth]), None)
    found, placements = _one_record_per_title(found, placements)
    if not found:
        raise SemsearchError("no papers found: the list needs headings and items that link to arXiv")
    if not any(p.arxiv_id for p in found.values()):
        raise SemsearchError("no arXiv links found: semsearch fetches a list's papers from arXiv by their links")
    with_papers = {node.split("/")[0] for node in node_order}
    nodes = [h for h in headings if h in node_order or h.split("/")[0] in with_papers]
    return CuratedList(title, nodes, list(found.values()), placements, heading_lines)
