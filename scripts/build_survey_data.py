"""Derive semsearch/data/survey.json from the survey's paper list (its GitHub README).

Uses the same parser as `semsearch taxonomy add` (`semsearch.sources.curated`); keeps facts only
(ids, titles, venues, years, links, category paths). Abstracts and prose are third-party text and
are never copied into the package.

    python scripts/build_survey_data.py ../shared/data/lists/AIoT-MLSys-Lab__Efficient-LLMs-Survey.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from semsearch.sources.curated import parse_list

OUT = Path(__file__).resolve().parent.parent / "semsearch" / "data" / "survey.json"
SOURCE = "https://github.com/AIoT-MLSys-Lab/Efficient-LLMs-Survey"
_VENUE = re.compile(r"<ins>\s*(.*?)\s*(?:[,\s]\s*(\d{4}))?\s*<?/ins>", re.IGNORECASE)  # "<ins>ICML, 2025</ins>"
_PAPER_LINK = re.compile(r"\[\[?Paper\]?\]?\(\s*([^)\s]+)\s*\)", re.IGNORECASE)
_CODE_LINK = re.compile(r"\[\[?Code\]?\]?\(\s*([^)\s]+)\s*\)", re.IGNORECASE)


def survey_facts(markdown: str) -> dict:
    listed = parse_list(markdown)
    papers = []
    for paper in listed.papers:
        venue = _VENUE.search(paper.text)
        year = venue.group(2) if venue else None
        year = year or next(iter(re.findall(r"(\d{4})\s*</ins>", paper.text)), None)  # "..., 2024</ins>"
        link = _PAPER_LINK.search(paper.text)
        code = _CODE_LINK.search(paper.text)
        papers.append(
            {
                "title": paper.title,
                "venue": venue.group(1) if venue and venue.group(1) else None,
                "year": int(year) if year else None,
                "url": link.group(1) if link else None,
                "arxiv_id": paper.arxiv_id,
                "code": code.group(1) if code else None,
                "categories": paper.categories,
            }
        )
    return {"source": SOURCE, "nodes": listed.nodes, "papers": papers}


def main(source: str) -> None:
    data = survey_facts(Path(source).read_text(encoding="utf-8"))
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(data['nodes'])} nodes, {len(data['papers'])} papers)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/lists/AIoT-MLSys-Lab__Efficient-LLMs-Survey.md")
