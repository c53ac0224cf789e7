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

- The Markdown is read as CommonMark with GitHub's tables (markdown-it-py): what GitHub shows as
  code, a comment or plain text is no heading and no paper, and a title is its words (escapes,
  entities and code spans read as GitHub reads them). Markdown GitHub keeps inside an HTML block
  (`<details><summary>..</summary>` with no blank line after it) is read as Markdown all the same.

A list larger than the limits below is refused with one line naming the limit. `_links`, the
scanner `taxonomy propose` finds a line's links with, runs in linear time (str.find, no regex that
can backtrack).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace

from markdown_it import MarkdownIt
from markdown_it.token import Token

from semsearch.errors import SemsearchError
from semsearch.paper import arxiv_id_from_link, normalize_title, parse_arxiv_id, split_lines, web_url

SKIPPED_SECTIONS = re.compile(
    r"^(news|updates?|notice|citation|cite|contribut\w*|contributors|acknowledge?ments?|license|star history|"
    r"table of contents?|contents?|community support|keywords? convention|tutorials?|blogs?( & projects?)?)\b",
    re.IGNORECASE,
)
# GitHub's blocks; escapes and entities kept as tokens of their own (no text_join): an escaped `[`
# is a title's character, not where its links begin.
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table").disable("text_join")
_ESCAPED_BRACKET = "\ue05b"  # an escaped "[" while a title's head is cut at its first link
_SUMMARY_OPEN = re.compile(r"<summary>", re.IGNORECASE)
_SUMMARY_CLOSE = re.compile(r"</summary>", re.IGNORECASE)

