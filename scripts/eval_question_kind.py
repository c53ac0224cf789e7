"""Can the kind of a question (about one paper, or about a kind of work) be learned, and used to
weigh the taxonomy evidence instead of the sharp-match gate? (issue 23; docs/evaluation.md)

Training questions are made from the index itself, never from the evaluation sets:
- about one paper (label 1): a sentence, or a span of 8-14 words of one, from the abstract of a
  paper the survey does not label and the classifier places in the taxonomy (inverse cloze); with
  --paper-requests a third of them put as requests for one paper ("Which paper says that ...?");
- about a kind of work (label 0): the taxonomy's example questions and node names as a user would
  type them ("pruning", "papers on pruning"), each read by a classifier trained without that
  leaf's questions (two folds), so the question's leaf distribution is not flattered; with --needs
  those asked in the first person also stated as the asker's need ("I want to store weights in 4
  bits"), and with --readers-voice the cloze questions' "we" (the authors') put in the third
  person, as a reader describes a paper.

A logistic model of the question's features (below) gives the chance that it is about one paper;
the taxonomy then weighs TAXONOMY_WEIGHT · (1 − p)^γ, with γ and an offset of the logistic's bias
chosen on the training questions (success@3 on the cloze questions plus nDCG@10 of the topical
ones, papers under the node relevant). The question sets of the evaluation are only scored.

    python scripts/eval_question_kind.py [--index DIR] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
from pathlib import Path

import numpy as np

from semsearch import search
from semsearch.errors import run_script
from semsearch.evaluate import is_target, ndcg_at, read_questions, read_topics
from semsearch.index import Index
from semsearch.search import Searcher, rank_hybrid
from semsearch.taxonomy import is_under, leaf_name, load_taxonomy

FEATURES = ("lead", "stands_out", "top", "agree", "peak", "specificity", "like_asked", "like_described", "like_paper")
FORM_FEATURES = (
    "asks",
    "words",
    "a_paper",
    "first_person",
)  # with --form: how the question is put (`search.question_form`)
HERE = Path(__file__).resolve().parent


def question_sets(shared: Path) -> dict[str, Path]:
    """The question sets the ranking ablations are scored on: the shared dev sets and ours."""
    return {
        "known dev": shared / "eval/known_items_dev.jsonl",
        "known abs": shared / "eval/known_items_dev_abstracts.jsonl",
        "known ours": HERE / "eval/known_items_ours.jsonl",
        "topical dev": shared / "eval/queries_dev.jsonl",
        "ours": HERE / "eval/questions_ours.jsonl",
        "problems": HERE / "eval/questions_problems.jsonl",
        "early": HERE / "eval/questions_problems_early.jsonl",
        "later": HERE / "eval/questions_problems_later.jsonl",
        "known ours abs": HERE / "eval/known_items_abstracts_ours.jsonl",
        "stated": HERE / "eval/questions_problems_stated.jsonl",
        "known 1st person": HERE / "eval/known_items_first_person.jsonl",
    }


def features(searcher: Searcher, query: str, vector: np.ndarray, evidence: dict) -> np.ndarray:
    """The question's features (`search.question_features`; the first nine without --form)."""
    leaves = searcher.question_leaves(query, vector)
    found = search.question_features(query, vector, evidence, leaves, searcher.classifier, searcher.index.lexical)
    return found if USE_FORM else found[: len(FEATURES)]


USE_FORM = False  # set by --form
STATEMENTS = False  # set by --statements
NEEDS = False  # set by --needs: example questions asked in the first person also stated as one's need
READERS_VOICE = False  # set by --readers-voice: the cloze questions' "we" (the authors) become "they"
AUTHORS_VOICE = {"we": "they", "our": "their", "ours": "theirs", "us": "them", "we're": "they're", "we've": "they've"}
PAPER_REQUESTS: tuple[str, ...] = ()  # set by --paper-requests: templates for a third of the cloze questions
SINGULAR_TOPICS: tuple[str, ...] = ()  # set by --singular-topics: node names also typed as "a paper on ..."
ONE_PAPER_REQUESTS = (
    "Which paper says that {}?",
    "the paper where {}",
    "I'm looking for the paper in which {}",
    "Is there a paper showing that {}?",
    "I remember a paper: {}. Which one was it?",
)
ASKING = re.compile(
    r"^(how|what|which|why|where|when|who|is|are|can|could|should|would|do|does|did|any)\b"
    r"(\s+(can|could|should|would|do|does|did|is|are|much|many|there|to))?"
    r"(\s+(i|we|you|people|one|there))?\s*",
    re.IGNORECASE,
)


