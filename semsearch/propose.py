"""`semsearch taxonomy propose NAME`: give papers back to a list, as a patch its maintainers can take.

The in-scope papers of the index that a list does not hold are placed under its headings by the
list's classifier and written as a unified diff against the list's README, each line in the shape
of the lines already in its section (learned from one of them: its title, link, author, venue and
year marks, numbering, blank lines between items). A paper whose place is unsure (confidence
under `min_confidence`) is listed apart, never guessed into the patch. The diff applies to the
README it was made from; once the list takes the papers, they are in the README and no later run
proposes them again.

The shape of a line is learned, not configured: a section's item is a template once its own
title, arXiv id, authors, venue and year are found in it. Parts of it that belong to that paper
alone (its code link, its feature badges) are left out unless the new paper has them too.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from semsearch import markup
from semsearch.errors import NotFound, SemsearchError
from semsearch.paper import (
    Paper,
    TitlesHeld,
    normalize_title,
    split_lines,
    title_without_authors,
    year_from_arxiv_id,
)
from semsearch.requests_models import Day, PaperId, TaxonomyName
from semsearch.sources.curated import _ARXIV_ID, CuratedList, ListedPaper, Placement, _links, clean_title, parse_list

MAX_IDS = 200  # papers asked for by id at once
DEFAULT_MIN_CONFIDENCE = 0.35  # under it a paper is listed apart ("unsure"), not written into the patch
# A list's own topic (`on_topic`): a candidate scored under 9 in 10 of the list's own papers is not
# proposed; one under 3 in 4 is listed apart, unsure, not written into the patch.
TOPIC_NEAR_PERCENTILE = 10.0
TOPIC_SURE_PERCENTILE = 25.0
TOPIC_BACKGROUND = 400  # the index's other papers, sampled, standing for the rest of the field
TOPIC_FOLDS = 5
IN_ORDER_SHARE = 0.9  # of a section's neighbouring items in arXiv order, for it to be kept in that order
MIN_TOPIC_PAPERS = 5  # a list this small has no topic to learn: its candidates are judged by scope alone
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")
_YEAR_MONTH = re.compile(r"(?<![\d.])((?:19|20)\d{2})\.(\d{2})(?![\d])")
_ARXIV_WORD = re.compile(r"(?<![\w/.])arxiv(?![\w/.])", re.IGNORECASE)
_BADGE = "img.shields.io/badge/"


MinConfidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]  # the HTTP query's too, so published


class ProposeRequest(BaseModel):
    """What `propose` (and `gaps`) accept at every door: the CLI, the HTTP API and MCP."""

    model_config = ConfigDict(extra="forbid")
    taxonomy: TaxonomyName
    since: Day | None = None
    # None: no paper named. Given, at least one: `ids=` or `--ids ,,` proposed every paper at one door.
    ids: Annotated[list[PaperId], Field(min_length=1, max_length=MAX_IDS)] | None = None
    min_confidence: MinConfidence = DEFAULT_MIN_CONFIDENCE


@dataclass
class Proposal:
    id: str
    title: str
    node: str
    confidence: float
    line: str  # the markdown written into the list (several lines joined by "\n" when items span lines)
    unsure: bool = False
    alternatives: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "node": self.node,
            "confidence": round(self.confidence, 4),
            "line": self.line,
            "unsure": self.unsure,
        }


# --- a list's own line format ------------------------------------------------------------------
def _line_year(paper: Paper) -> int | str:
    """The year a line gives: the paper's own, but never before its arXiv id's for a preprint (the
    survey's list dates some preprints a year before arXiv had them, "2308.14352 … arXiv, 2022"); a
    venue may come first (a workshop paper posted later)."""
    from semsearch.bibtex import PREPRINT_VENUES

    posted = year_from_arxiv_id(paper.arxiv_id or "")
    year = paper.year or (paper.published or "")[:4] or posted or ""
    if posted and str(year).isdigit() and int(year) < posted and (paper.venue or "").lower() in PREPRINT_VENUES:
        return posted
    return year


def listed_titles(listed: CuratedList) -> TitlesHeld:
    """The titles of every item of a list, linked or not, under every name it gives a paper: a paper
    of the index by one of them, whatever arXiv id the list links, or by a PDF's reading of one
    unless the list links another id (`TitlesHeld`), is already in the list (the survey's list was
    proposed LoRA, Performers, PoSE, Scatterbrain and expert-choice routing, which it holds, from
    their PDF-read copies)."""
    return TitlesHeld((title, p.arxiv_id) for p in listed.papers for title in (p.title, *p.other_titles))


def list_key(paper: ListedPaper | Paper) -> str:
    arxiv_id = paper.arxiv_id
    return arxiv_id or normalize_title(paper.title)


def _names(paper: ListedPaper | Paper) -> tuple[str, str]:
    """What a record of papers taken out knows a paper by: its `list_key` and its title."""
    return list_key(paper), normalize_title(paper.title)


def _venue(stored: str | None, arxiv_word: str) -> str:
    """The venue a line names: the paper's own without its year (the line writes the year where
    the list does) and without arXiv, which the list spells its own way; the list's arXiv when
    nothing else is left ("arXiv 2024" had become an "arXiv2024" badge)."""
    from semsearch.bibtex import PREPRINT_VENUES

    parts = [" ".join(_YEAR.sub("", part).split()).strip(" .") for part in (stored or "").split(",")]
    kept = [_safe_title(part) for part in parts if part.lower() not in PREPRINT_VENUES]
    return ", ".join(part for part in kept if part) or arxiv_word


def _arxiv_spelling(markdown: str) -> str:
    """How the list writes arXiv as a venue ("arXiv", "Arxiv", ...): its most common spelling
    outside links."""
    spelled = Counter(m.group(0) for m in _ARXIV_WORD.finditer(markdown))
    return spelled.most_common(1)[0][0] if spelled else "arXiv"


def _span_of(text: str, title: str) -> tuple[int, int] | None:
    at = text.find(title)
    if at == -1:
        at = text.lower().find(title.lower())
    return None if at == -1 else (at, at + len(title))


def _authors_span(text: str, after: int) -> tuple[int, int] | None:
    """The first `*italic*` (single asterisks) after `after`: how lists write authors. Runs of two
    or more asterisks (bold marks) are stepped over."""

    def lone_star(at: int) -> int:
        while (at := text.find("*", at)) != -1:
            run = len(text[at:]) - len(text[at:].lstrip("*"))
            if run == 1:
                return at
            at += run
        return -1

    start = lone_star(after)
    end = lone_star(start + 1) if start != -1 else -1
    return None if end == -1 else (start, end + 1)


def _images(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of each image `![alt](url)`, wrapped in its link when it has one
    (`[![alt](img)](href)`): badges."""
    found, at = [], 0
    while (start := text.find("![", at)) != -1:
        close = text.find("](", start)
        end = text.find(")", close) if close != -1 else -1
        if close == -1 or end == -1:
            break
        url, begin, stop = text[close + 2 : end].strip(), start, end + 1
        if start > 0 and text[start - 1] == "[" and text[stop : stop + 2] == "](":
            outer = text.find(")", stop + 2)
            if outer != -1:
                begin, stop = start - 1, outer + 1
        found.append((begin, stop, url))
        at = stop
    return found


