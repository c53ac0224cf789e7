"""Evaluation harnesses behind `semsearch eval ...`: numbers to choose methods by, not tests."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from semsearch.classify import TaxonomyClassifier, _fit_temperature, _softmax
from semsearch.errors import SemsearchError
from semsearch.index import Index
from semsearch.paper import normalize_title
from semsearch.sources.jsonl import check_readable
from semsearch.taxonomy import load_taxonomy, resolve_node

Row = TypeVar("Row")


def read_jsonl(path, parse: Callable[[dict], Row], expected: str) -> list[Row]:
    """`parse` applied to each JSON object of a JSON Lines file; a line it cannot take is one
    error naming the file and line (`expected` says what a line should hold)."""
    check_readable(Path(path))
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(parse(json.loads(line)))
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise SemsearchError(f"{path}:{number}: expected {expected}") from None
    if not rows:
        raise SemsearchError(f"{path}: nothing to read")
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy − confidence| over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(error)


def _level(path: str, depth: int) -> str:
    return "/".join(path.split("/")[:depth])


def evaluate_classifier(index: Index, embedder) -> dict:
    """Leave-one-out over the index's labelled papers (each classified with itself removed)."""
    taxonomy = load_taxonomy()
    papers = index.store.labelled_papers()
    if len(papers) < 10:
        raise SemsearchError("too few labelled papers to evaluate; run `semsearch ingest survey` first")
    classifier = TaxonomyClassifier.train(papers, taxonomy, embedder.encode)
    scores, truth = classifier.loo_scores, classifier.loo_truth
    leaves = classifier.leaves
    order = np.argsort(-scores, axis=1)
    true_sets = [set(p.categories) for p in papers]
    top1 = np.array([leaves[order[i, 0]] in true_sets[i] for i in range(len(papers))])
    top3 = np.array([any(leaves[j] in true_sets[i] for j in order[i, :3]) for i in range(len(papers))])
    level3 = np.array(
        [_level(leaves[order[i, 0]], 3) in {_level(c, 3) for c in true_sets[i]} for i in range(len(papers))]
    )

    # Calibration, cross-fitted: the temperature is fit on one half and judged on the other.
    halves = np.array([zlib.crc32(p.id.encode()) % 2 for p in papers])
    confidence = np.zeros(len(papers))
    for half in (0, 1):
        fit, judge = halves != half, halves == half
        temperature = _fit_temperature(scores[fit], truth[fit])
        confidence[judge] = _softmax(scores[judge], temperature).max(axis=1)

    # What the user sees: the first suggestion may be an inner node when the leaf is unclear.
    probabilities = classifier.probabilities(scores)
    first = [classifier.suggest(p)[0] for p in probabilities]
    first_right = np.array(
        [any(c == s.category or c.startswith(s.category + "/") for c in true_sets[i]) for i, s in enumerate(first)]
    )
    coarse = np.array([s.category not in leaves for s in first])
    in_scope = classifier.scope_scores(classifier.labelled_vectors, exclude_self=True) >= classifier.scope_threshold
    with_abstract = np.array([p.has_abstract for p in papers])

    # Baseline for reference: distance-weighted 10-nearest-neighbour vote on embeddings alone.
    vectors = classifier.labelled_vectors
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    knn_top1 = []
    leaf_index = {leaf: i for i, leaf in enumerate(leaves)}
    for i in range(len(papers)):
        votes = np.zeros(len(leaves))
        for j in np.argsort(-similar[i])[:10]:
            for c in papers[j].categories:
                votes[leaf_index[c]] += max(similar[i, j], 0.0)
        knn_top1.append(leaves[int(votes.argmax())] in true_sets[i])

    return {
        "papers": len(papers),
        "with_abstract": int(with_abstract.sum()),
        "leaf_top1": float(top1.mean()),
        "leaf_top3": float(top3.mean()),
        "level3_top1": float(level3.mean()),
        "ece": expected_calibration_error(confidence, top1.astype(float)),
        "mean_confidence": float(confidence.mean()),
        "suggestion_precision": float(first_right.mean()),
        "coarse_suggestions": float(coarse.mean()),
        "in_scope_share": float(in_scope.mean()),
        "in_scope_share_with_abstract": float(in_scope[with_abstract].mean()) if with_abstract.any() else 0.0,
        "knn_baseline_top1": float(np.mean(knn_top1)),
    }


