"""A paper asked for by its method's name ("GPTQ", "the reformer paper"): is it first? (search, step 5)

Questions are made from the index's own titles, never from an evaluation set: every paper whose
title names its method (the one word before the colon, `search.paper_name`) and whose name no other
paper has, a seeded sample of them, each asked five ways: the name as the title spells it, in
lower case, "the NAME paper", "Which paper introduced NAME?" and a longer question around the
name. Prints success@1 and success@3.

With --topics (reading-list topics, evaluation labels): for the questions that are the name alone,
the share of the next five papers that share a survey leaf or a topic with the named one (related
work's relevance, `evaluate.share_a_category`), with the named paper's related work below it (the
default) and, as the ablation, the question's own ranking below it. Asked of every such paper
that has a topic or a survey leaf, not the sample.

    python scripts/eval_named_papers.py [--index DIR] [--sample 150] [--seed 0] [--topics FILE]
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path
from unittest import mock

from semsearch import search
from semsearch.errors import run_script
from semsearch.evaluate import read_topics, share_a_category
from semsearch.index import Index
from semsearch.search import Searcher, paper_name

ALONE = ("as the title spells it", "in lower case", '"the NAME paper"', '"Which paper introduced NAME?"')  # names alone
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
    parser.add_argument("--topics", type=Path, default=None, help="reading-list topics (JSON Lines)")
    args = parser.parse_args()
    index = Index.open(args.index)
    searcher = Searcher(index)
    by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
    papers = {}
    for _, paper in index.store.iter_papers():
        papers[paper.id] = paper
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
    if args.topics:
        below_the_name(searcher, papers, unique, read_topics(args.topics))


def below_the_name(searcher: Searcher, papers: dict, unique: list[tuple[str, str]], topics: dict) -> None:
    """P@5 of the five papers below the named one, for questions that are the name alone."""
    labelled = [(pid, name) for pid, name in unique if topics.get(pid) or papers[pid].survey_categories]
    print(f"\n{len(labelled)} of them with a topic or a survey leaf; the five papers below the named one:")
    print("| asked | related work below (default) | the question's own ranking below |\n|---|---|---|")
    for form in ALONE:
        shares = []
        for ablated in (False, True):
            with mock.patch.object(search, "name_alone", return_value=False) if ablated else mock.MagicMock():
                found = [[h.paper for h in searcher.search(FORMS[form](name), 6)] for _, name in labelled]
            below = [[p for p in hits if p.id != pid][:5] for hits, (pid, _) in zip(found, labelled, strict=True)]
            shares.append(
                sum(
                    share_a_category(papers[pid], p, topics)
                    for (pid, _), hits in zip(labelled, below, strict=True)
                    for p in hits
                )
                / (5 * len(labelled))
            )
        print(f"| {form} | {shares[0]:.3f} | {shares[1]:.3f} |")


if __name__ == "__main__":
    run_script(main)
