"""Does the way a question is asked change the answer? Questions wrapped in requests.

    python scripts/eval_phrasing.py [--queries FILE] [--index DIR]

Each topical question (default: the shared dev set) is asked as it is and inside a few request
phrasings a user might type ("Can you recommend some good research papers about ... ?"). Reported:
nDCG@10 of semsearch and of its dense-only and BM25-only modes for each phrasing. The request
words say nothing about the topic, so a robust engine scores about the same on every row.

A file of known-item questions is asked as it is and as requests for one paper ("Which paper
introduced ...?"); reported: success@3 of semsearch and of its no-taxonomy mode, which semsearch
should never fall below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semsearch.errors import run_script
from semsearch.evaluate import evaluate_search, read_questions, read_topics
from semsearch.index import Index
from semsearch.search import Searcher

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHRASINGS = [
    "{q}",
    "Which papers discuss {q}?",
    "I'm looking for recent work on {q}. Any suggestions?",
    "Can you recommend some good research papers about {q} that I should read?",
    "what is the state of the art in {q}",
]
PAPER_PHRASINGS = [
    "{q}",
    "the paper on {q}",
    "the paper that proposed {q}",
    "Which paper introduced {q}?",
    "I remember a paper about {q}, what was it?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=SHARED / "eval" / "queries_dev.jsonl")
    parser.add_argument("--topics", type=Path, default=SHARED / "data" / "arxiv_topics.jsonl")
    parser.add_argument("--index", default=None)
    args = parser.parse_args()
    kind, questions = read_questions(args.queries)
    topics = read_topics(args.topics) if args.topics.is_file() else {}
    index = Index.open(args.index)
    hybrid = Searcher(index)
    if kind == "topical":
        phrasings, metric = PHRASINGS, "ndcg@10"
        searchers = {
            "semsearch": hybrid,
            "dense": Searcher(index, hybrid.embedder, mode="dense"),
            "BM25": Searcher(index, hybrid.embedder, mode="lexical"),
        }
    else:
        phrasings, metric = PAPER_PHRASINGS, "success@3"
        searchers = {"semsearch": hybrid, "no taxonomy": Searcher(index, hybrid.embedder, taxonomy=False)}
    print(f"{metric} on {args.queries.name} ({len(questions)} questions), {index.manifest.count} papers")
    print(f"{'phrasing':<76}" + "".join(f"{name:>13}" for name in searchers))
    for phrasing in phrasings:
        asked = [dict(q, query=phrasing.format(q=q["query"])) for q in questions]
        scores = evaluate_search(index, asked, kind, topics, searchers)
        print(f"{phrasing:<76}" + "".join(f"{scores[name][metric]:>13.3f}" for name in searchers))


if __name__ == "__main__":
    run_script(main)
