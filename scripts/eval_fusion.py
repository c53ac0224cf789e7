"""Other ways to fuse the direct match and the taxonomy evidence, against the shipped question-kind
model and the former sharp-match gate (issue 23; docs/evaluation.md, "One ranking for both kinds of question").

Each question's candidates and evidence are read once from the index (`Searcher.evidence`: cosine,
BM25 share, each candidate's leaf distribution, the question's leaf distribution); every variant
then re-ranks the same candidates, so the rows differ only in the fusion rule. None of the
variants reads a label; the question sets only score. Variants:

- shipped: the learned question kind (`Searcher.one_paper`, `search.rank_hybrid`), the former
  sharp-match gate that the variants below build on, and `--no-taxonomy`;
- question kind known (an oracle, not a method): no taxonomy for known-item questions, the shipped
  ranking for topical ones; the ceiling of any gate that chooses between the two;
- a scale-free top-3 slot: the best direct match is moved into third place (if lower) when it
  stands out of the question's own score distribution: its lead over the runner-up relative to
  the spread of the first ten direct scores ((s1 − s2) / (s1 − s10) ≥ θ, or (s1 − s2) / sd(s2..s10)
  ≥ z), with or without the gate;
- direct scores in the question's own units: (s − mean) / sd over its 200 best direct matches,
  times s, plus the taxonomy credit (the gate kept);
- reciprocal-rank fusion of the direct ranking (weight wd) and the shipped one;
- pseudo-relevance feedback: the question's leaf distribution mixed (share a) with that of its
  ten best direct matches (the gate kept);
- the predicted papers' leaf distributions sharpened (temperature T) so that they compete with
  survey-labelled papers, whose labels are exact.

    python scripts/eval_fusion.py [--index DIR] [--shared ../shared]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from eval_question_kind import question_sets  # the script beside this one (its folder is on sys.path)

from semsearch.errors import run_script
from semsearch.evaluate import is_target, ndcg_at, read_questions, read_topics, targets_with_abstract
from semsearch.index import Index
from semsearch.search import DENSE_WEIGHT, TAXONOMY_WEIGHT, Searcher, rank_hybrid

HERE = Path(__file__).resolve().parent
K = 10
SHARP_MARGIN = 0.05  # the former gate: the best direct match kept the first place when it led by this


def read_question(searcher: Searcher, query: str, relevant: Callable) -> dict:
    """One question's candidates as arrays (vec_ids, direct score, leaf distributions, whether a
    survey label or a prediction gives them, relevance) and the shipped ranking's top K."""
    vector = searcher.embed_query(query)
    evidence = searcher.evidence(query, vector)
    ids = list(evidence)
    filed = searcher.leaf_distributions(ids)
    papers = searcher.index.store.papers_by_vec_id(ids)
    question = searcher.question_leaves(query, vector)
    one_paper = searcher.one_paper(query, vector, evidence, question)
    shipped = [ids.index(v) for v, _ in rank_hybrid(evidence, K, TAXONOMY_WEIGHT, one_paper)]
    forced = [ids.index(v) for v, _ in rank_hybrid(evidence, K, TAXONOMY_WEIGHT, 1.0)]  # the worst case
    return {
        "direct": np.array([evidence[v].direct_score for v in ids]),
        "question": question,
        "spread": [filed[v][1] if v in filed else None for v in ids],
        "labelled": np.array([bool(papers[v].survey_categories) for v in ids]),
        "credit": np.array([evidence[v].category_probability for v in ids]),
        "relevant": np.array([relevant(papers[v]) for v in ids]),
        "shipped": shipped,
        "forced": forced,
        "one_paper": one_paper,
    }


