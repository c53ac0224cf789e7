"""Is a curated list's scope the list's own topic? (docs/evaluation.md, "A list's own scope")

For each list the index holds (`semsearch taxonomy add NAME README`), measured on the lists' real
membership, no label of an evaluation set read. Two rows a list: its classifier's scope alone
(`in_scope`), and with `propose.on_topic` (a list-against-index SVM over titles) as well, which is
what `taxonomy propose` offers:

- kept: the list's papers that pass, each judged by models trained on the other four fifths of
  the list: what a maintainer's next paper meets;
- others: the papers of the index's other lists (and the survey's labelled papers) that this list
  does not hold, judged by the list's models trained on all of it: papers of another topic it
  would take. Another list's topic can overlap this one's, so this is an upper bound on the wrong
  ones;
- pool: the index's papers that no list holds, that pass: what `semsearch taxonomy propose NAME`
  would place.

    python scripts/eval_list_scope.py --index DIR [--lists kv specdec]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from semsearch.classify import SCOPE_THRESHOLD, TaxonomyClassifier
from semsearch.classify import labelled_papers as as_training
from semsearch.embeddings import embedder_for
from semsearch.errors import run_script
from semsearch.index import Index
from semsearch.lists import labelled_papers, list_taxonomy
from semsearch.paper import Paper
from semsearch.propose import TOPIC_BACKGROUND, Candidate, on_topic

FOLDS = 5


def in_scope(classifier: TaxonomyClassifier, papers) -> np.ndarray:
    if not papers:
        return np.zeros(0, dtype=bool)
    texts = [p.text for p in papers]
    vectors = np.vstack([p.embedding for p in papers])
    return classifier.scope_probabilities(texts, vectors) >= SCOPE_THRESHOLD


def as_candidates(papers) -> list[Candidate]:
    """Training papers as propose's candidates (the text a title-only paper is stored by is its title)."""
    return [
        Candidate(Paper(id=p.id, title=p.title, abstract=p.text if p.has_abstract else ""), p.embedding) for p in papers
    ]


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
    survey_papers = as_training(store.survey_labelled())
    listed_ids = {p.id for papers in members.values() for p in papers} | {p.id for p in survey_papers}
    vec_ids, papers = zip(*store.iter_papers(), strict=True)
    stored = store.embeddings_for(vec_ids)
    unlisted = [Candidate(p, stored[v]) for v, p in zip(vec_ids, papers, strict=True) if p.id not in listed_ids]
    rng = np.random.default_rng(0)
    field = [unlisted[i] for i in rng.choice(len(unlisted), size=min(TOPIC_BACKGROUND, len(unlisted)), replace=False)]

    print("| list | papers | judged by | kept (5-fold) | other lists' papers taken | survey papers taken | pool | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        started = time.perf_counter()
        papers_of = members[name]
        taxonomy = list_taxonomy(store.taxonomy(name)["nodes"])
        own = {p.id for p in papers_of}
        others = list({p.id: p for other in names if other != name for p in members[other] if p.id not in own}.values())
        outside_survey = [p for p in survey_papers if p.id not in own]
        fold = np.random.default_rng(0).integers(0, FOLDS, len(papers_of))
        kept_scope, kept_topic, kept_sure = (np.zeros(len(papers_of), bool) for _ in range(3))
        for k in range(FOLDS):
            train = [p for p, f in zip(papers_of, fold, strict=True) if f != k]
            test = [p for p, f in zip(papers_of, fold, strict=True) if f == k]
            kept_scope[fold == k] = in_scope(TaxonomyClassifier.train(train, taxonomy, embed), test)
            topic = on_topic(as_candidates(train), as_candidates(test), field, embed)
            kept_topic[fold == k] = kept_scope[fold == k] & topic.near
            kept_sure[fold == k] = kept_scope[fold == k] & topic.sure
        whole = TaxonomyClassifier.train(papers_of, taxonomy, embed)
        titles = as_candidates(papers_of)
        scope = {"others": in_scope(whole, others), "survey": in_scope(whole, outside_survey)}
        pool_texts = [c.paper.embedding_text() for c in unlisted]
        pool_scope = whole.scope_probabilities(pool_texts, np.vstack([c.vector for c in unlisted])) >= SCOPE_THRESHOLD
        topic = {
            "others": on_topic(titles, as_candidates(others), field, embed),
            "survey": on_topic(titles, as_candidates(outside_survey), field, embed),
        }
        in_pool = [c for c, s in zip(unlisted, pool_scope, strict=True) if s]
        pool_topic = on_topic(titles, in_pool, [c for c in field if c not in in_pool], embed)
        seconds = time.perf_counter() - started
        for label, kept, other, survey, pool in (
            ("scope", kept_scope, scope["others"], scope["survey"], int(pool_scope.sum())),
            ("scope and near the topic (proposed)", kept_topic, scope["others"] & topic["others"].near,
             scope["survey"] & topic["survey"].near, int(pool_topic.near.sum())),
            ("scope and on the topic (written into the patch)", kept_sure, scope["others"] & topic["others"].sure,
             scope["survey"] & topic["survey"].sure, int(pool_topic.sure.sum())),
        ):  # fmt: skip
            print(
                f"| {name} | {len(papers_of)} | {label} | {kept.mean():.3f} | {other.mean():.3f} of {len(others)} "
                f"| {survey.mean():.3f} of {len(outside_survey)} | {pool} of {len(unlisted)} | {seconds:.0f} |"
            )


if __name__ == "__main__":
    run_script(main)