def statement(question: str) -> str:
    """An example question stated as a need: "How can I store weights in 4 bits?" -> "store weights
    in 4 bits"; "My model is too big; can I shrink it?" -> "My model is too big; I shrink it"."""
    stated = ASKING.sub("", question.strip()).replace("?", "").strip()
    stated = re.sub(r"\b(can|could|should|do|does) (i|we)\b", r"\2", stated, flags=re.IGNORECASE)
    return stated[:1].upper() + stated[1:] if stated else question


ASKED_BY_ONESELF = re.compile(r"\b(?:how |what |which \w+ )?(?:can|could|should|do|would|might) (i|we)\b", re.I)


def need(question: str) -> str | None:
    """An example question asked in the first person, stated as the asker's need: "How can I store
    weights in 4 bits?" -> "I want to store weights in 4 bits"; None when no one asks of themselves."""
    if not ASKED_BY_ONESELF.search(question):
        return None
    stated = ASKED_BY_ONESELF.sub(lambda m: f"{m.group(1)} want to", question, count=1).replace("?", "").strip()
    return stated[:1].upper() + stated[1:]


def in_readers_voice(sentence: str) -> str:
    """An abstract's sentence as a reader describes the paper: its authors' "we" and "our" become
    "they" and "their" (the asker's own first person is what marks a need)."""

    def third(match: re.Match) -> str:
        word = AUTHORS_VOICE[match.group(1).lower()]
        return word.capitalize() if match.group(1)[0].isupper() else word

    return re.sub(r"\b(we're|we've|we|our|ours|us)\b", third, sentence, flags=re.IGNORECASE)


def read(searcher: Searcher, query: str) -> tuple[dict, np.ndarray]:
    vector = searcher.embed_query(query)
    evidence = searcher.evidence(query, vector)
    found = features(searcher, query, vector, evidence)
    return evidence, found


def training_questions(searcher: Searcher, papers: dict, seed: int = 0) -> list[tuple[str, int, str, dict, np.ndarray]]:
    rng = random.Random(seed)
    taxonomy = load_taxonomy()
    placed = {papers[v].id for v in searcher.leaf_distributions(list(papers))}
    pool = [p for p in papers.values() if p.abstract and not p.survey_categories and p.id in placed]
    rng.shuffle(pool)
    rows = []
    for paper in pool[:500]:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", paper.abstract) if 8 <= len(s.split()) <= 45]
        if not sentences:
            continue
        words = rng.choice(sentences).split()
        if rng.random() < 0.5 and len(words) > 14:
            n = rng.randint(8, 14)
            start = rng.randint(0, len(words) - n)
            words = words[start : start + n]
        question = " ".join(words)
        if READERS_VOICE:
            question = in_readers_voice(question)
        if PAPER_REQUESTS and rng.random() < 1 / 3:  # a paper one remembers, asked for as one paper
            question = rng.choice(PAPER_REQUESTS).format(question[:1].lower() + question[1:].rstrip("."))
        rows.append((question, 1, paper.id, *read(searcher, question)))
    from semsearch.classify import MAX_WORD_SCOPE_PAPERS, TaxonomyClassifier, labelled_papers

    labelled = labelled_papers(searcher.index.store.survey_labelled())
    corpus = searcher.index.store.unlabelled_abstracts(MAX_WORD_SCOPE_PAPERS)  # as ingest trains it
    leaves = sorted(taxonomy.questions)
    typed = ["{}", "{} for large language models", "papers on {}", *SINGULAR_TOPICS]
    names = [(n, rng.choice(typed).format(leaf_name(n))) for n in taxonomy.nodes]
    for fold in (0, 1):
        held = set(leaves[fold::2])
        kept = {leaf: asked for leaf, asked in taxonomy.questions.items() if leaf not in held}
        searcher.__dict__["classifier"] = TaxonomyClassifier.train(
            labelled, dataclasses.replace(taxonomy, questions=kept), searcher.embedder.encode, corpus=corpus
        )
        for leaf in held:
            for question in taxonomy.questions[leaf]:
                rows.append((question, 0, leaf, *read(searcher, question)))
                if NEEDS and (stated := need(question)):  # the asker's own need, stated
                    rows.append((stated, 0, leaf, *read(searcher, stated)))
                if STATEMENTS:  # the same need stated rather than asked: form alone must not decide
                    stated = statement(question)
                    rows.append((stated, 0, leaf, *read(searcher, stated)))
        for i, (node, question) in enumerate(names):
            if i % 2 == fold:
                rows.append((question, 0, node, *read(searcher, question)))
    del searcher.__dict__["classifier"]  # back to the index's own
    return rows


