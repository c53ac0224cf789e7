"""Scope's words (`classify.ScopeWords`), learned from the index's own abstracts: what they add to
the embedding's scope, measured on new papers with an expected node or null (issue 23;
docs/evaluation.md, "Scope's words").

The classifier is trained as ingest trains it (`TaxonomyClassifier.train(..., corpus=...)`, the
index's unlabelled abstracts as the corpus), with the corpus varied:

- none: the embedding's scope alone (the engine before scope's words);
- in place: the whole corpus, as `semsearch ingest` trains it; the evaluated papers, which this
  index holds, are among the texts it learned from (pseudo-labelled by the embedding, never by
  their labels);
- cross-fitted: the evaluated papers in five folds, each scored by a classifier whose corpus
  leaves that fold out: a paper the index has never seen, as a new paper is, with a corpus
  nearly as large;
- unseen: every evaluated paper left out of the corpus at once (a smaller corpus).

No evaluation label is read to train; the dev file only scores. With --lists, the share of each
curated list's papers called in scope (in place, and with the list's papers left out of the corpus).

    python scripts/eval_scope_words.py [--index DIR] [--papers ../shared/eval/new_papers_dev.jsonl]
        [--lists ../shared/data/lists/*.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from eval_scope_anchors import list_texts

from semsearch.classify import MAX_WORD_SCOPE_PAPERS, TaxonomyClassifier, labelled_papers
from semsearch.embeddings import embedder_for
from semsearch.errors import run_script
from semsearch.evaluate import auroc, balanced_accuracy, read_expected, texts_and_vectors
from semsearch.index import Index
from semsearch.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent
FOLDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--papers", type=Path, default=HERE.parent.parent / "shared/eval/new_papers_dev.jsonl")
    parser.add_argument("--lists", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    index = Index.open(args.index)
    embedder = embedder_for(index.manifest.model, index_dir=index.directory)
    taxonomy, papers = load_taxonomy(), labelled_papers(index.store.survey_labelled())
    records = read_expected(args.papers)
    texts, vectors = texts_and_vectors(index, records, embedder)
    inside = np.array([bool(r["expected"]) for r in records])
    corpus = index.store.unlabelled_abstracts(MAX_WORD_SCOPE_PAPERS)
    key = {row[0]: i for i, row in enumerate(corpus)}  # a paper's text is how the corpus holds it
    fold = np.random.default_rng(0).permutation(len(texts)) % FOLDS

    def without(left_out: list[str]) -> list:
        drop = {key[t] for t in left_out if t in key}
        return [row for i, row in enumerate(corpus) if i not in drop]

    def trained(on) -> TaxonomyClassifier:
        return TaxonomyClassifier.train(papers, taxonomy, embedder.encode, corpus=on)

    variants = {"none (embedding only)": trained(()), "in place (as ingest trains it)": trained(corpus)}
    scores = {name: c.scope_probabilities(texts, vectors) for name, c in variants.items()}
    crossed = np.zeros(len(texts))
    for k in range(FOLDS):
        held = np.flatnonzero(fold == k)
        classifier = trained(without([texts[i] for i in held]))
        crossed[held] = classifier.scope_probabilities([texts[i] for i in held], vectors[held])
    scores["cross-fitted (each fold left out of the corpus)"] = crossed
    scores["unseen (every evaluated paper left out)"] = trained(without(texts)).scope_probabilities(texts, vectors)
    held_in = sum(t in key for t in texts)
    print(f"{len(texts)} papers ({int(inside.sum())} inside), {held_in} of them in the corpus of {len(corpus)}")
    print("| scope | AUROC | balanced accuracy | inside kept | outside turned away |")
    print("|---|---|---|---|---|")
    for name, scope in scores.items():
        kept = scope >= 0.5
        print(
            f"| {name} | {auroc(scope, inside):.3f} | {balanced_accuracy(kept, inside):.3f} "
            f"| {kept[inside].mean():.3f} | {(~kept[~inside]).mean():.3f} |"
        )
    for path in args.lists:
        listed = list_texts(index, path)
        listed_vectors = embedder.encode(listed)
        shares = [
            np.mean(c.scope_probabilities(listed, listed_vectors) >= 0.5)
            for c in (
                variants["none (embedding only)"],
                variants["in place (as ingest trains it)"],
                trained(without(listed)),
            )
        ]
        print(
            f"{path.name}: in scope {shares[0]:.3f} embedding only, {shares[1]:.3f} in place, "
            f"{shares[2]:.3f} with its papers left out of the corpus"
        )


if __name__ == "__main__":
    run_script(main)