def _venue_badge(url: str) -> bool:
    return _BADGE in url and url.rstrip("/").endswith("-orange") or _BADGE in url and "arxiv" in url.lower()


def _shields(text: str) -> str:
    return text.replace("-", "--").replace("_", "__").replace(" ", "_")


MAX_TEMPLATE = 5_000  # characters of an item imitated: the longest in four real lists is 591


@dataclass
class Template:
    """One item of a section, with the places of its own facts, to write another paper like it."""

    text: str  # the item's lines joined by "\n", its list marker included
    listed: ListedPaper  # the paper it writes
    extras: int  # parts that belong to that paper alone and are dropped (code links, feature badges)

    @property
    def link_form(self) -> str:
        """How the item links arXiv: its first arXiv address without the id ("arxiv.org/abs/")."""
        match = _ARXIV_ID.search(self.text)
        return match.group(0)[: match.start(1) - match.start()].lower() if match else ""

    @classmethod
    def learn(cls, lines: Sequence[str], listed: ListedPaper) -> Template | None:
        """The item as a template, None when it cannot be one: without an arXiv link or its title,
        or longer than MAX_TEMPLATE (writing a line costs time in its parts times its length: an
        item of 40,000 code links, 1.2 MB, took 43 s to imitate, for each paper proposed)."""
        text = "\n".join(lines)
        if len(text) > MAX_TEMPLATE:
            return None
        if listed.arxiv_id is None or _span_of(text, listed.title) is None or not _ARXIV_ID.search(text):
            return None
        badges = _images(text)
        extras = sum(1 for at, end, url in badges if not _venue_badge(url) and not _links_paper(text[at:end], listed))
        title = _span_of(text, listed.title)
        # A bare badge (`![ICML](…)`) reads as a link too: counted once, as a badge, above.
        extras += sum(
            1
            for start, end, label, url in _links(text)
            if _is_extra(label, url) and not start <= title[0] < end and not _inside(start, badges)
        )
        return cls(text, listed, extras)

    def render(self, paper: Paper, number: int | None, arxiv_word: str) -> str:
        text, listed = self.text, self.listed
        arxiv_id = paper.arxiv_id or ""
        year = str(_line_year(paper))
        venue = _venue(paper.venue, arxiv_word)
        edits: list[tuple[int, int, str]] = []  # (start, end, replacement), non-overlapping
        title = _span_of(text, listed.title)
        written = _safe_title(paper.title)
        # The list's period after a title is the title's own end mark when it has one: not "One?."
        ends = written.endswith((".", "?", "!")) and text[title[1] : title[1] + 1] == "."
        edits.append((title[0], title[1] + ends, written))
        badges = _images(text)
        for match in _ARXIV_ID.finditer(text):
            if any(start <= match.start() < end for start, end, _ in badges):
                continue  # the badge's edit below writes it
            end = match.end(1)
            version = re.match(r"v\d+", text[end : end + 4])
            edits.append((match.start(1), end + (version.end() if version else 0), arxiv_id))
        authors = _authors_span(text, title[1])
        if authors is not None:
            written = text[authors[0] + 1 : authors[1] - 1]
            known = [name for name in map(_safe_title, paper.authors) if name]
            et_al = re.search(r"\bet al\.?\s*$", written)
            if et_al and len(known) > 1:  # "Leviathan et al.": its style
                names, ending = f"{known[0].split()[-1]} et al.", ""
            else:  # "et al."'s period is no period closing the names
                names = ", ".join(known)
                ending = "." if written.rstrip().endswith(".") and not et_al else ""
            if names:
                edits.append((*authors, f"*{names}{ending}*"))
            else:  # no authors known: the mark goes, with the period or comma and space that followed it
                end = authors[1] + (text[authors[1] : authors[1] + 1] in (".", ","))
                edits.append((authors[0], end + (text[end : end + 1] == " "), ""))
        # venue and year: the survey's <ins>Venue, Year</ins>; a venue badge; YYYY.MM; "Venue Year."
        lower = text.lower()
        ins, ins_end = lower.find("<ins>"), lower.find("</ins>")
        if ins != -1 and ins_end > ins:
            inner = text[ins + 5 : ins_end]
            joiner = ", " if "," in inner else " "
            edits.append((ins + 5, ins_end, f"{venue}{joiner}{year}" if _YEAR.search(inner) else venue))
        for start, end, url in badges:
            badge = text[start:end]
            if _venue_badge(url) and not (listed.arxiv_id and listed.arxiv_id in url):
                name = _BADGE + _shields(venue if venue == arxiv_word else f"{venue}{year}") + "-orange"
                badge = badge.replace(url, "https://" + name if "//" in url else name)
                edits.append((start, end, _with_id(badge, listed.arxiv_id or "", arxiv_id)))
            elif _links_paper(badge, listed):  # its arXiv badge or link: the new paper's, in its form
                edits.append((start, end, _with_id(badge, listed.arxiv_id or "", arxiv_id)))
            else:
                edits.append((start, end, ""))
        for start, end, label, url in _links(text):
            if _is_extra(label, url) and not _inside(start, edits) and not start <= title[0] < end:
                edits.append(
                    (start, end + (1 if text[start : start + 2] == "[[" and text[end : end + 1] == "]" else 0), "")
                )
        # YYYY.MM is when it appeared on arXiv: both from its id (a venue's later year beside the
        # id's month wrote 2412.00876 as "2025.12").
        month = arxiv_id[2:4] if re.fullmatch(r"\d{4}\.\d{4,5}", arxiv_id) else None
        for match in _YEAR_MONTH.finditer(text):
            if not _inside(match.start(), edits) and month:
                edits.append((match.start(), match.end(), f"{year_from_arxiv_id(arxiv_id)}.{month}"))
        plain_from = authors[1] if authors else title[1]
        for match in _YEAR.finditer(text, plain_from):
            if _inside(match.start(), edits) or _in_link_target(text, match.start()):
                continue
            before = text[plain_from : match.start()]
            word = _last_word(before)
            start = plain_from + word if word is not None and "](" not in before[word:] else match.start()
            edits.append((start, match.end(), f"{venue} {year}" if start != match.start() else year))
            break
        for start, end, replacement in sorted(edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        text = _tidy(text)
        if number is not None:
            text = re.sub(r"^(\s*)\d+([.)])", lambda m: f"{m.group(1)}{number}{m.group(2)}", text, count=1)
        return text


def _links_paper(badge: str, listed: ListedPaper) -> bool:
    """Whether a badge names or links the paper its line lists (`[![arXiv](…/arXiv-ID-…)](…/abs/ID)`):
    the paper's own link, not a part of that paper alone."""
    return bool(listed.arxiv_id) and listed.arxiv_id in badge


def _with_id(text: str, old: str, new: str) -> str:
    """`text` naming arXiv paper `new` wherever it named `old` (a version of it too)."""
    return re.sub(re.escape(old) + r"(?:v\d+)?", lambda _: new, text) if old else text


def _is_extra(label: str, url: str) -> bool:
    """A link of that paper alone (code, blog, project page): any but its arXiv link and badges."""
    return "arxiv" not in url.lower() and not label.startswith("!")


def _last_word(text: str) -> int | None:
    r"""Where the word `text` ends with (spaces and commas after it aside) starts, at its first ASCII
    letter: what `([A-Za-z][\w\-]*)[ ,]*$` finds, read back from the end. The pattern tried each
    start in a run of word characters the text does not end with (a list's line "... aaa…a! 2023"):
    one proposal from a line of 100,000 took two minutes."""
    end = len(text.removesuffix("\n").rstrip(" ,"))  # `$` is also before a last line end
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    return next((at for at in range(start, end) if text[at].isascii() and text[at].isalpha()), None)


def _inside(at: int, edits: list[tuple[int, int, str]]) -> bool:
    return any(start <= at < end for start, end, _ in edits)


def _in_link_target(text: str, at: int) -> bool:
    """Whether `at` is inside a link's or image's (url)."""
    opened = text.rfind("](", 0, at)
    return opened != -1 and text.find(")", opened) >= at and "\n" not in text[opened:at]


def _safe_title(title: str) -> str:
    """A title (or an author's name, a venue) as list markup can carry it: brackets, asterisks,
    quotes and tags as look-alikes (a maintainer reads the file), the rest of markup escaped
    (`markup.text`): nothing ends its link or bold early, or opens a link, heading or table cell."""
    return markup.text(title.translate(str.maketrans({"[": "(", "]": ")", "*": "", "`": "'", "<": "‹", ">": "›"})))


def _tidy(text: str) -> str:
    """Separators left by a dropped part: ", ," or a space before a comma or the line's last period;
    inner runs of spaces; trailing spaces that are no line break (`git apply` warns of them), the
    item's last line's too: two or more ending an inner line, a markdown line break, stay."""
    lines = []
    split = text.split("\n")
    for number, line in enumerate(split):
        body, trail = line.rstrip(" "), line[len(line.rstrip(" ")) :]
        trail = trail if len(trail) >= 2 and number < len(split) - 1 else ""
        marker = re.match(r"\s*(?:[-*+]|\d+[.)])\s+", body)  # a list marker keeps its space (a title may start ",")
        head, body = (body[: marker.end()], body[marker.end() :]) if marker else ("", body)
        body = re.sub(r"(?<=\S) {2,}(?=\S)", " ", body)
        body = body.replace(" ,", ",").replace(",,", ",").replace("], .", "].").rstrip(",")
        body = re.sub(r",(?=\s*$)", "", body)
        body = re.sub(r"(?<=[\w)\]]) +\.$", ".", body)  # a part dropped before the line's own period
        lines.append(head + body + trail)
    return "\n".join(lines)


@dataclass
class Section:
    node: str
    insert_after: int  # the line after which new items go
    templates: list[Template]
    numbered: int | None  # the next number, when the section numbers its items
    blank_between: bool  # items separated by a blank line
    indent: str = ""
    # A section whose items run in arXiv order (oldest first: 1, newest first: -1; 0 when not, or
    # numbered) takes a new item at its place, after the item (first line, last line) given here.
    order: int = 0
    dated: list[tuple[str, int, int]] = field(default_factory=list)  # (YYMM, first line, last line)

    def place_for(self, paper: Paper) -> int:
        """The line a new item about `paper` goes after: its place by date in a section kept in
        arXiv order (a maintainer moved every appended line by hand), else after the last item."""
        posted = _yymm(paper.arxiv_id)
        if not self.order or posted is None:
            return self.insert_after
        later = (i for i, (date, _, _) in enumerate(self.dated) if (date > posted if self.order > 0 else date < posted))
        first_later = next(later, None)  # the new item goes just before it (a list mostly in order: the first)
        if first_later is None:
            return self.insert_after
        return self.dated[first_later - 1][2] if first_later else self.dated[0][1] - 1


def sections(listed: CuratedList, lines: Sequence[str]) -> dict[str, Section]:
    """Where and how each heading of the list takes a new item."""
    by_key = {list_key(p): p for p in listed.papers}
    placed: dict[str, list[Placement]] = {}
    for place in listed.placements:
        placed.setdefault(place.node, []).append(place)
    found = {}
    for node, places in placed.items():
        templates = []
        for place in places:
            template = Template.learn(lines[place.first : place.last + 1], by_key[place.key])
            if template is not None:
                templates.append(template)
        last = places[-1]
        # Numbered on from the list's last item, and written after it, a paper or not (an OpenReview link).
        number = re.match(r"^(\s*)\d+[.)]\s", lines[last.first])
        if number is not None:
            at_its_indent = re.compile(rf"^{number.group(1)}(\d+)[.)]\s")
            number = [n for n in map(at_its_indent.match, lines[last.first : last.block_through + 1]) if n][-1]
        # Items blank lines apart: a note under an item, or a row that is no paper, is no gap.
        gap = sum(
            1
            for a, b in zip(places, places[1:], strict=False)
            if any(not line.strip() for line in lines[a.through + 1 : b.first])
        )
        found[node] = Section(
            node,
            last.block_through,
            templates,
            int(number.group(1)) + 1 if number else None,
            len(places) > 1 and gap * 2 >= len(places) - 1,
        )
        if number is None:
            dated = ((_shown_month(lines[p.first : p.last + 1]) or _yymm(p.key), p) for p in places)
            found[node].dated = [(d, p.first, p.through) for d, p in dated if d is not None]
            found[node].order = _arxiv_order([d for d, _, _ in found[node].dated])
    return found


def _shown_month(item: Sequence[str]) -> str | None:
    """The month an item shows ("2023.12" -> "2312"; not in a link's address), else None. A list
    ordered by the months it shows holds items linked elsewhere than arXiv (OpenReview) in that
    order too: a new 2024.01 line went above two 2023.12 ones, dated by arXiv ids alone."""
    text = "\n".join(item)
    shown = (m for m in _YEAR_MONTH.finditer(text) if not _in_link_target(text, m.start()))
    return next((m.group(1)[2:] + m.group(2) for m in shown), None)


def _yymm(arxiv_id: str | None) -> str | None:
    """The year and month of a new-style arXiv id (2401.00001 -> "2401"), else None."""
    return arxiv_id[:4] if arxiv_id and re.fullmatch(r"[0-9]{4}\.[0-9]{4,5}", arxiv_id) else None


def _arxiv_order(dates: Sequence[str]) -> int:
    """1 when the dates run oldest first, -1 newest first, 0 otherwise (or too few to tell). In
    order means nine in ten neighbours are: a long list kept by hand has a few items out of place."""
    if len(dates) < 4 or dates[0] == dates[-1]:  # three in a row are in order one time in three
        return 0
    pairs = list(zip(dates, dates[1:], strict=False))
    for order, in_order in ((1, lambda a, b: a <= b), (-1, lambda a, b: a >= b)):
        if sum(in_order(a, b) for a, b in pairs) >= IN_ORDER_SHARE * len(pairs):
            return order
    return 0


def render_line(section: Section, fallback: list[Template], paper: Paper, arxiv_word: str) -> str:
    """`paper` written like the section's items (its most plain one: fewest parts to drop; the
    latest among equals), else like the list's items elsewhere."""
    templates = section.templates or fallback
    if not templates:
        return f"- [{_safe_title(paper.title)}](https://arxiv.org/abs/{paper.arxiv_id})"
    # Among the plainest, one linking arXiv as most of the section's items do: the survey's pruning
    # lines all came out as arXiv DOIs (https://doi.org/10.48550/arXiv.…), which 5 of its 400 use.
    forms = Counter(t.link_form for t in templates)
    best = min(reversed(templates), key=lambda t: (t.extras, -forms[t.link_form]))
    number = section.numbered
    if number is not None:
        section.numbered = number + 1
    return best.render(paper, number, arxiv_word)


# --- which papers, where -------------------------------------------------------------------------
@dataclass
class Candidate:
    paper: Paper
    vector: np.ndarray | None  # as stored (None: a list's paper the index does not hold)


def paper_date(paper: Paper) -> str:
    """The day a paper appeared (`Paper.appeared`), for sorting and `since`; undated, before all."""
    return paper.appeared or "0000-00-00"


def candidates(
    store, listed: CuratedList, *, since: str | None, ids: Sequence[str] | None, removed: Collection[str] = ()
) -> list[Candidate]:
    """The index's papers with an arXiv id that the list does not hold, by any link or title
    (appeared on or after `since`; only `ids` when given), less those its maintainers `removed`
    (`list_key`s) unless asked for by id."""
    held, titles = {list_key(p) for p in listed.papers}, listed_titles(listed)
    # An item the list links elsewhere than arXiv (an OpenReview page), named as the paper is: held.
    linked = {normalize_title(name) for name in listed.unread}
    removed = set() if ids else set(removed)  # asked for by id, a paper taken out is proposed
    if ids:
        vec_ids = []
        for paper_id in ids:
            vec_id = store.find(paper_id)
            if vec_id is None:
                raise NotFound(f"no paper {paper_id!r} in the index")
            vec_ids.append(vec_id)
        papers = store.papers_by_vec_id(vec_ids)
    else:
        papers = dict(store.iter_papers())
    chosen = {
        vec_id: paper
        for vec_id, paper in papers.items()
        if paper.arxiv_id
        and list_key(paper) not in held
        and normalize_title(paper.title) not in titles.keys  # the same title, whatever id the list links
        and normalize_title(paper.title) not in linked
        and (paper.title, paper.arxiv_id) not in titles
        and (since is None or paper_date(paper) >= since)
        and len(clean_title(paper.title)) >= 4  # shorter, a list's parser takes no item for a paper
        and not removed.intersection(_names(paper))
    }
    vectors = store.embeddings_for(chosen)
    return [Candidate(paper, vectors[vec_id]) for vec_id, paper in chosen.items() if vec_id in vectors]


def background(store, listed: CuratedList, taken: Sequence[Candidate], size: int = TOPIC_BACKGROUND) -> list[Candidate]:
    """Up to `size` of the index's papers that neither the list holds nor are candidates (a seeded
    sample): the rest of the field, for `on_topic`."""
    held = {list_key(p) for p in listed.papers} | {list_key(c.paper) for c in taken}
    rest = [(v, p) for v, p in store.iter_papers() if list_key(p) not in held]
    rng = np.random.default_rng(0)
    picked = [rest[i] for i in sorted(rng.choice(len(rest), size=min(size, len(rest)), replace=False))] if rest else []
    vectors = store.embeddings_for(v for v, _ in picked)
    return [Candidate(p, vectors[v]) for v, p in picked if v in vectors]


class TopicVerdict(NamedTuple):
    near: np.ndarray  # at least as high as 9 in 10 of the list's own papers: may be proposed
    sure: np.ndarray  # at least as high as 3 in 4 of them: may be written into the patch


def on_topic(
    own: Sequence[Candidate], chosen: Sequence[Candidate], others: Sequence[Candidate], embed: EmbedFn
) -> TopicVerdict:
    """Which of `chosen` are on the own topic of a list whose papers are `own`, not only in its
    field. A list's classifier calls in scope what is efficient-LLM work: a KV-cache list was
    offered weight quantization and state-space papers (it took 0.80 of the speculative-decoding
    list's papers). Here a linear SVM (`recommend`'s) separates the list's papers from `others`,
    the rest of the index, and `chosen`, each scored by a model that did not see it (TOPIC_FOLDS
    folds), and each candidate is measured against the list's own papers' scores (the
    TOPIC_*_PERCENTILE constants; at 9 in 10 alone, 120 lines for a KV-cache list, few of them on
    KV caches). By their titles on both sides (`title_vectors`): offline a list's papers are
    known by title while the index holds abstracts, and a model of the texts as stored would
    learn their form."""
    from semsearch.related import separating_direction

    if len(own) < MIN_TOPIC_PAPERS or not chosen:
        return TopicVerdict(np.ones(len(chosen), dtype=bool), np.ones(len(chosen), dtype=bool))
    features = title_vectors([*own, *chosen, *others], embed)
    labels = np.r_[np.ones(len(own)), np.zeros(len(chosen) + len(others))]
    fold = np.random.default_rng(0).integers(0, TOPIC_FOLDS, len(features))
    scores = np.zeros(len(features))
    for k in range(TOPIC_FOLDS):
        train, test = fold != k, fold == k
        if test.any() and 0 < labels[train].sum() < train.sum():
            scores[test] = features[test] @ separating_direction(features[train], labels[train], np.ones(train.sum()))
    return topic_verdict(scores[: len(own)], scores[len(own) : len(own) + len(chosen)])


def topic_verdict(own_scores: np.ndarray, chosen_scores: np.ndarray) -> TopicVerdict:
    """Each candidate's score against the list's own papers' (both out of fold)."""
    return TopicVerdict(
        chosen_scores >= np.percentile(own_scores, TOPIC_NEAR_PERCENTILE),
        chosen_scores >= np.percentile(own_scores, TOPIC_SURE_PERCENTILE),
    )


def title_vectors(papers: Sequence[Candidate], embed: EmbedFn) -> np.ndarray:
    """Unit vectors of the papers' titles: the stored vector of a paper known by its title alone
    (what the index embedded), the title embedded now for the rest (in one call)."""
    fresh = [i for i, c in enumerate(papers) if c.vector is None or c.paper.abstract]
    rows = [c.vector for c in papers]
    for i, vector in zip(fresh, embed([papers[i].paper.title for i in fresh]) if fresh else [], strict=True):
        rows[i] = vector
    vectors = np.vstack(rows).astype(np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def listed_candidates(store, papers: Sequence[ListedPaper]) -> list[Candidate]:
    """The listed papers as the index holds them (`lists.indexed_as`), with their stored vectors;
    one the index does not hold by its title as the list gives it, without a vector."""
    from semsearch.lists import indexed_as

    vec_ids = [indexed_as(store, paper) for paper in papers]
    known = [v for v in vec_ids if v is not None]
    held, vectors = store.papers_by_vec_id(known), store.embeddings_for(known)
    return [
        Candidate(held[v], vectors.get(v)) if v in held else Candidate(Paper(id=list_key(p), title=p.title), None)
        for p, v in zip(papers, vec_ids, strict=True)
    ]


def place(
    classifier, found: list[Candidate], *, in_scope_only: bool = False
) -> list[tuple[Candidate, list[str], float, float]]:
    """(candidate, the three most probable headings, confidence, scope probability) for each
    candidate (with `in_scope_only`, for those in scope: the rest are not placed, the costly part).
    A list's line goes under one heading, so the first is the most probable leaf (not the top-down
    walk `classify` shows for browsing), and the others the next most probable, even siblings of it.
    The confidence is the chance the first is right and the paper in scope at all."""
    from semsearch.classify import SCOPE_THRESHOLD

    placed = []
    for start in range(0, len(found), 512):
        chunk = found[start : start + 512]
        texts = [c.paper.embedding_text() for c in chunk]
        vectors = np.vstack([c.vector for c in chunk]).astype(np.float32)
        in_scope = classifier.scope_probabilities(texts, vectors)
        if in_scope_only:
            kept = np.flatnonzero(in_scope >= SCOPE_THRESHOLD)
            chunk, texts, vectors, in_scope = (
                [chunk[i] for i in kept],
                [texts[i] for i in kept],
                vectors[kept],
                in_scope[kept],
            )
            if not chunk:
                continue
        probabilities = classifier.probabilities(classifier.leaf_scores(texts, vectors))
        for candidate, row, inside in zip(chunk, probabilities, in_scope, strict=True):
            best = np.argsort(-row)[:3]
            headings = [classifier.leaves[j] for j in best]
            placed.append((candidate, headings, float(row[best[0]] * inside), float(inside)))
    return placed


def propose(
    markdown: str,
    store,
    classifier,
    *,
    since: str | None = None,
    ids: Sequence[str] | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    filename: str = "README.md",
    embed: EmbedFn | None = None,
    confirmed: dict[str, str] | None = None,
    removed: Collection[str] = (),
) -> tuple[list[Proposal], str]:
    """The proposals for the list `markdown` (sure ones first, by heading) and the unified diff
    that writes the sure ones into it. With `embed` (the index's model), only papers on the list's
    own topic are proposed (`on_topic`), not all of the field its classifier calls in scope.
    `confirmed` (paper id -> heading, the user's labels in the list) are proposed under their
    heading, sure, whatever the classifier and `since` say (when `ids` are given, those of them).
    `removed` (`list_key`s): papers the list's maintainers took out, proposed only when asked for by id."""
    listed = parse_list(markdown)
    lines = split_lines(markdown)
    found = candidates(store, listed, since=since, ids=ids, removed=removed)
    # `ids` as typed (a version, a URL): a label is kept for the paper they name, as `candidates` found it.
    asked = {c.paper.id for c in found}
    confirmed = {k: v for k, v in (confirmed or {}).items() if not ids or k in asked}
    labelled = candidates(store, listed, since=None, ids=list(confirmed)) if confirmed else []
    by_user = {c.paper.id: c for c in labelled if c.paper.id in confirmed}
    found = [c for c in found if c.paper.id not in by_user]
    # Out of scope is never proposed, nor off the list's topic, unless asked for by id.
    placed = place(classifier, found, in_scope_only=not ids)
    at_the_edge: set[str] = set()  # near the list's topic, not on it: listed apart, unsure
    if embed is not None and not ids and placed:
        chosen = [p[0] for p in placed]
        topic = on_topic(listed_candidates(store, listed.papers), chosen, background(store, listed, found), embed)
        at_the_edge = {p[0].paper.id for p, sure in zip(placed, topic.sure, strict=True) if not sure}
        placed = [p for p, near in zip(placed, topic.near, strict=True) if near]
    placed += [(candidate, [confirmed[paper_id]], 1.0, 1.0) for paper_id, candidate in by_user.items()]
    by_section = sections(listed, lines)
    fallback = [t for s in by_section.values() for t in s.templates]
    arxiv_word = _arxiv_spelling(markdown)
    proposals: list[Proposal] = []
    insertions: dict[int, list[str]] = {}
    order = {node: i for i, node in enumerate(listed.nodes)}
    placed.sort(key=lambda p: (order.get(p[1][0], len(order)), p[0].paper.arxiv_id or ""))
    for candidate, suggested, confidence, _ in placed:
        # Written for the list's maintainers: without the authors a PDF's text ran on after the title.
        node, paper = suggested[0], replace(candidate.paper, title=title_without_authors(candidate.paper.title))
        section = by_section.get(node)
        sure = (
            confidence >= min_confidence
            and paper.id not in at_the_edge
            and (section is not None or node in listed.heading_lines)
        )
        if section is None and node in listed.heading_lines:
            section = by_section[node] = Section(node, listed.heading_lines[node], [], None, True)
        line = render_line(section, fallback, paper, arxiv_word) if sure else ""
        proposals.append(Proposal(paper.id, paper.title, node, confidence, line, not sure, suggested[1:]))
        if sure:
            after = section.place_for(paper)
            written = [line] if not section.blank_between else ["", line]
            if section.order and after < section.dated[0][1]:  # before the first item: its blank after it
                written = [line, ""] if section.blank_between else [line]
            elif after == listed.heading_lines.get(node) and not section.blank_between:
                written = ["", line] if _needs_blank(lines, after) else [line]
            at = insertions.setdefault(after, [])
            insertions[after] = written + at if section.order < 0 else at + written  # newest first there too
    proposals.sort(key=lambda p: p.unsure)
    return proposals, unified_diff(markdown, insertions, filename)


def _needs_blank(lines: Sequence[str], heading: int) -> bool:
    return heading + 1 < len(lines) and bool(lines[heading + 1].strip())


def unified_diff(markdown: str, insertions: dict[int, list[str]], filename: str = "README.md") -> str:
    """A diff (git's a/ b/ form) inserting the new lines after the given lines of `markdown`,
    in its own line endings."""
    if not insertions:
        return ""
    newline = "\r\n" if "\r\n" in markdown else "\n"
    old = split_lines(markdown, keepends=True)
    new: list[str] = []
    for number, line in enumerate(old):
        new.append(line)
        if number in insertions:
            if not line.endswith(("\n", "\r")):  # the last line, without its line end: it gets one
                new[-1] = line + newline
            new += [line + newline for item in insertions[number] for line in item.split("\n")]  # items of two lines
    out = []
    for line in difflib.unified_diff(old, new, f"a/{filename}", f"b/{filename}", n=3):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def text_report(proposals: Sequence[Proposal], min_confidence: float, headings: Collection[str] = ()) -> list[str]:
    """The unsure papers, one line each, for stderr (the patch is on stdout): each says why, its
    placement's confidence under `min_confidence` (shown cut, not rounded up to it), a heading the
    README lacks (when its `headings` are given), or its topic."""
    lines = []
    for p in proposals:
        if p.unsure:
            if p.confidence < min_confidence:
                why = _cut(p.confidence)
            elif headings and p.node not in headings:
                why = f"{_cut(p.confidence)}, no such heading in the README"
            else:
                why = f"{_cut(p.confidence)}, at the edge of the list's topic"
            lines.append(f"unsure ({why}): {p.id} {p.title} -> {p.node.rsplit('/', 1)[-1]}")
    return lines


def _cut(value: float) -> str:
    """Two decimals, cut rather than rounded: 0.3499 under a cutoff of 0.35 showed as "0.35". The
    product is rounded first, as 0.58 × 100 is 57.99999… in binary."""
    return f"{math.floor(round(value * 100, 6)) / 100:.2f}"


EmbedFn = Callable[[list[str]], np.ndarray]


# --- how well it files papers as the maintainers did ---------------------------------------------
def list_taxonomy_of(listed: CuratedList):
    """The survey's own taxonomy (with our descriptions and questions) when the list's headings are
    the survey's, else one made from the list's headings."""
    from semsearch.lists import list_taxonomy
    from semsearch.taxonomy import load_taxonomy

    survey = load_taxonomy()
    return survey if set(listed.nodes) <= set(survey.nodes) else list_taxonomy(listed.nodes)


def _indexed(store, papers: Sequence[ListedPaper], embed: EmbedFn) -> list[Candidate]:
    """Each listed paper as the index holds it (text and vector), else by its title alone, the
    title embedded now."""
    found = listed_candidates(store, papers)
    missing = [i for i, c in enumerate(found) if c.vector is None]
    if missing:
        for i, vector in zip(missing, embed([papers[i].title for i in missing]), strict=True):
            listed = papers[i]
            title_only = Paper(id=listed.arxiv_id or f"list:{normalize_title(listed.title)}", title=listed.title)
            found[i] = Candidate(title_only, vector)
    return found


def evaluate_propose(
    store, old_markdown: str, new_markdown: str, embed: EmbedFn, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> dict:
    """Place the papers a list added between two versions with a classifier trained on the older
    version only, and compare with the headings its maintainers chose: first suggestion and any
    of three at or under one of them, and how many the proposal would have written (in scope, sure)."""
    from semsearch.classify import SCOPE_THRESHOLD, LabelledPaper, TaxonomyClassifier
    from semsearch.taxonomy import is_under, load_taxonomy

    old, new = parse_list(old_markdown), parse_list(new_markdown)
    held = {list_key(p) for p in old.papers} | {normalize_title(p.title) for p in old.papers}
    added = [p for p in new.papers if list_key(p) not in held and normalize_title(p.title) not in held]
    added = [p for p in added if any(c in set(old.nodes) for c in p.categories)]  # headings the old list had
    if not added:
        raise SemsearchError("the newer list adds no papers under the older list's headings")
    taxonomy = list_taxonomy_of(old)
    nodes = set(taxonomy.nodes)
    own = _indexed(store, old.papers, embed)
    labelled = [
        LabelledPaper(
            c.paper.id, c.paper.title, c.paper.embedding_text(), c.vector, [x for x in listed.categories if x in nodes]
        )
        for listed, c in zip(old.papers, own, strict=True)
        if any(x in nodes for x in listed.categories)
    ]
    classifier = TaxonomyClassifier.train(labelled, taxonomy, embed)
    found = _indexed(store, added, embed)
    placed = place(classifier, found)
    # What the older list would have been offered: a curated list's papers also on its own topic
    # (`on_topic`, as `propose` asks); the survey's classifier judges the survey's topic already.
    survey = taxonomy is load_taxonomy()
    # Written into the patch only on the topic proper (`sure`), as `propose` writes it.
    topical = np.ones(len(found), bool) if survey else on_topic(own, found, background(store, new, found), embed).sure
    first, top3, included, in_scope = [], [], [], []
    for listed, (_, suggested, confidence, scope), on in zip(added, placed, topical, strict=True):
        right = [any(is_under(node, truth) for truth in listed.categories) for node in suggested[:3]]
        first.append(right[0])
        top3.append(any(right))
        in_scope.append(scope >= SCOPE_THRESHOLD)
        included.append(scope >= SCOPE_THRESHOLD and confidence >= min_confidence and bool(on))
    abstract = np.array([bool(c.paper.abstract) for c, *_ in placed])
    first_a, top3_a, included_a = np.array(first), np.array(top3), np.array(included)
    return {
        "added": len(added),
        "with_abstract": int(abstract.sum()),
        "first_at_or_under": float(first_a.mean()),
        "top3_at_or_under": float(top3_a.mean()),
        "in_scope": int(sum(in_scope)),
        "on_topic": int(topical.sum()),
        "proposed": int(included_a.sum()),
        "proposed_first_right": float(first_a[included_a].mean()) if included_a.any() else 0.0,
        "unsure_or_out": int((~included_a).sum()),
        "min_confidence": min_confidence,
    }


# --- the whole command ----------------------------------------------------------------------------
README_META = "list_markdown:"  # index metadata: a list's README as `taxonomy add|refresh` last read it
REMOVED_META = "list_removed:"  # index metadata: the papers (`list_key`) a list's maintainers took out


def _held(listed: CuratedList) -> set[str]:
    """Every paper of a list by its `list_key` and by each of its titles."""
    return {key for p in listed.papers for key in (list_key(p), *map(normalize_title, (p.title, *p.other_titles)))}


def removed_since(before: str | None, after: str) -> set[str]:
    """The papers (`list_key`) the README `before` held and `after` holds under no link or title:
    taken out by the list's maintainers, who should not be offered them again."""
    return _taken_out(before, _held(parse_list(after)))


def _taken_out(before: str | None, held: set[str]) -> set[str]:
    if before is None:
        return set()
    return {list_key(p) for p in parse_list(before).papers if held.isdisjoint(_names(p))}


def recorded_removals(recorded: str | None, before: str | None, after: str | None) -> str | None:
    """The record of removals (`REMOVED_META`, a JSON list) once the README `before` is replaced by
    `after`: what `after` took out joins it, what `after` holds again leaves it."""
    if after is None:
        return recorded
    held = _held(parse_list(after))  # read once: a README is up to 5 MB
    kept = set(json.loads(recorded or "[]")) | _taken_out(before, held)
    return json.dumps(sorted(kept - held))


def removed_from(store, name: str, markdown: str) -> list[str]:
    """The papers the list's maintainers took out: those recorded at its refreshes, and those the
    README kept by the index holds and the one given (`--list`) no longer does."""
    kept = store.get_meta(README_META + name)
    return json.loads(recorded_removals(store.get_meta(REMOVED_META + name), kept, markdown) or "[]")


def readme_for(store, name: str, given: str | None = None, *, offline: bool = False) -> tuple[str, str]:
    """(markdown, file name) of the list's README: the one given (a file or URL), else the one the
    index kept when the list was added or refreshed, else the list's URL."""
    from semsearch.lists import SURVEY, is_url, read_source, taxonomy_for

    taxonomy_for(store, name)  # an unknown name is refused before any file is read
    if given is not None:
        return read_source(given, offline=offline), "README.md"  # the patch is for the list's repository
    kept = store.get_meta(README_META + name)
    if kept is not None:
        return kept, "README.md"
    if name == SURVEY:
        from semsearch.sources.survey import SURVEY_LIST_URL

        source = SURVEY_LIST_URL
    else:
        found = store.taxonomy(name)
        source = found["source"] if found else ""
    if not is_url(source or "") or offline:
        raise SemsearchError(
            f"the index keeps no README of {name!r} yet: `semsearch taxonomy refresh` keeps it "
            f"(or, on the command line, `semsearch taxonomy propose {name} --list FILE` reads one)"
        )
    return read_source(source, offline=offline), "README.md"


def embed_fn(index, embedder=None) -> EmbedFn:
    """The index's model as a function of texts, loaded at its first use (a saved classifier
    needs none)."""

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal embedder
        if embedder is None:
            from semsearch.embeddings import embedder_for

            embedder = embedder_for(index.manifest.model, index_dir=index.directory)
        return embedder.encode(texts)

    return embed


def classifier_of(index, name: str, embedder=None, *, embed: EmbedFn | None = None):
    """The taxonomy's classifier (saved at ingest; trained now only when it is not)."""
    from semsearch.lists import classifier_for_taxonomy

    classifier = classifier_for_taxonomy(index.store, name, embed or embed_fn(index, embedder))
    if classifier is None:
        raise SemsearchError("the index has no labelled papers; run `semsearch ingest survey` first")
    return classifier


# --- once per index generation ------------------------------------------------------------------------
CACHED_ANSWERS = 32  # proposals and gap reports kept, the least recently asked for dropped first
_answers: OrderedDict[tuple, dict] = OrderedDict()
_answers_lock = threading.Lock()


def per_generation(index, key: tuple, compute: Callable[[], dict]) -> dict:
    """`compute()`'s answer, computed once per published index generation and `key`. A published
    generation never changes (a write publishes a new one), so an answer for it stays right; the
    server asks again for every page view and patch download, and placing a list's papers takes
    seconds. An index without a generation directory is computed every time. A generation is
    known by its path and its manifest (creation time, each file's checksum): an index removed
    and built again at the same path starts again at gen-000001, with other papers."""
    generation = getattr(index, "generation_dir", None)
    if generation is None:
        return compute()
    manifest = getattr(index, "manifest", None)
    made = (getattr(manifest, "created_at", None), tuple(sorted((getattr(manifest, "files", None) or {}).items())))
    full = (str(generation), made, *key)
    with _answers_lock:
        if full in _answers:
            _answers.move_to_end(full)
            return _answers[full]
    answer = compute()
    with _answers_lock:
        _answers[full] = answer
        while len(_answers) > CACHED_ANSWERS:
            _answers.popitem(last=False)
    return answer


def propose_for(
    index, request: ProposeRequest, markdown: str, filename: str = "README.md", embedder=None, classifier=None
) -> dict:
    """Proposals for the taxonomy's list: {"proposals": [...], "patch": diff, "unsure": n}, once
    per index generation, request and README."""
    from semsearch.lists import taxonomy_for

    taxonomy_for(index.store, request.taxonomy)  # refuses an unknown name
    key = (
        "propose",
        request.taxonomy,
        request.since,
        tuple(request.ids or ()),
        request.min_confidence,
        filename,
        hashlib.sha256(markdown.encode()).hexdigest(),
    )
    return per_generation(
        index, key, lambda: _propose_for(index, request, markdown, filename, embedder=embedder, classifier=classifier)
    )


def _propose_for(index, request: ProposeRequest, markdown: str, filename: str, *, embedder, classifier) -> dict:
    from semsearch.lists import SURVEY, user_labels

    embed = embed_fn(index, embedder)
    store = index.store
    labelled = store.survey_user_labels() if request.taxonomy == SURVEY else user_labels(store, request.taxonomy)
    papers = store.papers_by_vec_id(labelled)
    # A paper the user labels in the list is proposed, taken out or not (as --ids proposes one): not
    # among those said to be left out (stderr said "not proposed again" of a paper it proposed).
    by_user = {key for p in papers.values() for key in _names(p)}
    removed = [key for key in removed_from(store, request.taxonomy, markdown) if key not in by_user]
    proposals, patch = propose(
        markdown,
        index.store,
        classifier or classifier_of(index, request.taxonomy, embed=embed),
        since=request.since,
        ids=request.ids or [],
        min_confidence=request.min_confidence,
        filename=filename,
        # A curated list's classifier judges scope by the survey's field; the survey's is its topic.
        embed=None if request.taxonomy == SURVEY else embed,
        confirmed={papers[v].id: node for v, node in labelled.items() if v in papers},
        removed=removed,
    )
    return {
        "taxonomy": request.taxonomy,
        "proposals": [p.to_dict() for p in proposals],
        "patch": patch,
        "unsure": sum(p.unsure for p in proposals),
        "removed": removed,
    }
