"""How well `recommend` finds what a reader of one topic reads next, against simpler ways to use the
same likes (docs/evaluation.md, "Recommendations").

Simulated readers: for each reading-list topic of `arxiv_topics.jsonl` with at least `--min-papers`
papers in the index, `--readers` readers (seeded) each like `--likes` papers of the topic; a second
run adds one paper they dislike, of a topic the liked papers do not carry. A recommendation is
relevant when it carries the reader's topic; precision@k is the share of the first k that do (the
liked and disliked papers never count, nor can they be shown). The topics are evaluation labels:
the engine never reads them. Compared on the same likes: the mean of the liked papers' vectors as a
query (their centroid), related work of one liked paper (the first), and each liked paper's nearest
papers taken in turn (round robin).

    python scripts/eval_recommend.py [--index DIR] [--shared ../shared] [--likes 3] [--readers 5]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from semsearch.errors import run_script
from semsearch.evaluate import read_topics
from semsearch.index import Index
from semsearch.related import RelatedFinder

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--likes", type=int, default=3, help="papers each reader likes")
    parser.add_argument("--readers", type=int, default=5, help="readers per topic")
    parser.add_argument("--min-papers", type=int, default=10, help="topics with fewer papers in the index are left out")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    index = Index.open(args.index)
    finder = RelatedFinder(index)
    store, searcher = index.store, finder.searcher
    folders = read_topics(args.shared / "data" / "arxiv_topics.jsonl")
    held = {p.id: v for v, p in store.iter_papers()}
    carrying = defaultdict(list)  # topic -> the index's papers that carry it
    for paper_id, topics in folders.items():
        for topic in topics:
            if paper_id in held:
                carrying[topic].append(paper_id)
    topics = sorted(t for t, ids in carrying.items() if len(ids) >= max(args.min_papers, args.likes + 1))
    if len(topics) < 2:
        raise SystemExit("fewer than two topics with enough papers in the index: nothing to compare")
    rng = np.random.default_rng(args.seed)
    id_of = {v: p for p, v in held.items()}

    def precision(topic: str, ids: list[str]) -> tuple[float, float]:
        """P@k, and P@k over the papers that carry any topic (the judged ones: the survey's papers
        known by title alone carry none, so every way that shows them loses by it alike)."""
        judged = [i for i in ids if folders.get(i)]
        every, among_judged = (
            np.mean([topic in folders.get(i, ()) for i in row[: args.k]] or [0.0]) for row in (ids, judged)
        )
        return float(every), float(among_judged)

    deep = 4 * args.k  # enough for the judged papers' k

    def nearest(vector: np.ndarray, chosen: set[int]) -> list[int]:
        return [v for v, _ in searcher.nearest(vector[None, :], deep + len(chosen)) if v not in chosen]

    scores = defaultdict(list)
    for topic in topics:
        for _ in range(args.readers):
            likes = rng.choice(carrying[topic], size=args.likes, replace=False).tolist()
            liked_topics = set().union(*(folders[i] for i in likes))
            other = [t for t in topics if t not in liked_topics]
            pool = carrying[other[rng.integers(len(other))]] if other else []
            pool = [i for i in pool if not folders[i] & liked_topics]
            dislike = [pool[rng.integers(len(pool))]] if pool else []  # of a topic no liked paper carries
            chosen = {held[i] for i in likes + dislike}
            vectors = store.embeddings_held([held[i] for i in likes])
            liked = np.vstack([vectors[held[i]] for i in likes])
            scores["recommend"].append(precision(topic, [h.paper.id for h in finder.recommend(likes, k=deep)]))
            if dislike:
                hits = finder.recommend(likes, dislike, k=deep)
                scores["recommend, one paper of another topic disliked"].append(
                    precision(topic, [h.paper.id for h in hits])
                )
            centroid = liked.mean(axis=0)
            scores["centroid of the liked papers"].append(
                precision(topic, [id_of[v] for v in nearest(centroid / np.linalg.norm(centroid), chosen)])
            )
            related = [h.paper.id for h in finder.related_to(likes[0], deep + len(chosen))]
            scores["related work of the first liked paper"].append(
                precision(topic, [i for i in related if held[i] not in chosen])
            )
            turns = [nearest(vector, chosen) for vector in liked]
            merged = list(dict.fromkeys(v for row in zip(*turns, strict=False) for v in row))
            scores["each liked paper's nearest, in turn"].append(precision(topic, [id_of[v] for v in merged]))
    readers = len(scores["recommend"])
    print(f"{len(topics)} topics, {readers} readers, {args.likes} papers liked each; precision@{args.k}:")
    print(f"\n| way to use the likes | P@{args.k} | P@{args.k} of the judged |\n|---|---|---|")
    for name, values in scores.items():
        every, judged = np.mean(values, axis=0)
        print(f"| {name} | {every:.3f} | {judged:.3f} |")


if __name__ == "__main__":
    run_script(main)