def read_expected(path) -> list[dict]:
    """New papers with the node each belongs under (`expected`: a node name or path, or null for a
    paper outside the taxonomy), from JSON Lines {"id", "title", "abstract", "expected"}."""

    def parse(record: dict) -> dict:
        title, abstract = " ".join(record["title"].split()), " ".join(record["abstract"].split())
        if not title or not abstract:
            raise ValueError
        expected = record["expected"]
        return {
            "id": record.get("id"),
            "title": title,
            "abstract": abstract,
            "expected": resolve_node(expected) if expected else None,
        }

    return read_jsonl(path, parse, "a JSON object with 'title', 'abstract' and 'expected'")


def evaluate_new_papers(index: Index, records: list[dict]) -> dict:
    """How suggestions for papers outside the labelled set fare: scope decided right, first suggestion
    in the expected branch (same level-2 node) and at or under the expected node, and the same for
    any of the suggestions."""
    from semsearch.classify import classify_texts

    results = classify_texts(index, [(r["id"], r["title"], r["abstract"]) for r in records])
    pairs = list(zip((r["expected"] for r in records), results, strict=True))
    inside = [(node, c) for node, c in pairs if node]

    def under(category: str, node: str) -> bool:
        return category == node or category.startswith(node + "/")

    def same_branch(category: str, node: str) -> bool:
        return category.count("/") >= 1 and _level(category, 2) == _level(node, 2)

    def share(test) -> float:
        return float(np.mean([test(node, c) for node, c in inside])) if inside else 0.0

    return {
        "papers": len(records),
        "in_taxonomy": len(inside),
        "scope_accuracy": float(np.mean([c.in_scope == bool(node) for node, c in pairs])),
        "branch_top1": share(lambda node, c: same_branch(c.suggestions[0].category, node)),
        "node_top1": share(lambda node, c: under(c.suggestions[0].category, node)),
        "node_top3": share(lambda node, c: any(under(s.category, node) for s in c.suggestions)),
    }


def read_topics(path) -> dict[str, set[str]]:
    """Evaluation labels only: the reading-list topics of each paper id (never used for ranking)."""
    pairs = read_jsonl(path, lambda r: (str(r["id"]), set(r.get("topics") or [])), "a JSON object with an 'id'")
    return dict(pairs)


def evaluate_related(index: Index, topics: dict[str, set[str]], k: int = 5) -> dict:
    """For each survey paper with an abstract: the share of its top-k related papers that share a
    survey leaf or a reading-list topic with it. Compared with plain nearest neighbours."""
    import time

    from semsearch.related import RelatedFinder

    finder = RelatedFinder(index)
    store = index.store
    queries = [(v, p) for v, p in store.iter_papers() if p.survey_categories and p.abstract]
    if not queries:
        raise SemsearchError("no labelled paper with an abstract in the index to evaluate with")

    def relevant(query, other) -> bool:
        same_leaf = set(query.survey_categories) & set(other.survey_categories)
        return bool(same_leaf or topics.get(query.id, set()) & topics.get(other.id, set()))

    ours, plain, latencies = [], [], []
    for vec_id, paper in queries:
        started = time.perf_counter()
        hits = finder.related_to(paper.id, k)
        latencies.append((time.perf_counter() - started) * 1000)
        ours.append(np.mean([relevant(paper, h.paper) for h in hits]))
        nearest = finder.searcher.nearest(store.embedding(vec_id)[None, :], k + 1)
        baseline = finder.searcher.hits([(v, s) for v, s in nearest if v != vec_id][:k])
        plain.append(np.mean([relevant(paper, h.paper) for h in baseline]))
    latencies.sort()
    return {
        "queries": len(queries),
        f"precision_at_{k}": float(np.mean(ours)),
        f"plain_nearest_precision_at_{k}": float(np.mean(plain)),
        "uses_topics": bool(topics),
        "latency_ms_p50": latencies[len(latencies) // 2],
        "latency_ms_max": latencies[-1],
    }


# --- search ---------------------------------------------------------------------------------------
def ndcg_at(relevances: list[int], total_relevant: int, k: int = 10) -> float:
    """Binary-relevance nDCG@k: DCG of the ranking over the DCG of a perfect one."""
    dcg = sum(rel / np.log2(rank + 2) for rank, rel in enumerate(relevances[:k]))
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, total_relevant)))
    return float(dcg / ideal) if ideal else 0.0


