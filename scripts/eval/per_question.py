"""Per-question figures of the default engine on one question file: which questions fail and where
their targets (or relevant papers) rank. `semsearch eval search` gives only means; a figure on a
small set needs its misses named to be read.

    python scripts/eval/per_question.py --queries FILE [--topics ../shared/data/arxiv_topics.jsonl]
        [--index DIR] [--all] [--engine default|no-taxonomy|dense|lexical]

Known items: a miss is a target outside the top 3 (its rank in the top 100 is printed, or ">100").
Topical: a miss is nDCG@10 below 0.3 (printed with the rank of the first relevant paper and how
many relevant papers the index holds).
"""

import argparse
import json
from pathlib import Path

from semsearch.errors import run_script
from semsearch.evaluate import is_relevant, is_target, ndcg_at, read_questions, read_topics
from semsearch.index import Index
from semsearch.search import Searcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--topics", type=Path)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--all", action="store_true", help="print every question, not only the misses")
    parser.add_argument("--engine", choices=["default", "no-taxonomy", "dense", "lexical"], default="default")
    args = parser.parse_args()

    kind, questions = read_questions(args.queries)
    topics = read_topics(args.topics) if args.topics else {}
    index = Index.open(args.index)
    searcher = Searcher(index)  # the default engine, as `semsearch eval search` names its parts
    if args.engine == "no-taxonomy":
        searcher = Searcher(index, searcher.embedder, taxonomy=False)
    elif args.engine in ("dense", "lexical"):
        searcher = Searcher(index, searcher.embedder, mode=args.engine)
    papers = [p for _, p in index.store.iter_papers()]
    for question in questions:
        hits = searcher.search(question["query"], 100)
        row = {"qid": question.get("qid"), "query": question["query"]}
        if kind == "known-item":
            ranks = [n + 1 for n, h in enumerate(hits) if is_target(question, h.paper)]
            row["target_rank"] = ranks[0] if ranks else ">100"
            row["top3"] = [h.paper.title[:70] for h in hits[:3]]
            miss = not ranks or ranks[0] > 3
        else:
            rel = [is_relevant(question, h.paper, topics) for h in hits]
            total = sum(is_relevant(question, p, topics) for p in papers)
            row["ndcg@10"] = round(ndcg_at(rel, total), 3)
            row["relevant_in_top10"] = sum(rel[:10])
            row["relevant_in_index"] = total
            row["first_relevant_rank"] = next((n + 1 for n, r in enumerate(rel) if r), ">100")
            row["top3"] = [
                (h.paper.title[:60], [c.split("/")[-1] for c in h.paper.survey_categories]) for h in hits[:3]
            ]
            miss = row["ndcg@10"] < 0.3
        if miss or args.all:
            print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    run_script(main)
