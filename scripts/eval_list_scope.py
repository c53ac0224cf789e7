"""Is a curated list's scope the list's own topic? (docs/evaluation.md, "A list's own scope")

For each list the index holds (`semsearch taxonomy add NAME README`), measured on the lists' real
membership, no label of an evaluation set read:

- kept: the list's papers called in scope by a classifier trained on the other four fifths of the
  list (five folds): what a maintainer's next paper meets;
- others: the papers of the index's other lists (and the survey's labelled papers) that this list
  does not hold, called in scope by the list's classifier trained on all of it: papers of another
  topic it would take. Another list's topic can overlap this one's, so this is an upper bound on
  the wrong ones;
- pool: the index's papers that no list holds, called in scope by the list's classifier: what
  `semsearch taxonomy propose NAME` would place.

    python scripts/eval_list_scope.py --index DIR [--lists kv specdec]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from semsearch.classify import SCOPE_THRESHOLD, TaxonomyClassifier
from semsearch.embeddings import embedder_for
from semsearch.index import Index
from semsearch.lists import labelled_papers, list_taxonomy

FOLDS = 5


def in_scope(classifier: TaxonomyClassifier, papers) -> np.ndarray:
    if not papers:
        return np.zeros(0, dtype=bool)
    texts = [p.text for p in papers]
    vectors = np.vstack([p.embedding for p in papers])
    return classifier.scope_probabilities(texts, vectors) >= SCOPE_THRESHOLD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--lists", nargs="*", default=None, help="the lists to measure (default: every list)")
    args = parser.parse_args()
    index = Index.open(args.index)
    store = index.store
    embed = embedder_for(index.manifest.model, index_dir=index.directory).encode
    names = args.lists or [t["name"] for t in store.taxonomies()]
    members = {name: labelled_papers(store, name) for name in names}
    survey = [p for p, _, _ in store.survey_labelled()]
    listed_ids = {p.id for papers in members.values() for p in papers} | {p.id for p in survey}
    from semsearch.classify import labelled_papers as as_training

    survey_papers = as_training(store.survey_labelled())
    pool = as_training((p, v, []) for p, v in _unlisted(store, listed_ids))

    print("| list | papers | kept (5-fold) | other lists' papers taken | survey papers taken | pool in scope |")
    print("|---|---|---|---|---|---|")
    for name in names:
        papers = members[name]
        taxonomy = list_taxonomy(store.taxonomy(name)["nodes"])
        fold = np.random.default_rng(0).integers(0, FOLDS, len(papers))
        kept = np.zeros(len(papers), dtype=bool)
        for k in range(FOLDS):
            train = [p for p, f in zip(papers, fold, strict=True) if f != k]
            test = [p for p, f in zip(papers, fold, strict=True) if f == k]
            kept[fold == k] = in_scope(TaxonomyClassifier.train(train, taxonomy, embed), test)
        whole = TaxonomyClassifier.train(papers, taxonomy, embed)
        own = {p.id for p in papers}
        others = [p for other in names if other != name for p in members[other] if p.id not in own]
        others = list({p.id: p for p in others}.values())
        outside_survey = [p for p in survey_papers if p.id not in own]
        print(
            f"| {name} | {len(papers)} | {kept.mean():.3f} | {in_scope(whole, others).mean():.3f} of {len(others)} "
            f"| {in_scope(whole, outside_survey).mean():.3f} of {len(outside_survey)} "
            f"| {int(in_scope(whole, pool).sum())} of {len(pool)} |"
        )


def _unlisted(store, listed_ids: set[str]):
    vec_ids, papers = zip(*store.iter_papers(), strict=True)
    vectors = store.embeddings_for(vec_ids)
    for vec_id, paper in zip(vec_ids, papers, strict=True):
        if paper.id not in listed_ids:
            yield paper, vectors[vec_id]


if __name__ == "__main__":
    main()
