"""Is a paper found by its own title? (docs/evaluation.md, "A paper asked for by its title")

Every indexed paper is asked for by its title as stored, and in lower case without punctuation;
success@1, @3 and @10, and the papers not in the first ten. No evaluation label is read: the
index's own titles are the questions. A title shared by two records (a survey entry and its arXiv
copy) counts as found when either comes first, and so does a paper shown by the survey's record of
it (`Hit.ranked_as`: its PDF-read copy's garbled title found the paper).

    python scripts/eval_titles.py --index DIR [--limit N]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from semsearch.errors import run_script
from semsearch.index import Index
from semsearch.paper import normalize_title
from semsearch.search import Searcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="ask for the first N papers only")
    args = parser.parse_args()
    searcher = Searcher(Index.open(args.index))
    records = list(searcher.index.store.iter_papers())[: args.limit]
    papers = [paper for _, paper in records]
    same_title: dict[str, set[str]] = {}
    for paper in papers:
        same_title.setdefault(normalize_title(paper.title), set()).add(paper.id)
    for form, spell in (
        ("as stored", str),
        ("lower case, no punctuation", lambda t: re.sub(r"[^\w\s]", " ", t).lower()),
    ):
        ranks, missed = [], []
        for vec_id, paper in records:
            question = " ".join(spell(paper.title).split())[:2000]
            if not question:
                continue
            wanted = same_title[normalize_title(paper.title)]
            found = searcher.search(question, k=10)
            rank = next((i for i, h in enumerate(found) if h.paper.id in wanted or h.ranked_as == vec_id), None)
            ranks.append(rank)
            if rank is None:
                missed.append(paper.title[:80])
        at = [sum(r is not None and r < k for r in ranks) / len(ranks) for k in (1, 3, 10)]
        print(
            f"{form}: {len(ranks)} titles, success@1 {at[0]:.3f}, @3 {at[1]:.3f}, @10 {at[2]:.3f}; "
            f"not in the first ten: {len(missed)}"
        )
        for title in missed[:5]:
            print(f"  missed: {title}")


if __name__ == "__main__":
    run_script(main)
