"""How much known-item search owes to abstracts: the same questions on two indexes.

    python scripts/eval_withheld_abstracts.py [--papers FILE] [--queries FILE ...] [--work DIR]

Both indexes hold the survey (offline: titles and categories) and the papers of `--papers`
(JSON Lines with abstracts). The second withholds the abstracts of the survey's own papers, so they
are known by their titles alone, as the other survey papers are when arXiv cannot be reached.
Reported: success@3 of the default engine on the known-item questions whose target has an
abstract in the first index, with and without that abstract. The difference is what fetching
the survey's abstracts from arXiv (`semsearch ingest survey` online) would be worth.
Builds two indexes: a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from semsearch.errors import run_script
from semsearch.evaluate import evaluate_search, read_questions, targets_with_abstract
from semsearch.index import Index
from semsearch.ingest import ingest_jsonl, ingest_survey
from semsearch.search import Searcher
from semsearch.sources.survey import load_survey

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HERE = Path(__file__).resolve().parent


def build(directory: Path, papers: Path) -> Index:
    ingest_survey(index_dir=directory, offline=True, progress=False)
    ingest_jsonl([papers], index_dir=directory, progress=False)
    return Index.open(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=Path, default=SHARED / "data" / "arxiv_topics.jsonl")
    parser.add_argument(
        "--queries",
        type=Path,
        action="append",
        help="known-item question file(s); default: the shared dev set and ours",
    )
    parser.add_argument("--work", type=Path, default=None, help="where to build the two indexes (default: a temp dir)")
    args = parser.parse_args()
    files = args.queries or [SHARED / "eval" / "known_items_dev.jsonl", HERE / "eval" / "known_items_ours.jsonl"]
    questions = []
    for path in files:
        kind, rows = read_questions(path)
        if kind != "known-item":
            parser.error(f"{path} holds topical questions; this script compares known-item ones")
        questions += rows

    survey_ids = {p.arxiv_id for p in load_survey().papers if p.arxiv_id}
    work = args.work or Path(tempfile.mkdtemp(prefix="semsearch-withheld-"))
    withheld_file = work / "papers_without_survey.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    with args.papers.open(encoding="utf-8") as source, withheld_file.open("w", encoding="utf-8") as target:
        for line in source:
            if line.strip() and json.loads(line).get("id") not in survey_ids:
                target.write(line)

    full = build(work / "full", args.papers)
    withheld = build(work / "withheld", withheld_file)
    papers = [p for _, p in full.store.iter_papers()]
    chosen = [q for q, has in zip(questions, targets_with_abstract(papers, questions), strict=True) if has]
    if not chosen:
        parser.error("no question's target has an abstract in the full index")
    print(f"{len(chosen)} of {len(questions)} known-item questions have a target with an abstract")
    for name, index in (("with the abstract", full), ("title only (withheld)", withheld)):
        scores = evaluate_search(index, chosen, "known-item", {}, {"x": Searcher(index)})["x"]
        print(f"success@3, target {name:<22} {scores['success@3']:.3f}   mrr@10 {scores['mrr@10']:.3f}")
    print(f"indexes kept in {work}")


if __name__ == "__main__":
    run_script(main)
