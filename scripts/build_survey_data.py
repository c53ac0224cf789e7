"""Derive semsearch/data/survey.json from the survey's public paper list.

Keeps facts only (ids, titles, venues, years, links, category paths); abstracts are third-party
text and are never copied into the package.

    python scripts/build_survey_data.py ../shared/data/survey_taxonomy.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FACT_FIELDS = ("title", "venue", "year", "url", "arxiv_id", "code", "categories")
OUT = Path(__file__).resolve().parent.parent / "semsearch" / "data" / "survey.json"


def main(source: str) -> None:
    raw = json.loads(Path(source).read_text())
    papers = [{key: paper.get(key) for key in FACT_FIELDS} for paper in raw["papers"]]
    nodes = set(raw["nodes"])
    for paper in papers:
        missing = [c for c in paper["categories"] if c not in nodes]
        if missing:
            raise SystemExit(f"{paper['title']}: unknown categories {missing}")
    data = {"source": raw.get("source"), "nodes": raw["nodes"], "papers": papers}
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(raw['nodes'])} nodes, {len(papers)} papers)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/survey_taxonomy.json")