def credit_for(q: dict, question: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    credit = np.zeros(len(q["direct"]))
    for i, spread in enumerate(q["spread"]):
        if spread is None:
            continue
        if temperature != 1.0 and not q["labelled"][i]:
            spread = spread ** (1 / temperature)
            spread = spread / spread.sum()
        credit[i] = float(spread @ question)
    return credit


def gated(q: dict, credit: np.ndarray, gate: bool = True) -> np.ndarray:
    d = q["direct"]
    credit = credit.copy()
    order = np.argsort(-d)
    if gate and (len(d) == 1 or d[order[0]] - d[order[1]] >= SHARP_MARGIN):
        credit[order[0]] = 1.0
    return (d + TAXONOMY_WEIGHT * credit) / (1 + TAXONOMY_WEIGHT)


def order_of(scores: np.ndarray) -> list[int]:
    return list(np.argsort(-scores, kind="stable")[:K])


def shipped(q: dict) -> list[int]:
    return q["shipped"]


def former_gate(q: dict) -> list[int]:
    return order_of(gated(q, q["credit"]))


def no_taxonomy(q: dict) -> list[int]:
    return order_of(q["direct"])


def slot(statistic: str, threshold: float, gate: bool) -> Callable:
    def rank(q: dict) -> list[int]:
        d = q["direct"]
        ranking = list(np.argsort(-gated(q, q["credit"], gate), kind="stable"))
        first = np.sort(d)[::-1][:10]
        lead = first[0] - first[1]
        value = lead / max(first[0] - first[-1], 1e-9) if statistic == "ratio" else lead / max(first[1:].std(), 1e-9)
        best = int(np.argmax(d))
        if value >= threshold and ranking.index(best) > 2:
            ranking.remove(best)
            ranking.insert(2, best)
        return ranking[:K]

    return rank


def own_units(scale: float, n: int = 200) -> Callable:
    def rank(q: dict) -> list[int]:
        d = q["direct"]
        first = np.sort(d)[::-1][:n]
        z = (d - first.mean()) / max(first.std(), 1e-9)
        # the gate's credit, with the direct part in the question's own units
        credit = (gated(q, q["credit"]) * (1 + TAXONOMY_WEIGHT) - d) / TAXONOMY_WEIGHT
        return order_of(scale * z + TAXONOMY_WEIGHT * credit)

    return rank


def reciprocal_rank_fusion(k: float, direct_weight: float) -> Callable:
    def rank(q: dict) -> list[int]:
        d, fused = q["direct"], gated(q, q["credit"])
        by_direct, by_fused = np.empty(len(d)), np.empty(len(d))
        by_direct[np.argsort(-d)] = np.arange(len(d))
        by_fused[np.argsort(-fused)] = np.arange(len(d))
        return order_of(direct_weight / (k + by_direct) + 1 / (k + by_fused))

    return rank


def feedback(share: float, depth: int = 10) -> Callable:
    def rank(q: dict) -> list[int]:
        best = np.argsort(-q["direct"])[:depth]
        found = [q["spread"][i] for i in best if q["spread"][i] is not None]
        question = q["question"]
        if found:
            question = (1 - share) * question + share * np.mean(found, axis=0)
        return order_of(gated(q, credit_for(q, question)))

    return rank


def sharpened(temperature: float) -> Callable:
    return lambda q: order_of(gated(q, credit_for(q, q["question"], temperature)))


VARIANTS: dict[str, Callable] = {
    "question kind learned, hard; below 1/2 slot 3 at ratio >= 0.5 (shipped)": shipped,
    "question kind, nothing below 1/2": lambda q: (
        q["shipped"] if q["one_paper"] >= 0.5 else order_of(gated(q, q["credit"], False))
    ),
    "every question taken for one paper (shipped rule)": lambda q: q["forced"],
    "question kind, and below 1/2 the former gate": lambda q: q["shipped"] if q["one_paper"] >= 0.5 else former_gate(q),
    "question kind, below 1/2 slot 3 at ratio >= 0.3": lambda q: (
        q["shipped"] if q["one_paper"] >= 0.5 else slot("ratio", 0.3, False)(q)
    ),
    "sharp-match gate (before)": former_gate,
    "no taxonomy": no_taxonomy,
    "slot 3 when (s1-s2)/(s1-s10) >= 0.3, gate kept": slot("ratio", 0.3, True),
    "slot 3 when (s1-s2)/(s1-s10) >= 0.3, no gate": slot("ratio", 0.3, False),
    "slot 3 when (s1-s2)/(s1-s10) >= 0.5, no gate": slot("ratio", 0.5, False),
    "slot 3 when (s1-s2)/sd >= 2, no gate": slot("z", 2.0, False),
    "slot 3 when (s1-s2)/sd >= 3, no gate": slot("z", 3.0, False),
    "direct in own units, x0.1": own_units(0.1),
    "direct in own units, x0.2": own_units(0.2),
    "RRF k 10, direct weight 0.3": reciprocal_rank_fusion(10, 0.3),
    "RRF k 10, direct weight 1": reciprocal_rank_fusion(10, 1.0),
    "feedback from 10 best, share 0.2": feedback(0.2),
    "feedback from 10 best, share 0.5": feedback(0.5),
    "predicted distributions at T 0.5": sharpened(0.5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    args = parser.parse_args()
    assert DENSE_WEIGHT == 0.7, "Evidence.direct_score is what the variants re-rank"
    index = Index.open(args.index)
    searcher = Searcher(index)
    topics = read_topics(args.shared / "data/arxiv_topics.jsonl")
    all_papers = [p for _, p in index.store.iter_papers()]
    sets = question_sets(args.shared)
    read = {}
    for name, path in sets.items():
        kind, rows = read_questions(path)
        questions = []
        for row in rows:
            if kind == "topical":

                def relevant(p, row=row):
                    by_path = any(set(row.get("categories") or []) & set(c.split("/")) for c in p.survey_categories)
                    return int(by_path or bool(set(row.get("topics") or []) & topics.get(p.id, set())))

                total = sum(relevant(p) for p in all_papers)
            else:
                relevant, total = (lambda p, row=row: is_target(row, p)), 1
            questions.append(read_question(searcher, row["query"], relevant) | {"total": total})
        if kind == "known-item":
            for q, has_abstract in zip(questions, targets_with_abstract(all_papers, rows), strict=True):
                q["abstract"] = bool(has_abstract)
        read[name] = (kind, questions)

    def score(rank: Callable, kind: str, q: dict) -> float:
        relevance = q["relevant"][rank(q)].tolist()
        return ndcg_at(relevance, q["total"]) if kind == "topical" else float(any(relevance[:3]))

    variants = dict(VARIANTS)
    variants["question kind known (oracle)"] = None
    print("| variant | " + " | ".join(sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for label, rank in variants.items():
        cells = []
        for kind, questions in read.values():
            if rank is None:  # the ceiling of any gate between the two shipped rankings
                chosen = no_taxonomy if kind == "known-item" else former_gate
                cells.append(np.mean([score(chosen, kind, q) for q in questions]))
            else:
                cells.append(np.mean([score(rank, kind, q) for q in questions]))
        print(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    print("\nknown items with an abstract that the former gate misses: the target's place by direct match")
    _, questions = read["known abs"]
    for q in questions:
        before = former_gate(q)
        if not q["abstract"] or any(q["relevant"][before[:3]]):
            continue
        target = int(np.flatnonzero(q["relevant"])[0]) if q["relevant"].any() else None
        if target is None:
            print("  target not among the candidates")
            continue
        place = int((q["direct"] > q["direct"][target]).sum()) + 1
        shown = before.index(target) + 1 if target in before else f">{K}"
        print(
            f"  direct place {place}, place under the gate {shown}, its taxonomy credit {q['credit'][target]:.2f} "
            f"against {np.mean(q['credit'][before[:3]]):.2f} for the gate's first three"
        )


if __name__ == "__main__":
    run_script(main)
