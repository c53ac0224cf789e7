"""The survey *Efficient Large Language Models: A Survey*: its taxonomy nodes and labelled papers.

The data ships inside the package (facts only, derived by scripts/build_survey_data.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import cache
from importlib.resources import files

from semsearch.paper import Paper, arxiv_id_from_link, normalize_title, parse_arxiv_id, web_url

SURVEY_LIST_URL = "https://github.com/AIoT-MLSys-Lab/Efficient-LLMs-Survey"
SOURCE = "survey"


def survey_paper_id(arxiv_id: str | None, title: str) -> str:
    """The arXiv id when there is one, else a stable id made from the title: from its key's letters
    and digits, which for a title with no Latin letter are its own (else every such title was
    "survey:", one paper)."""
    if arxiv_id:
        return arxiv_id
    slug = re.sub(r"[\W_]+", "-", normalize_title(title)).strip("-")
    return f"survey:{slug[:80]}"


class Survey:
    def __init__(self, nodes: list[str], papers: list[Paper]):
        self.nodes = tuple(nodes)
        self.papers = tuple(papers)
        self._by_arxiv_id = {p.arxiv_id: p for p in self.papers if p.arxiv_id}
        self._by_title = {normalize_title(p.title): p for p in self.papers}

    def find(self, paper: Paper) -> Paper | None:
        """The survey's record of `paper`, matched by arXiv id, else by normalised title."""
        arxiv_id = paper.arxiv_id
        found = self._by_arxiv_id.get(arxiv_id) if arxiv_id else None
        return found or self._by_title.get(normalize_title(paper.title))

    def annotate(self, paper: Paper) -> Paper:
        """`paper` carrying the survey's facts (title, categories, venue, year) when the survey lists it.

        The survey's title wins so that a paper reads the same whichever source brought it last.
        """
        known = self.find(paper)
        if known is None:
            return paper
        return replace(
            paper,
            title=known.title,
            survey_categories=list(known.survey_categories),
            venue=known.venue or paper.venue,
            year=known.year or paper.year,
            url=paper.url or known.url,
        )


@cache
def load_survey() -> Survey:
    return survey_from_facts(json.loads(files("semsearch").joinpath("data/survey.json").read_text(encoding="utf-8")))


SURVEY_LIST_META = "survey_list"  # index metadata: the survey's list as `taxonomy refresh` last read it (facts)


def survey_of(store) -> Survey:
    """The survey as the index knows it: refreshed from its maintained list, else the packaged one."""
    refreshed = store.get_meta(SURVEY_LIST_META) if store is not None else None
    return survey_from_facts(json.loads(refreshed)) if refreshed else load_survey()


def survey_from_facts(raw: dict) -> Survey:
    papers = []
    for item in raw["papers"]:
        arxiv_id = parse_arxiv_id(item["arxiv_id"]) if item.get("arxiv_id") else None
        papers.append(
            Paper(
                id=survey_paper_id(arxiv_id, item["title"]),
                title=item["title"],
                survey_categories=list(item["categories"]),
                venue=item.get("venue"),
                year=item.get("year"),
                url=item.get("url"),
                sources=[SOURCE],
            )
        )
    return Survey(raw["nodes"], papers)


_INS_OPEN = re.compile(r"<ins>", re.IGNORECASE)
_INS_CLOSE = re.compile(r"/ins>", re.IGNORECASE)  # also the broken "ICML, 2024/ins>" the list has
_URL_IN_PARENS = re.compile(r"\((https?://[^()\s]+)\)", re.IGNORECASE)  # a markdown link's target; linear


def _linked_arxiv_id(text: str) -> str | None:
    """The first arXiv id any link in a list item carries."""
    for match in _URL_IN_PARENS.finditer(text):
        if found := arxiv_id_from_link(match.group(1)):
            return found
    return None


_PAPER_LINK = re.compile(r"\[\[?Paper\]?\]?\(\s*([^)\s]+)\s*\)", re.IGNORECASE)
_CODE_LINK = re.compile(r"\[\[?Code\]?\]?\(\s*([^)\s]+)\s*\)", re.IGNORECASE)


def _venue(text: str) -> tuple[str, str | None] | None:
    """(venue, year or None) of the first `<ins>ICML, 2025</ins>` mark, else None. The split is
    the one of `<ins>\\s*(.*?)\\s*(?:[,\\s]\\s*(\\d{4}))?\\s*<?/ins>`, computed from the ends of the
    mark inward instead (that regex backtracks cubically over a run of spaces)."""
    opened = _INS_OPEN.search(text)
    closed = _INS_CLOSE.search(text, opened.end()) if opened else None
    if closed is None:
        return None
    inner = text[opened.end() : closed.start()].lstrip()
    inner = inner.removesuffix("<").rstrip()
    digits, before = inner[-4:], inner[:-4]
    if len(digits) == 4 and digits.isdecimal():
        bare = before.rstrip()
        if bare.endswith(","):
            return bare[:-1].rstrip(), digits
        if len(bare) < len(before):  # a space stood between the venue and the year
            return bare, digits
    return inner, None


def survey_facts(markdown: str, source: str = SURVEY_LIST_URL) -> dict:
    """The survey's README as facts (nodes; each paper's title, venue, year, links, categories),
    read by the generic curated-list parser plus the survey's own venue marks."""
    from semsearch.sources.curated import parse_list

    listed = parse_list(markdown)
    papers = []
    for paper in listed.papers:
        venue = _venue(paper.text)
        year = (venue[1] if venue else None) or next(iter(re.findall(r"(\d{4})\s*</ins>", paper.text)), None)
        link, code = _PAPER_LINK.search(paper.text), _CODE_LINK.search(paper.text)
        papers.append(
            {
                "title": paper.title,
                "venue": venue[0] if venue and venue[0] else None,
                "year": int(year) if year else None,
                "url": web_url(link.group(1)) if link else None,  # facts hold web links only
                "arxiv_id": paper.arxiv_id or _linked_arxiv_id(paper.text),
                "code": web_url(code.group(1)) if code else None,
                "categories": paper.categories,
            }
        )
    return {"source": source, "nodes": listed.nodes, "papers": papers}
