"""Derive semsearch/data/survey.json from the survey's paper list (its GitHub README).

Uses the same parser as `semsearch taxonomy add` and `taxonomy refresh`
(`semsearch.sources.survey.survey_facts`); keeps facts only (ids, titles, venues, years, links,
category paths). Abstracts and prose are third-party text and are never copied into the package.

    python scripts/build_survey_data.py ../shared/data/lists/AIoT-MLSys-Lab__Efficient-LLMs-Survey.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from semsearch.errors import run_script
from semsearch.sources.survey import survey_facts

OUT = Path(__file__).resolve().parent.parent / "semsearch" / "data" / "survey.json"


def main(source: str) -> None:
    data = survey_facts(Path(source).read_text(encoding="utf-8"))
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(data['nodes'])} nodes, {len(data['papers'])} papers)")


if __name__ == "__main__":
    source = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/lists/AIoT-MLSys-Lab__Efficient-LLMs-Survey.md"
    run_script(lambda: main(source))
