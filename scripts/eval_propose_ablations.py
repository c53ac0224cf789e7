"""Ablations of issue 24: placing the papers a list added as its maintainers did, and gaps without
their check against existing headings.

    python scripts/eval_propose_ablations.py placement OLD.md NEW.md [--index DIR]
    python scripts/eval_propose_ablations.py gaps NAME... [--index DIR]

`placement` trains the list's classifier on OLD.md (as `semsearch eval propose` does) and scores
other evidence for a heading, alone and combined with the classifier's kernel-ridge scores: a kNN
vote over the list's labelled papers, our descriptions of the headings, a prior by heading size, a
prior by how many of a heading's papers appeared within a year of the paper, and title vectors
expanded with their nearest abstracts in the index. Weights of a combination are learned on the
list's own labelled papers (leave-one-out: its state when the papers were added, never the added
papers' headings), and each row shows that leave-one-out figure beside the dev period's.

`gaps` runs `semsearch eval gaps` with the check against existing headings switched off.
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from semsearch.errors import run_script


def _accuracy(scores: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    order = np.argsort(-scores, axis=1)
    first = right[np.arange(len(right)), order[:, 0]].mean()
    top3 = np.mean([right[i, order[i, :3]].any() for i in range(len(right))])
    return round(float(first), 3), round(float(top3), 3)


def _fit_weights(features: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Weights of a conditional logit over the headings (softmax of the weighted features),
    maximising the probability of a right heading."""
    from scipy.optimize import minimize

    def loss(w):
        s = features @ w
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        return -np.log((p * right).sum(axis=1) + 1e-12).mean()

    return minimize(loss, np.ones(features.shape[-1]), method="L-BFGS-B").x


def _knn(kernel: np.ndarray, spread: np.ndarray, k: int) -> np.ndarray:
    nearest = np.argsort(-kernel, axis=1)[:, :k]
    out = np.zeros((len(kernel), spread.shape[1]))
    for i, rows in enumerate(nearest):
        w = kernel[i, rows]
        out[i] = (w[:, None] * spread[rows]).sum(axis=0) / max(w.sum(), 1e-9)
    return out


def _month(arxiv_id: str | None) -> float:
    m = re.fullmatch(r"(\d\d)(\d\d)\.\d{4,5}", arxiv_id or "")
    return int(m.group(1)) * 12 + int(m.group(2)) if m else np.nan


