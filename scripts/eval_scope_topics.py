"""Where the scope verdict goes wrong, by the reading-list topics of the new papers it judges (issue
23; docs/evaluation.md, "Scope by topic").

The dev set's `expected` was derived from each paper's topic folders (../shared/README.md): a paper
is inside when a topic maps to a node, null when its topics are all outside. This script reads those
topics (evaluation labels: the engine never reads them) to say which kinds of paper scope misjudges:
for each topic, the papers outside that carry it against every paper inside (AUROC, the share let
in), and the papers inside that carry it against every paper outside (AUROC, the share kept). It
also counts the papers outside whose title names an efficiency method (`EFFICIENCY_WORDS`, a fixed
list): the issue keeps efficiency work on other models in scope, and the dev set calls some of it
null because its topic is `multimodal`, `audio` or `multilingual`.

    python scripts/eval_scope_topics.py [--index DIR] [--shared ../shared] [--min-papers 5]
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from semsearch.classify import classifier_for
from semsearch.embeddings import embedder_for
from semsearch.errors import run_script
from semsearch.evaluate import auroc, balanced_accuracy, read_expected, read_topics, texts_and_vectors
from semsearch.index import Index
from semsearch.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent
EFFICIENCY_WORDS = re.compile(
    r"efficien|compress|prun|quantiz|sparse|sparsit|mixture[- ]of[- ]experts|distill|accelerat|\bfast|speed"
    r"|lightweight|low[- ]rank|memory|latency|on[- ]device",
    re.IGNORECASE,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--min-papers", type=int, default=5, help="topics with fewer papers are not shown")
    args = parser.parse_args()
    index = Index.open(args.index)
    embedder = embedder_for(index.manifest.model, index_dir=index.directory)
    records = read_expected(args.shared / "eval" / "new_papers_dev.jsonl")
    folders = read_topics(args.shared / "data" / "arxiv_topics.jsonl")
    texts, vectors = texts_and_vectors(index, records, embedder)
    classifier = classifier_for(index.store, load_taxonomy(), embedder.encode)
    scope = classifier.scope_probabilities(texts, vectors)
    inside = np.array([bool(r["expected"]) for r in records])
    topics = [folders.get(r["id"], set()) for r in records]
    kept = scope >= 0.5
    print(
        f"{len(records)} papers ({int(inside.sum())} inside): scope AUROC {auroc(scope, inside):.3f}, "
        f"balanced accuracy {balanced_accuracy(kept, inside):.3f}"
    )
    for side, label, other, share in ((~inside, "outside", "inside", "let in"), (inside, "inside", "outside", "kept")):
        print(f"\n| topic of papers {label} | papers | AUROC against every paper {other} | {share} |")
        print("|---|---|---|---|")
        groups: dict[str, list[int]] = defaultdict(list)
        for i in np.flatnonzero(side):
            for topic in topics[i]:
                groups[topic].append(int(i))
        for topic, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            if len(members) < args.min_papers:
                continue
            chosen = np.concatenate([members, np.flatnonzero(~side)])
            judged = auroc(scope[chosen], inside[chosen])
            print(f"| {topic} | {len(members)} | {judged:.3f} | {kept[members].mean():.2f} |")
    titles = [r["title"] or getattr(index.store.get(r["id"]), "title", "") for r in records]
    efficient = np.array([bool(EFFICIENCY_WORDS.search(t)) for t in titles]) & ~inside
    rest = ~efficient
    print(
        f"\npapers outside whose title names an efficiency method: {int(efficient.sum())} of "
        f"{int((~inside).sum())}, {kept[efficient].mean() if efficient.any() else float('nan'):.2f} let in "
        f"(the other papers outside: {kept[~inside & rest].mean():.2f}); without them: scope AUROC "
        f"{auroc(scope[rest], inside[rest]):.3f}, balanced accuracy {balanced_accuracy(kept[rest], inside[rest]):.3f}"
    )


if __name__ == "__main__":
    run_script(main)
