"""Scope with and without our anchors (other fields that use language models and computing outside
machine learning: out; efficiency work on other modalities' models: in), on new papers with an
expected node or null (issue 23).

Each variant retrains the classifier as ingest trains it (the index's labelled papers, and its
unlabelled abstracts for scope's words); the papers judged are only scored: AUROC of `scope`,
balanced accuracy of `in_scope`, the share of papers inside kept (TPR) and outside turned away (TNR).

    python scripts/eval_scope_anchors.py [--index DIR] [--papers ../shared/eval/new_papers_dev.jsonl]
        [--lists ../shared/data/lists/*.md] [--probes scripts/eval/scope_probes_*.jsonl]

With --lists, also the share of each curated list's papers called in scope (the index's abstract
where it holds the paper, else its title as listed); with --probes, the same four figures on files of
{"id", "title", "abstract", "in_scope"} we wrote (scripts/eval/README.md says when). The figures in
docs/evaluation.md are on the dev index (the survey offline and ../shared/data/arxiv_topics.jsonl):
scope's words are learned from the index's abstracts, so an index of the survey alone differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from semsearch import classify
from semsearch.classify import MAX_WORD_SCOPE_PAPERS, TaxonomyClassifier, labelled_papers
from semsearch.embeddings import embedder_for
from semsearch.errors import run_script
from semsearch.evaluate import auroc, balanced_accuracy, read_expected, texts_and_vectors
from semsearch.index import Index
from semsearch.paper import embedding_text
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


def figures(scope: np.ndarray, inside: np.ndarray) -> str:
    kept = scope >= 0.5
    return (
        f"{auroc(scope, inside):.3f} | {balanced_accuracy(kept, inside):.3f} | "
        f"{kept[inside].mean():.3f} | {(~kept[~inside]).mean():.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--papers", type=Path, default=HERE.parent.parent / "shared/eval/new_papers_dev.jsonl")
    parser.add_argument("--lists", type=Path, nargs="*", default=[])
    parser.add_argument("--probes", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    index = Index.open(args.index)
    embedder = embedder_for(index.manifest.model, index_dir=index.directory)
    dev = args.papers.is_file()  # without ../shared: the lists and probes alone
    if dev:
        records = read_expected(args.papers)
        texts, vectors = texts_and_vectors(index, records, embedder)
        inside = np.array([bool(r["expected"]) for r in records])
    else:
        print(f"note: {args.papers} is not there: its columns are left out", file=sys.stderr)
    papers = labelled_papers(index.store.survey_labelled())
    corpus = index.store.unlabelled_abstracts(MAX_WORD_SCOPE_PAPERS)
    listed = {path.name: list_texts(index, path) for path in args.lists}
    probes = {}
    for path in args.probes:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        probe_texts = [embedding_text(r["title"], r["abstract"]) for r in rows]
        probes[path.name] = (probe_texts, embedder.encode(probe_texts), np.array([r["in_scope"] for r in rows]))
    fields, computing, modalities = classify.OTHER_FIELDS, classify.OTHER_COMPUTING, classify.OTHER_MODALITIES
    variants = {
        "the taxonomy's list only": ((), (), ()),
        "+ other fields (out)": (fields, (), ()),
        "+ other modalities (in)": ((), (), modalities),
        "+ both (before computing)": (fields, (), modalities),
        "+ both + computing outside ML (out; shipped)": (fields, computing, modalities),
    }
    print(
        "| anchors |"
        + (" scope AUROC | balanced accuracy | inside kept | outside turned away |" if dev else "")
        + "".join(f" {name} in scope |" for name in listed)
        + "".join(f" {name}: AUROC, balanced, kept, turned away |" for name in probes)
    )
    try:
        for name, (classify.OTHER_FIELDS, classify.OTHER_COMPUTING, classify.OTHER_MODALITIES) in variants.items():
            classifier = TaxonomyClassifier.train(papers, load_taxonomy(), embedder.encode, corpus=corpus)
            shares = [
                np.mean(classifier.scope_probabilities(found, embedder.encode(found)) >= 0.5)
                for found in listed.values()
            ]
            print(
                f"| {name} |"
                + (f" {figures(classifier.scope_probabilities(texts, vectors), inside)} |" if dev else "")
                + "".join(f" {s:.3f} |" for s in shares)
                + "".join(f" {figures(classifier.scope_probabilities(t, v), y)} |" for t, v, y in probes.values())
            )
    finally:
        classify.OTHER_FIELDS, classify.OTHER_COMPUTING, classify.OTHER_MODALITIES = fields, computing, modalities


if __name__ == "__main__":
    run_script(main)
