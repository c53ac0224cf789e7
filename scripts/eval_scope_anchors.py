"""Scope with and without our anchors (other fields that use language models: out; efficiency work
on other modalities' models: in), on new papers with an expected node or null (issue 23).

Each variant retrains the classifier on the index's labelled papers; the papers judged are only
scored: AUROC of `scope`, balanced accuracy of `in_scope`, the share of papers inside kept (TPR)
and outside turned away (TNR).

    python scripts/eval_scope_anchors.py [--index DIR] [--papers ../shared/eval/new_papers_dev.jsonl]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from semsearch import classify
from semsearch.classify import TaxonomyClassifier, labelled_papers
from semsearch.embeddings import embedder_for
from semsearch.evaluate import auroc, balanced_accuracy, read_expected, texts_and_vectors
from semsearch.index import Index
from semsearch.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--papers", type=Path, default=HERE.parent.parent / "shared/eval/new_papers_dev.jsonl")
    args = parser.parse_args()
    index = Index.open(args.index)
    embedder = embedder_for(index.manifest.model, index_dir=index.directory)
    records = read_expected(args.papers)
    texts, vectors = texts_and_vectors(index, records, embedder)
    inside = np.array([bool(r["expected"]) for r in records])
    papers = labelled_papers(index.store.survey_labelled())
    fields, modalities = classify.OTHER_FIELDS, classify.OTHER_MODALITIES
    variants = {
        "neither": ((), ()),
        "other fields (out)": (fields, ()),
        "other modalities (in)": ((), modalities),
        "both (shipped)": (fields, modalities),
    }
    print("| anchors | scope AUROC | balanced accuracy | inside kept | outside turned away |")
    try:
        for name, (classify.OTHER_FIELDS, classify.OTHER_MODALITIES) in variants.items():
            classifier = TaxonomyClassifier.train(papers, load_taxonomy(), embedder.encode)
            placed = classifier.classify(texts, vectors, explain=False)
            scope = np.array([r.scope for r in placed])
            kept = np.array([r.in_scope for r in placed])
            print(
                f"| {name} | {auroc(scope, inside):.3f} | {balanced_accuracy(kept, inside):.3f} | "
                f"{kept[inside].mean():.3f} | {(~kept[~inside]).mean():.3f} |"
            )
    finally:
        classify.OTHER_FIELDS, classify.OTHER_MODALITIES = fields, modalities


if __name__ == "__main__":
    main()
