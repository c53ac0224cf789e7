"""A paper asked for by its method's name ("GPTQ", "the reformer paper"): is it first? (search, step 5)

Questions are made from the index's own titles, never from an evaluation set: every paper whose
title names its method (the one word before the colon, `search.paper_name`) and whose name no other
paper has, a seeded sample of them, each asked five ways: the name as the title spells it, in
lower case, "the NAME paper", "Which paper introduced NAME?" and a longer question around the
name. Prints success@1 and success@3.

    python scripts/eval_named_papers.py [--index DIR] [--sample 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

from semsearch.index import Index
from semsearch.search import Searcher, paper_name

FORMS = {
    "as the title spells it": lambda name: name,
    "in lower case": lambda name: name.lower(),
    '"the NAME paper"': lambda name: f"the {name} paper",
    '"Which paper introduced NAME?"': lambda name: f"Which paper introduced {name}?",
    # A longer question, where the name may be context: the named paper is put second unless first already.
    '"What does NAME change to make large language models cheaper to run?"': lambda name: (
        f"What does {name} change to make large language models cheaper to run?"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    index = Index.open(args.index)
    searcher = Searcher(index)
    by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for _, paper in index.store.iter_papers():
        if name := paper_name(paper.title):
            by_name[name].append((paper.id, paper.title.partition(":")[0].strip()))
    unique = sorted(found[0] for found in by_name.values() if len(found) == 1)
    sample = random.Random(args.seed).sample(unique, min(args.sample, len(unique)))
    print(f"{len(unique)} papers named by one word no other paper has; {len(sample)} asked")
    print("| asked | success@1 | success@3 |\n|---|---|---|")
    for form, ask in FORMS.items():
        found = [[h.paper.id for h in searcher.search(ask(name), 3)] for _, name in sample]
        first = sum(ids[:1] == [pid] for ids, (pid, _) in zip(found, sample, strict=True)) / len(sample)
        three = sum(pid in ids for ids, (pid, _) in zip(found, sample, strict=True)) / len(sample)
        print(f"| {form} | {first:.3f} | {three:.3f} |")


if __name__ == "__main__":
    main()