def placement(old_path: str, new_path: str, index_dir: str | None) -> None:
    from semsearch import propose as P
    from semsearch.classify import LabelledPaper, TaxonomyClassifier, _unit_rows
    from semsearch.embeddings import embedder_for
    from semsearch.index import Index
    from semsearch.lists import read_source
    from semsearch.paper import normalize_title
    from semsearch.sources.curated import parse_list
    from semsearch.taxonomy import is_under

    index = Index.open(index_dir)
    embed = embedder_for(index.manifest.model, index_dir=index.directory).encode
    old = parse_list(read_source(old_path, offline=True))
    new = parse_list(read_source(new_path, offline=True))
    held = {P.list_key(p) for p in old.papers} | {normalize_title(p.title) for p in old.papers}
    added = [p for p in new.papers if P.list_key(p) not in held and normalize_title(p.title) not in held]
    added = [p for p in added if any(c in set(old.nodes) for c in p.categories)]
    taxonomy = P.list_taxonomy_of(old)
    nodes = set(taxonomy.nodes)
    indexed = P._indexed(index.store, old.papers, embed)
    labelled = [
        LabelledPaper(
            paper.id, paper.title, paper.embedding_text(), vector, [c for c in listed.categories if c in nodes]
        )
        for listed, (paper, vector) in zip(old.papers, ((c.paper, c.vector) for c in indexed), strict=True)
        if any(c in nodes for c in listed.categories)
    ]
    found = P._indexed(index.store, added, embed)
    texts = [c.paper.embedding_text() for c in found]
    vectors = _unit_rows(np.vstack([c.vector for c in found]).astype(np.float32))

    def evaluate(train: list[LabelledPaper], new_vectors: np.ndarray):
        classifier = TaxonomyClassifier.train(train, taxonomy, embed)
        leaves = classifier.leaves
        right = np.array([[any(is_under(leaf, c) for c in p.categories) for leaf in leaves] for p in train], float)
        right_new = np.array([[any(is_under(leaf, c) for c in a.categories) for leaf in leaves] for a in added], float)
        return classifier, right, right_new, classifier.loo_scores, classifier.leaf_scores(texts, new_vectors)

    classifier, right, right_new, ridge, ridge_new = evaluate(labelled, vectors)
    n, leaves = len(labelled), classifier.leaves
    spread = np.array([taxonomy.leaf_spread(p.categories) for p in labelled])
    kernel = classifier._kernel(classifier.labelled_vectors, classifier.train_tfidf.head(n), rows=n)
    np.fill_diagonal(kernel, 0.0)  # leave-one-out: a paper is not its own neighbour
    kernel_new = classifier._kernel(vectors, classifier.tfidf.transform(texts), rows=n)
    knn, knn_new = _knn(kernel, spread, 10), _knn(kernel_new, spread, 10)
    descriptions = classifier.train_vectors[n : n + len(leaves)]
    described, described_new = classifier.labelled_vectors @ descriptions.T, vectors @ descriptions.T
    counts = spread.sum(axis=0)
    size, size_new = np.log(counts[None, :] - spread + 1), np.repeat(np.log(counts + 1)[None, :], len(added), axis=0)
    months = np.array([_month(p.id) for p in labelled])
    months_new = np.array([_month(a.arxiv_id) for a in added])

    def recent(at: np.ndarray, leave_out: bool) -> np.ndarray:
        out = np.zeros((len(at), len(leaves)))
        for i, month in enumerate(at):
            w = np.ones(n) if np.isnan(month) else (np.abs(months - month) <= 12).astype(float)
            w[np.isnan(months)] = 0.0
            if leave_out:
                w[i] = 0.0
            c = w @ spread
            out[i] = np.log((c + 1.0) / (c.sum() + len(leaves)))
        return out

    recency, recency_new = recent(months, True), recent(months_new, False)

    # Other lists the index follows that file the same paper: their heading -> this list's leaves,
    # counted over the labelled papers both lists hold (leaving the paper itself out).
    others: dict[int, list[tuple[str, str]]] = {}
    for row in index.store.taxonomies():
        for vec_id, categories in index.store.taxonomy_labels(row["name"]).items():
            others.setdefault(vec_id, []).extend((row["name"], c) for c in categories)

    def filed(paper_id: str | None) -> list[tuple[str, str]]:
        vec_id = index.store.find(paper_id) if paper_id else None
        return others.get(vec_id, []) if vec_id is not None else []

    filed_old, filed_new = [filed(p.id) for p in labelled], [filed(a.arxiv_id) for a in added]
    mapping: dict[tuple[str, str], np.ndarray] = {}
    for headings, row in zip(filed_old, spread, strict=True):
        for heading in headings:
            mapping[heading] = mapping.get(heading, np.zeros(len(leaves))) + row

    def cross_list(all_filed, leave_out: bool) -> np.ndarray:
        out = np.zeros((len(all_filed), len(leaves)))
        for i, headings in enumerate(all_filed):
            for heading in headings:
                counts = mapping.get(heading, np.zeros(len(leaves))) - (spread[i] if leave_out else 0.0)
                out[i] += np.log((counts + 0.5) / (counts.sum() + 0.5 * len(leaves))) - np.log(1 / len(leaves))
        return out

    crossed, crossed_new = cross_list(filed_old, True), cross_list(filed_new, False)
    print(
        f"papers other lists file: {sum(bool(f) for f in filed_old)} of {n} labelled, "
        f"{sum(bool(f) for f in filed_new)} of {len(added)} added"
    )
    rows = [
        ("kernel ridge (the classifier; today)", [ridge], [ridge_new]),
        ("kNN vote, k=10, alone", [knn], [knn_new]),
        ("heading descriptions alone", [described], [described_new]),
        ("ridge + kNN", [ridge, knn], [ridge_new, knn_new]),
        ("ridge + descriptions", [ridge, described], [ridge_new, described_new]),
        ("ridge + size prior", [ridge, size], [ridge_new, size_new]),
        ("ridge + recency prior (±12 months)", [ridge, recency], [ridge_new, recency_new]),
        ("ridge + other lists' headings for the paper", [ridge, crossed], [ridge_new, crossed_new]),
        (
            "ridge + kNN + descriptions + size",
            [ridge, knn, described, size],
            [ridge_new, knn_new, described_new, size_new],
        ),
    ]
    print(f"{len(added)} added papers, {n} labelled; first / top three (leave-one-out on the list | dev period)")
    for name, own, dev in rows:
        features, features_new = np.stack(own, axis=-1), np.stack(dev, axis=-1)
        w = _fit_weights(features, right) if len(own) > 1 else np.ones(1)
        print(f"{name:45s} {_accuracy(features @ w, right)} | {_accuracy(features_new @ w, right_new)}")
    # Title vectors moved toward their nearest abstracts in the index (document expansion).
    papers = dict(index.store.iter_papers())
    stored = index.store.embeddings_for(papers)
    pool = [v for v in papers if v in stored and papers[v].abstract]
    abstracts = _unit_rows(np.vstack([stored[v] for v in pool]).astype(np.float32))
    pool_ids = [papers[v].id for v in pool]

    def expand(vs: np.ndarray, ids: list[str], k: int) -> np.ndarray:
        similar = _unit_rows(vs.astype(np.float32)) @ abstracts.T
        for i, paper_id in enumerate(ids):
            similar[i, [j for j, x in enumerate(pool_ids) if x == paper_id]] = -1.0
        nearest = np.argsort(-similar, axis=1)[:, :k]
        return _unit_rows(vs + np.stack([abstracts[t].mean(axis=0) for t in nearest]))

    for k in (3, 10):
        moved = expand(np.vstack([p.embedding for p in labelled]), [p.id for p in labelled], k)
        train = [LabelledPaper(p.id, p.title, p.text, v, p.categories) for p, v in zip(labelled, moved, strict=True)]
        _, r, r_new, loo, scores = evaluate(train, expand(vectors, [c.paper.id for c in found], k))
        print(f"{f'vectors expanded by {k} nearest abstracts':45s} {_accuracy(loo, r)} | {_accuracy(scores, r_new)}")


def gaps_without_check(names: list[str], index_dir: str | None) -> None:
    from semsearch import gaps
    from semsearch.embeddings import embedder_for
    from semsearch.index import Index

    gaps.fits_a_heading = lambda *args, **kwargs: False
    index = Index.open(index_dir)
    embed = embedder_for(index.manifest.model, index_dir=index.directory).encode
    for name in names:
        report = gaps.evaluate_gaps(index, name, embed)
        print(f"{name}: {report['recovered']} of {report['headings']} recovered, {report['false_gaps']} false gaps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["placement", "gaps"])
    parser.add_argument("args", nargs="+")
    parser.add_argument("--index")
    options = parser.parse_args()
    if options.what == "placement":
        placement(*options.args[:2], options.index)
    else:
        gaps_without_check(options.args, options.index)


if __name__ == "__main__":
    run_script(main)