def known_item_model(train, used: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients over all features (zero for those not `used`) and the bias."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([f for *_, f in train])[:, used]
    y = np.array([label for _, label, *_ in train])
    model = LogisticRegression(class_weight="balanced", max_iter=2000).fit(x, y)
    print(
        f"training questions: {int(y.sum())} about one paper, {int((1 - y).sum())} about a kind of work; "
        f"accuracy on them {(model.predict(x) == y).mean():.3f}"
    )
    names = np.array(FEATURES + FORM_FEATURES if USE_FORM else FEATURES)[used]
    print("coefficients:", ", ".join(f"{n} {c:+.4f}" for n, c in zip(names, model.coef_[0], strict=True)))
    print(f"bias {model.intercept_[0]:+.4f}")
    coef = np.zeros(len(used))
    coef[used] = model.coef_[0]
    return coef, float(model.intercept_[0])


SHARP_MARGIN = 0.05  # the hand-set gate this model was to replace (shipped until 2026-12-05)


def ranked(evidence: dict, known: float | None, gamma: float = 1.0, sharp: bool = False) -> list[int]:
    """Top 10 by the engine's fusion: `known` None is the former sharp-match gate (the best direct
    match keeps the first place when it leads the next by SHARP_MARGIN); "hard" is the shipped rule
    (no taxonomy when p(one paper) >= 1/2); else the taxonomy weighs TAXONOMY_WEIGHT·(1 − known)^gamma
    (with `sharp`, the gate on top)."""
    for e in evidence.values():
        e.direct = False
    if known == "hard":
        return [v for v, _ in rank_hybrid(evidence, 10, search.TAXONOMY_WEIGHT, gamma)]
    stands_out, search.STANDS_OUT = search.STANDS_OUT, float("inf")  # the other rules have no third-place slot
    try:
        return _ranked(evidence, known, gamma, sharp)
    finally:
        search.STANDS_OUT = stands_out


def _ranked(evidence: dict, known: float | None, gamma: float, sharp: bool) -> list[int]:
    best = sorted(evidence.values(), key=lambda e: -e.direct_score)[:2]
    leads = bool(best) and (len(best) == 1 or best[0].direct_score - best[1].direct_score >= SHARP_MARGIN)
    weight = search.TAXONOMY_WEIGHT * (1 if known is None else (1 - known) ** gamma)
    if not ((known is None or sharp) and leads):
        return [v for v, _ in rank_hybrid(evidence, 10, weight)]
    credit = best[0].category_probability
    best[0].category_probability = 1.0  # the gate: full category credit whatever its category
    try:
        return [v for v, _ in rank_hybrid(evidence, 10, weight)]
    finally:
        best[0].category_probability = credit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--form", action="store_true", help="add the question's form to its features")
    parser.add_argument("--features", default="", help="comma-separated subset of the features to use")
    parser.add_argument("--statements", action="store_true", help="add example questions stated, not asked")
    parser.add_argument(
        "--paper-requests", action="store_true", help="put a third of the cloze questions as requests for one paper"
    )
    parser.add_argument("--needs", action="store_true", help="example questions asked in the first person also stated")
    parser.add_argument(
        "--readers-voice", action="store_true", help="the cloze questions' first person (the authors') made third"
    )
    parser.add_argument(
        "--singular-topics", action="store_true", help="node names also typed as requests for one paper on them"
    )
    args = parser.parse_args()
    global USE_FORM, STATEMENTS, PAPER_REQUESTS, SINGULAR_TOPICS, READERS_VOICE, NEEDS
    USE_FORM, STATEMENTS, READERS_VOICE, NEEDS = args.form, args.statements, args.readers_voice, args.needs
    PAPER_REQUESTS = ONE_PAPER_REQUESTS if args.paper_requests else ()
    SINGULAR_TOPICS = ("a paper on {}", "Is there a good paper about {}?") if args.singular_topics else ()
    index = Index.open(args.index)
    searcher = Searcher(index)
    papers = dict(index.store.iter_papers())
    train = training_questions(searcher, papers)
    names = FEATURES + FORM_FEATURES if USE_FORM else FEATURES
    chosen = args.features.split(",") if args.features else names
    coef, bias = known_item_model(train, np.array([n in chosen for n in names]))

    def p_known(f: np.ndarray, shift: float = 0.0) -> float:
        return float(1 / (1 + np.exp(-(bias + shift + coef @ f))))

    def train_score(shift: float, gamma: float) -> tuple[float, float]:
        known, topical = [], []
        for _, label, target, evidence, f in train:
            top = ranked(evidence, p_known(f, shift), gamma)
            if label:
                known.append(any(papers[v].id == target for v in top[:3]))
            else:

                def rel(v, evidence=evidence, target=target):
                    cats = list(papers[v].survey_categories) or [evidence[v].category] * bool(evidence[v].category)
                    return int(any(is_under(c, target) for c in cats))

                topical.append(ndcg_at([rel(v) for v in top], sum(rel(v) for v in evidence)))
        return float(np.mean(known)), float(np.mean(topical))

    grid = {(s, g): train_score(s, g) for s in (-2, -1, 0, 1, 2) for g in (1, 2, 4)}
    shift, gamma = max(grid, key=lambda key: sum(grid[key]))
    print(
        f"chosen on the training questions: bias offset {shift:+d}, gamma {gamma} "
        f"(cloze success@3 {grid[shift, gamma][0]:.3f}, topical nDCG@10 {grid[shift, gamma][1]:.3f})"
    )

    topics = read_topics(args.shared / "data/arxiv_topics.jsonl")
    sets = question_sets(args.shared)
    variants = {
        "sharp gate (before)": lambda f: (None, 1.0, False),
        "no taxonomy": lambda f: (1.0, 1.0, False),
        "taxonomy, no gate": lambda f: (0.0, 1.0, False),
        "learned weight": lambda f: (p_known(f), 1.0, False),
        "learned weight + sharp gate": lambda f: (p_known(f), 1.0, True),
        "learned, chosen offset and gamma": lambda f: (p_known(f, shift), gamma, False),
        "learned, hard (shipped rule: p >= 1/2, 3 best direct first)": lambda f: ("hard", p_known(f), False),
    }
    results = {name: {} for name in variants}
    results["mean p(one paper)"] = {}
    for set_name, path in sets.items():
        if not path.exists():
            continue
        kind, rows = read_questions(path)
        read_rows = [(row, *read(searcher, row["query"])) for row in rows]
        results["mean p(one paper)"][set_name] = float(np.mean([p_known(f) for *_, f in read_rows]))
        all_papers = list(papers.values())
        for name, variant in variants.items():
            scores = []
            for row, evidence, f in read_rows:
                top = [papers[v] for v in ranked(evidence, *variant(f))]
                if kind == "topical":

                    def rel(p, row=row):
                        by_path = any(set(row["categories"]) & set(c.split("/")) for c in p.survey_categories)
                        return int(by_path or bool(set(row.get("topics") or []) & topics.get(p.id, set())))

                    scores.append(ndcg_at([rel(p) for p in top], sum(rel(p) for p in all_papers)))
                else:
                    scores.append(float(any(is_target(row, p) for p in top[:3])))
            results[name][set_name] = float(np.mean(scores))
    print("| variant | " + " | ".join(sets) + " |")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row.get(s, float('nan')):.3f}" for s in sets) + " |")


if __name__ == "__main__":
    run_script(main)
