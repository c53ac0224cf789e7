"""Scope with and without our anchors (other fields that use language models: out; efficiency work
on other modalities' models: in), on new papers with an expected node or null (issue 23).

Each variant retrains the classifier on the index's labelled papers; the papers judged are only
scored: AUROC of `scope`, balanced accuracy of `in_scope`, the share of papers inside kept (TPR)
and outside turned away (TNR).

    python scripts/eval_scope_anchors.py [--index DIR] [--papers ../shared/eval/new_papers_dev.jsonl]
        [--lists ../shared/data/lists/October2001__Awesome-KV-Cache-Compression.md ...]

With --lists, also the share of each curated list's papers called in scope (the index's abstract
where it holds the paper, else its title as listed).
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


def list_texts(index: Index, path: Path) -> list[str]:
    from semsearch.paper import embedding_text
    from semsearch.sources.curated import parse_list

    store, texts = index.store, []
    for listed in parse_list(path.read_text()).papers:
        vec_id = store.find(listed.arxiv_id) if listed.arxiv_id else None
        paper = store.papers_by_vec_id([vec_id])[vec_id] if vec_id is not None else None
        held = paper is not None and paper.abstract
        texts.append(embedding_text(paper.title, paper.abstract) if held else embedding_text(listed.title, ""))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--papers", type=Path, default=HERE.parent.parent / "shared/eval/new_papers_dev.jsonl")
    parser.add_argument("--lists", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    index = Index.open(args.index)
    embedder = embedder_for(index.manifest.model, index_dir=index.directory)
    records = read_expected(args.papers)
    texts, vectors = texts_and_vectors(index, records, embedder)
    inside = np.array([bool(r["expected"]) for r in records])
    papers = labelled_papers(index.store.survey_labelled())
    listed = {path.name: list_texts(index, path) for path in args.lists}
    fields, modalities = classify.OTHER_FIELDS, classify.OTHER_MODALITIES
    variants = {
        "neither": ((), ()),
        "other fields (out)": (fields, ()),
        "other modalities (in)": ((), modalities),
        "both (shipped)": (fields, modalities),
    }
    print(
        "| anchors | scope AUROC | balanced accuracy | inside kept | outside turned away |"
        + "".join(f" {name} in scope |" for name in listed)
    )
    try:
        for name, (classify.OTHER_FIELDS, classify.OTHER_MODALITIES) in variants.items():
            classifier = TaxonomyClassifier.train(papers, load_taxonomy(), embedder.encode)
            placed = classifier.classify(texts, vectors, explain=False)
            scope = np.array([r.scope for r in placed])
            kept = np.array([r.in_scope for r in placed])
            shares = []
            for texts_of_list in listed.values():
                found = classifier.classify(texts_of_list, embedder.encode(texts_of_list), explain=False)
                shares.append(np.mean([r.in_scope for r in found]))
            print(
                f"| {name} | {auroc(scope, inside):.3f} | {balanced_accuracy(kept, inside):.3f} | "
                f"{kept[inside].mean():.3f} | {(~kept[~inside]).mean():.3f} |" + "".join(f" {s:.3f} |" for s in shares)
            )
    finally:
        classify.OTHER_FIELDS, classify.OTHER_MODALITIES = fields, modalities


if __name__ == "__main__":
    main()