MAX_CHARS = 5_000_000  # a README of 5 MB is far past any real list (the survey's is 90 KB)
MAX_HEADINGS = 1_000  # headings and <summary> groups: each can be a node, and 4,900 nodes took 3.1 GB to train on
MAX_DEPTH = 12  # a node path's names (6 heading levels, then nested <details>)
MAX_ITEMS = 100_000  # list items and table rows
# Papers (distinct arXiv ids and titles): a taxonomy's classifier is trained on each, in memory square
# in their number (9,000 took 3.2 GB and two minutes; 90,000 asked for 30 GB and ended in a traceback).
MAX_PAPERS = 10_000
MAX_NAME = 300  # a heading's name is cut (at a word) to what every door takes as a category
_ARXIV_ID = re.compile(  # abs, pdf and html pages, any version, arXiv's DOIs, and "arXiv:ID" as arXiv cites it
    r"(?:arxiv\.org/(?:abs|pdf|html)/|10\.48550/arxiv\.|(?<![\w/.])arxiv: ?)"
    r"([0-9]{4}\.[0-9]{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/[0-9]{7})",
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
    # The item's last line with what it holds after its paper (a nested note, a second paragraph):
    # a new item goes after it, not between the paper and its note. None: `last`.
    end: int | None = None
    # The last line of the list or table the item is in (its items that are no paper included).
    block_end: int | None = None

    @property
    def through(self) -> int:
        return self.last if self.end is None else max(self.end, self.last)

    @property
    def block_through(self) -> int:
        return self.through if self.block_end is None else max(self.block_end, self.through)


@dataclass
class CuratedList:
    title: str | None
    nodes: list[str]  # paths, parents before children, in document order
    papers: list[ListedPaper]
    placements: list[Placement] = field(default_factory=list)  # every paper item, in document order
    heading_lines: dict[str, int] = field(default_factory=dict)  # node -> the line of its heading
    # Items and rows under the list's headings that link somewhere but were not read as papers (no
    # arXiv link, no bold title): their names, in document order. `taxonomy add` says how many.
    unread: list[str] = field(default_factory=list)

    def leaves(self) -> list[str]:
        parents = {node.rsplit("/", depth)[0] for node in self.nodes for depth in range(1, node.count("/") + 1)}
        return [n for n in self.nodes if n not in parents]


def name_form(text: str) -> str:
    """Unicode's compatibility form, the one heading names are read in and typed names compared in:
    "Cafe\u0301" (as a Mac types it) is "Café", full-width "Ｐruning" is "Pruning"."""
    return unicodedata.normalize("NFKC", text)


def clean_name(text: str) -> str:
    """A heading (Markdown) as a node name: its words as GitHub shows them, without emoji, numbering,
    path separators or markup characters, in Unicode's compatibility form (a heading typed on a Mac,
    "Cafe\u0301", and "Café" are one node, as are "Ｐruning" and "Pruning": questions are read in
    that form too), at most MAX_NAME characters."""
    text = name_form(_plain(_inline(name_form(text))))
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


def clean_title(text: str) -> str:
    """A title as read (its words): without a venue and year a broken markup left at its end, with
    single spaces and no trailing punctuation."""
    text = text.replace("，", ",")
    text = re.sub(r",\s*(?:[A-Za-z][\w\- ]*,\s*)?(?:19|20)\d{2}\s*$", "", text)  # venue, year of broken markup
    return " ".join(text.split()).strip(" ,.;:")


def _inline(markdown: str) -> list[Token]:
    """The inline tokens of a line of Markdown (links, emphasis, code, escapes, tags, text)."""
    return _MARKDOWN.parseInline(markdown)[0].children or []


def _plain(tokens: list[Token]) -> str:
    """What GitHub shows of inline tokens as words: text, code, escaped and entity characters; no
    markup, tags or images."""
    return "".join(
        " " if token.type in ("softbreak", "hardbreak") else token.content
        for token in tokens
        if token.type in ("text", "text_special", "code_inline", "softbreak", "hardbreak")
    )


def _until_close(tokens: list[Token], at: int, close: str) -> list[Token]:
    """The tokens inside the one opened at `at`, up to its `close` (nested ones of its kind kept)."""
    depth, end = 0, at
    for end in range(at, len(tokens)):
        depth += tokens[end].nesting if tokens[end].type in (tokens[at].type, close) else 0
        if depth == 0:
            break
    return tokens[at + 1 : end]


def _title_of(tokens: list[Token]) -> str:
    """The paper's title in a list item: its bold part, else the text of the link it starts with,
    else its words before the first link, tag, image or `[`; words without a letter (a date or an
    emoji the item opens with, "2023.10 - [Title](link)") are no title, the first link's text is."""
    for at, token in enumerate(tokens):
        if token.type == "strong_open":
            return clean_title(_plain(_until_close(tokens, at, "strong_close")))
    if tokens and tokens[0].type == "link_open":
        label = _until_close(tokens, 0, "link_close")
        if _plain(label).strip() and not any(t.type == "image" for t in label):
            return clean_title(_plain(label))
    words = _words_before_links(tokens)
    if not re.search(r"[^\W\d_]", words):
        first = next((at for at, token in enumerate(tokens) if token.type == "link_open"), None)
        label = _until_close(tokens, first, "link_close") if first is not None else []
        if re.search(r"[^\W\d_]", _plain(label)) and not any(t.type == "image" for t in label):
            return clean_title(_plain(label))
    return words


def _words_before_links(tokens: list[Token]) -> str:
    head = []
    for token in tokens:
        if token.type in ("link_open", "image", "html_inline"):
            break
        if token.type == "text":
            head.append(token.content)
        elif token.type in ("text_special", "code_inline"):  # a `[` written as a character, not markup
            head.append(token.content.replace("[", _ESCAPED_BRACKET))
        elif token.type in ("softbreak", "hardbreak"):
            head.append(" ")
    words = re.split(r"\[\[|\s\[", "".join(head), maxsplit=1)[0]
    return clean_title(words.replace(_ESCAPED_BRACKET, "["))


def _hrefs(tokens: list[Token]) -> list[str]:
    return [token.attrs["href"] for token in tokens if token.type == "link_open" and token.attrs.get("href")]


def _arxiv_id(tokens: list[Token], text: str) -> str | None:
    """The item's arXiv id: a link's target first, then its text as written (a title may name
    another paper's arXiv address, and a proposed line puts the title before its own link; one it
    escaped, `arxiv\\.org`, names none)."""
    for url in _hrefs(tokens):
        if found := arxiv_id_from_link(url):
            return found
        if match := _ARXIV_ID.search(url):
            return parse_arxiv_id(match.group(1))
    match = _ARXIV_ID.search(text)
    return parse_arxiv_id(match.group(1)) if match else None


_VERBATIM = ("<!--", "<?", "<![", "<!", "<pre", "<script", "<style", "<textarea")  # HTML blocks shown as written


def _blocks(lines: list[str], offset: int = 0, depth: int = 0):
    """(first line, last line, kind, what) in document order: ("heading", (level, Markdown)),
    ("summary", Markdown), ("close", None), ("item" or "row", (the Markdown in one line, its inline
    tokens), its last line, the last line of its list or table). Only a list item's first paragraph
    is its paper; a table row's cells are read as one."""
    tokens = _MARKDOWN.parse("\n".join(lines))
    blocks: list[int] = []  # the last line of each list or table open here, innermost last

    def last_line(end: int, first: int) -> int:  # a block's last line that is not blank
        while end > first and not lines[end].strip():
            end -= 1
        return end

    for at, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open", "table_open"):
            blocks.append(last_line(token.map[1] - 1, token.map[0]) if token.map else -1)
        elif token.type in ("bullet_list_close", "ordered_list_close", "table_close") and blocks:
            blocks.pop()
        if token.type == "heading_open":
            line = offset + token.map[0]
            yield line, line, "heading", (int(token.tag[1]), tokens[at + 1].content)
        elif token.type == "tr_open":
            cells = [t for t in _until_close(tokens, at, "tr_close") if t.type == "inline"]
            inline = [part for cell in cells for part in [*(cell.children or []), Token("softbreak", "", 0)]]
            line = offset + token.map[0]
            block = offset + blocks[-1] if blocks else line
            yield line, line, "row", (" ".join(cell.content.strip() for cell in cells), inline, line, block)
        elif token.type == "html_block" and not token.content.lstrip().lower().startswith(_VERBATIM):
            yield from _html_block(lines, offset, token.map, depth)
        elif token.type == "inline" and tokens[at - 1].type == "paragraph_open":
            first, end = token.map
            if at >= 2 and tokens[at - 2].type == "list_item_open":
                text = " ".join(line.strip() for line in token.content.split("\n"))
                through = last_line((tokens[at - 2].map or token.map)[1] - 1, end - 1)  # the whole item
                block = offset + blocks[-1] if blocks else offset + through
                yield offset + first, offset + end - 1, "item", (text, token.children or [], offset + through, block)
            if "<" in token.content:  # a group opened or closed inside a paragraph
                yield from _html_block(lines, offset, token.map, depth=None)


def _html_block(lines: list[str], offset: int, span: list[int], depth: int | None):
    """A `<details>` group's summary and end, line by line; Markdown lines GitHub shows as they are
    (no blank line after the `<summary>`) are read as Markdown all the same (`depth` None: not)."""
    waiting: int | None = None  # the first of a run of Markdown lines
    for number in range(span[0], span[1] + 1):
        line = lines[number] if number < span[1] else ""
        if depth is not None and line.strip() and not line.lstrip().startswith("<"):
            waiting = number if waiting is None else waiting
            continue
        if waiting is not None and depth < 2:
            yield from _blocks(lines[waiting:number], offset + waiting, depth + 1)
        waiting = None
        # A group's end and the next one's start on one line (`</details><details><summary>`), in their order.
        summary, opened, closed = _summary(line), _SUMMARY_OPEN.search(line), line.lower().find("</details>")
        events = [(opened.start(), "summary", summary)] if summary is not None else []
        events += [(closed, "close", None)] if closed != -1 else []
        for _, kind, what in sorted(events, key=lambda event: event[0]):
            yield offset + number, offset + number, kind, what


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
    # Lines as git counts them (a patch's line numbers): a lone "\r", a line end to markdown-it, is not one.
    lines = [line.replace("\r", " ") for line in split_lines(markdown)]
    blocks = list(_blocks(lines))
    levels = [what[0] for _, _, kind, what in blocks if kind == "heading"]
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
    unread: list[str] = []
    for first, last, kind, what in blocks:
        if kind in counted:
            counted[kind] += 1
            if counted["heading"] + counted["summary"] > MAX_HEADINGS:
                raise SemsearchError(f"the list has too many headings: more than {MAX_HEADINGS:,}")
            if counted["item"] + counted["row"] > MAX_ITEMS:
                raise SemsearchError(f"the list has too many items: more than {MAX_ITEMS:,}")
        if kind == "heading":
            level, name = what
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
            open_node(base + 0.5, what)
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
            text, tokens, through, block = what  # a row's cells as one: the first cell names the paper
            arxiv_id = _arxiv_id(tokens, text)
            bold = any(token.type == "strong_open" for token in tokens)
            if arxiv_id is None and (kind == "row" or not (bold or "[paper]" in text.lower())):
                _unread(unread, tokens, text)  # prose, a tool, a link list: a paper without an arXiv link shows as one
                continue
            name = _title_of(tokens)
            if not name or (len(name) < 4 and arxiv_id is None):
                _unread(unread, tokens, text)  # a short name is a paper's only with its arXiv link ("[H2O](arxiv...)")
                continue
            key = arxiv_id or normalize_title(name)
            paper = found.get(key)
            if paper is not None and normalize_title(name) != normalize_title(paper.title):
                if name not in paper.other_titles:
                    paper.other_titles.append(name)
            if paper is None:
                links = list(
                    dict.fromkeys(  # a badge's link and the name's link often go to one page
                        url
                        for url in _hrefs(tokens)
                        if "arxiv" not in url.lower() and not url.startswith("#") and web_url(url) is not None
                    )
                )
                paper = found[key] = ListedPaper(name, arxiv_id, links=links, text=text)
                if len(found) > MAX_PAPERS:
                    raise SemsearchError(f"the list has too many papers: more than {MAX_PAPERS:,}")
            if where not in paper.categories:
                paper.categories.append(where)
            placements.append(Placement(where, first, last, kind, key, through, block))
            for depth in range(1, where.count("/") + 2):
                node_order.setdefault("/".join(where.split("/")[:depth]), None)
    found, placements = _one_record_per_title(found, placements)
    if not found:
        raise SemsearchError("no papers found: the list needs headings and items that link to arXiv")
    if not any(p.arxiv_id for p in found.values()):
        raise SemsearchError("no arXiv links found: semsearch fetches a list's papers from arXiv by their links")
    with_papers = {node.split("/")[0] for node in node_order}
    nodes = [h for h in headings if h in node_order or h.split("/")[0] in with_papers]
    return CuratedList(title, nodes, list(found.values()), placements, heading_lines, unread)


def _unread(unread: list[str], tokens: list[Token], text: str) -> None:
    """Note an item or row not read as a paper when it links to a page (a paper's entry, as a reader
    sees it, without an arXiv link): prose and table headers link nowhere, and in-page links are
    a table of contents."""
    if any(not url.startswith("#") and web_url(url) is not None for url in _hrefs(tokens)):
        unread.append(_title_of(tokens) or clean_title(text))
