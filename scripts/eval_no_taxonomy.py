"""Why `--no-taxonomy` and a plain hybrid differ on known items: one difference at a time (issue 23).

Every variant scores every paper 0.7 · cosine + 0.3 · BM25 / (the question's best BM25), the same
MiniLM vectors; only BM25's text and tokens change, from the engine's (title twice, a title-only
survey paper borrowing its category's description, stemming, our stopwords, request words and bare
numbers dropped from questions) to a plain bm25s index of title + abstract with English stopwords.

    python scripts/eval_no_taxonomy.py [--index DIR] [--shared ../shared]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from semsearch.errors import run_script
from semsearch.evaluate import is_target, read_questions
from semsearch.index import Index
from semsearch.lexical import lexical_text, question_terms, tokenize
from semsearch.search import DENSE_WEIGHT, Searcher
from semsearch.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent


def main() -> None:
    import bm25s

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    args = parser.parse_args()
    index = Index.open(args.index)
    searcher = Searcher(index, taxonomy=False)
    vec_ids, papers = zip(*index.store.iter_papers(), strict=True)
    stored = index.store.embeddings_for(vec_ids)
    vectors = np.vstack([stored[v] for v in vec_ids])
    descriptions = load_taxonomy().descriptions

    def plain(text: str) -> list[str]:
        return bm25s.tokenize([text], stopwords="en", show_progress=False, return_ids=False)[0]

    def build(texts, tok):
        model = bm25s.BM25()
        model.index([tok(t) or ["\u2205"] for t in texts], show_progress=False)
        return model

    engine_text = [lexical_text(p.title, p.abstract, p.survey_categories, descriptions) for p in papers]
    once = [f"{p.title} {p.abstract}" for p in papers]
    variants = {
        "engine (no-taxonomy mode)": (build(engine_text, tokenize), question_terms),
        "no borrowed descriptions": (
            build([lexical_text(p.title, p.abstract, [], {}) for p in papers], tokenize),
            question_terms,
        ),  # fmt: skip
        "title once, no descriptions": (build(once, tokenize), question_terms),
        "the same, request words and numbers kept": (build(once, tokenize), tokenize),
        "plain bm25s (English stopwords, no stemming)": (build(once, plain), plain),
    }
    sets = {
        "known dev": args.shared / "eval/known_items_dev.jsonl",
        "known abs": args.shared / "eval/known_items_dev_abstracts.jsonl",
        "known ours": HERE / "eval/known_items_ours.jsonl",
        "known abs ours": HERE / "eval/known_items_abstracts_ours.jsonl",
    }
    questions = {}
    for name, path in sets.items():
        _, rows = read_questions(path)
        questions[name] = [(row, vectors @ searcher.embed_query(row["query"])[0]) for row in rows]
    print("| BM25 of | " + " | ".join(sets) + " |")
    for name, (model, terms) in variants.items():
        row_scores = []
        for rows in questions.values():
            found = []
            for row, cosine in rows:
                ids = [model.vocab_dict[t] for t in terms(row["query"]) if t in model.vocab_dict]
                bm25 = np.asarray(model.get_scores(ids)) if ids else np.zeros(len(papers))
                share = bm25 / bm25.max() if bm25.max() > 0 else bm25
                top = np.argsort(-(DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * share))[:3]
                found.append(any(is_target(row, papers[i]) for i in top))
            row_scores.append(float(np.mean(found)))
        print(f"| {name} | " + " | ".join(f"{s:.3f}" for s in row_scores) + " |")


if __name__ == "__main__":
    run_script(main)
