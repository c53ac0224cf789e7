"""Can the index's own papers teach scope the words that the embedding scope misses? (issue 23;
docs/evaluation.md, "Scope")

The shipped scope score (`TaxonomyClassifier.scope_scores`: nearness to labelled papers and node
descriptions minus nearness to described research outside) is used to pseudo-label the index's
unlabelled papers with an abstract: the top q % as in scope, the bottom q % as out; the survey's
labelled papers with an abstract are in. A logistic regression over word TF-IDF (sublinear, English
stopwords) learns from them. No evaluation label is read to train; the dev file only scores:

- cross-fitted: the index's papers in five folds, each scored by a model trained on the others;
- unseen: the evaluated papers removed from the corpus before training (what a new paper meets);
- combined: the shipped score and the word score, each in standard units of the index's papers, summed;
  `in_scope` by the shipped rule (the 5th percentile of the labelled papers with an abstract,
  their scores out-of-fold).

Two rows are ceilings, not methods: the best threshold of the shipped score on the dev set, and a
word model trained on the dev labels themselves (five-fold), which says how much of scope the words
can carry at all.

    python scripts/eval_scope_words.py [--index DIR] [--shared ../shared]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from semsearch.classify import SCOPE_PERCENTILE, classifier_for
from semsearch.embeddings import embedder_for
from semsearch.evaluate import auroc, balanced_accuracy, read_expected
from semsearch.index import Index
from semsearch.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent
FOLDS = 5


def word_scores(words, shipped, labelled, has_abstract, train, score, q: float, c: float = 10.0) -> np.ndarray:
    """Decision values for the `score` rows of a word model trained on the `train` rows' pseudo-labels."""
    from sklearn.linear_model import LogisticRegression

    unlabelled = ~labelled & has_abstract & train
    low, high = np.percentile(shipped[unlabelled], [q, 100 - q])
    inside = (unlabelled & (shipped >= high)) | (labelled & has_abstract & train)
    outside = unlabelled & (shipped <= low)
    rows = np.flatnonzero(inside | outside)
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(words[rows], inside[rows])
    return model.decision_function(words[score])


def main() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    args = parser.parse_args()
    index = Index.open(args.index)
    store = index.store
    embedder = embedder_for(index.manifest.model, index_dir=index.directory)
    classifier = classifier_for(store, load_taxonomy(), embedder.encode)

    vec_ids, papers = zip(*store.iter_papers(), strict=True)
    stored = store.embeddings_for(vec_ids)
    vectors = np.vstack([stored[v] for v in vec_ids]).astype(np.float32)
    texts = [p.embedding_text() for p in papers]
    labelled = np.array([bool(p.survey_categories) for p in papers])
    has_abstract = np.array([bool(p.abstract) for p in papers])
    shipped = classifier.scope_scores(vectors)
    # A labelled paper's own score leaves itself out, as the shipped calibration does.
    labelled_rows = {pid: i for i, pid in enumerate(classifier.labelled_ids)}
    loo = classifier.scope_scores(classifier.labelled_vectors, exclude_self=True)
    for i, p in enumerate(papers):
        if p.id in labelled_rows:
            shipped[i] = loo[labelled_rows[p.id]]
    words = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english").fit_transform(texts)

    records = read_expected(args.shared / "eval/new_papers_dev.jsonl")
    row_of = {p.id: i for i, p in enumerate(papers)}
    dev = np.array([row_of[r["id"]] for r in records])
    truth = np.array([bool(r["expected"]) for r in records])
    evaluated = np.zeros(len(papers), dtype=bool)
    evaluated[dev] = True
    fold = np.random.default_rng(0).integers(0, FOLDS, len(papers))
    calibrate = labelled & has_abstract

    def standard(values: np.ndarray) -> np.ndarray:
        return (values - values.mean()) / values.std()

    def report(label: str, score: np.ndarray) -> None:
        threshold = np.percentile(score[calibrate], SCOPE_PERCENTILE)
        kept = score[dev] >= threshold
        print(
            f"| {label} | {auroc(score[dev], truth):.3f} | {balanced_accuracy(kept, truth):.3f} "
            f"| {kept[truth].mean():.3f} | {(~kept[~truth]).mean():.3f} |"
        )

    print("| scope score | AUROC | balanced accuracy | inside kept | outside turned away |")
    print("|---|---|---|---|---|")
    report("shipped (embedding nearness minus anchors)", shipped)
    for q in (20, 30, 40):
        crossed = np.zeros(len(papers))
        for k in range(FOLDS):
            crossed[fold == k] = word_scores(words, shipped, labelled, has_abstract, fold != k, fold == k, q)
        report(f"words, cross-fitted, q {q}", crossed)
        report(f"shipped + words, cross-fitted, q {q}", standard(shipped) + standard(crossed))
        unseen = np.zeros(len(papers))
        unseen[evaluated] = word_scores(words, shipped, labelled, has_abstract, ~evaluated, evaluated, q)
        # the labelled papers (never evaluated) still need out-of-fold scores for the threshold
        for k in range(FOLDS):
            rows = ~evaluated & (fold == k)
            unseen[rows] = word_scores(words, shipped, labelled, has_abstract, ~evaluated & (fold != k), rows, q)
        report(f"shipped + words, evaluated papers unseen, q {q}", standard(shipped) + standard(unseen))

    best = max(balanced_accuracy(shipped[dev] >= t, truth) for t in np.percentile(shipped[dev], np.arange(1, 100)))
    print(f"\nceiling, not a method: the shipped score's best threshold on the dev set: balanced accuracy {best:.3f}")
    for name, features in (("word TF-IDF", words[dev]), ("embedding", vectors[dev])):
        model = LogisticRegression(C=10, max_iter=2000)
        fitted = cross_val_predict(model, features, truth, cv=5, method="predict_proba")[:, 1]
        print(f"ceiling, not a method: {name} logistic on the dev labels (5-fold): AUROC {auroc(fitted, truth):.3f}")


if __name__ == "__main__":
    main()