def reciprocal_rank(relevances: list[int], k: int = 10) -> float:
    return next((1.0 / (rank + 1) for rank, rel in enumerate(relevances[:k]) if rel), 0.0)


def read_questions(path) -> tuple[str, list[dict]]:
    """Questions from JSON Lines, and their kind: "known-item" (they name a `title`) or "topical"."""

    def parse(row: dict) -> dict:
        if not isinstance(row["query"], str):
            raise TypeError
        return row

    rows = read_jsonl(path, parse, "a JSON object with a 'query'")
    return ("known-item" if "title" in rows[0] else "topical"), rows


def is_target(question: dict, paper) -> int:
    """Whether `paper` is the one a known-item question is after: same arXiv id, else same title."""
    if question.get("arxiv_id") and paper.arxiv_id == question["arxiv_id"]:
        return 1
    return int(normalize_title(paper.title) == normalize_title(question["title"]))


def targets_with_abstract(papers: list, questions: list[dict]) -> np.ndarray:
    """For each known-item question, whether the index holds its target's abstract (else it knows
    the title alone, as for survey papers whose abstract only arXiv could supply)."""
    ids = {p.arxiv_id for p in papers if p.abstract and p.arxiv_id}
    titles = {normalize_title(p.title) for p in papers if p.abstract}  # is_target's rule, indexed once
    found = [q.get("arxiv_id") in ids or normalize_title(q["title"]) in titles for q in questions]
    return np.array(found, dtype=bool)


def evaluate_search(index: Index, questions: list[dict], kind: str, topics: dict[str, set[str]], searchers) -> dict:
    """Scores of each named searcher on one question file (relevance rules of ../shared/README.md).

    Topical: a paper is relevant when one of its survey category paths contains a named node, or
    one of its reading-list topics is named; nDCG@10, P@10, MRR@10. Known-item: the paper with the
    question's arXiv id or title; success@3 and MRR@10, and success@3 apart for targets whose
    abstract the index holds and for those it knows by title alone."""
    papers = [p for _, p in index.store.iter_papers()]

    def topical_relevant(question: dict, paper) -> int:
        nodes = set(question.get("categories") or [])
        by_path = any(nodes & set(path.split("/")) for path in paper.survey_categories)
        return int(by_path or bool(set(question.get("topics") or []) & topics.get(paper.id, set())))

    groups = {}
    if kind == "known-item":
        with_abstract = targets_with_abstract(papers, questions)
        groups = {"s@3 abstract": with_abstract, "s@3 title only": ~with_abstract}

    if kind == "topical":
        totals = [sum(topical_relevant(question, p) for p in papers) for question in questions]

    results = {}
    for name, searcher in searchers.items():
        rows = []
        for number, question in enumerate(questions):
            hits = searcher.search(question["query"], 10)
            if kind == "topical":
                rel = [topical_relevant(question, h.paper) for h in hits]
                rows.append((ndcg_at(rel, totals[number]), sum(rel) / 10.0, reciprocal_rank(rel)))
            else:
                rel = [is_target(question, h.paper) for h in hits]
                rows.append((float(any(rel[:3])), reciprocal_rank(rel)))
        means = np.mean(rows, axis=0).tolist()
        keys = ("ndcg@10", "p@10", "mrr@10") if kind == "topical" else ("success@3", "mrr@10")
        results[name] = dict(zip(keys, means, strict=True))
        success = np.array([row[0] for row in rows])
        for key, members in groups.items():
            results[name][key] = float(success[members].mean()) if members.any() else None
    return results
