"""Would a better representation of papers and questions reach issue 23's last targets? (docs/evaluation.md,
"A better representation")

Five measurements, none of which reads an evaluation label to train (the ceiling and the oracle of
`leaves` read them on purpose, to say what the labels themselves would allow):

- `tune`: all-MiniLM-L6-v2 tuned contrastively on an index's own texts, saved as a sentence-transformers
  directory to build an index with (`semsearch ingest ... --model DIR`). Pairs: the inverse cloze task
  (a sentence of an unlabelled paper's abstract, and its title with the rest of the abstract) and, with
  `--labels`, the survey's labelled papers with their leaf's description, with another paper of the
  leaf, and our example questions with their leaf's description and one of its papers. In-batch
  negatives, symmetric loss; pairs of one leaf are not each other's negatives.
- `ceiling`: a logistic regression trained on the dev set's own labels (five-fold), over the index's
  vectors and optionally word TF-IDF: how well scope (in or out) could be told and how often a first
  suggestion could be right if the judge's labels were training data.
- `sentences`: a question of several sentences read sentence by sentence (the leaf distributions of each
  sentence and of the whole combined: mean, most peaked, geometric mean, mean of scores) in search.
- `leaves`: topical questions' nDCG@10 with the question model's leaf distribution, with the leaves their
  labels name given instead (an oracle), and with the example questions weighing more in the question
  model (judged first by each example question left out of it).
- `openings`: what the openings of the index's abstracts teach the question model, and the ablations of
  the rule that takes them (sentences, the authors' words, scope, weight), on every question set.

    python scripts/eval_representation.py tune --index DIR --out MODEL_DIR [--labels] [--epochs N] [--seed S]
    python scripts/eval_representation.py ceiling --index DIR [--shared ../shared]
    python scripts/eval_representation.py sentences --index DIR [--shared ../shared]
    python scripts/eval_representation.py leaves --index DIR [--shared ../shared]
    python scripts/eval_representation.py openings --index DIR [--shared ../shared]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

import numpy as np
from eval_question_kind import question_sets  # the script beside this one (its folder is on sys.path)

from semsearch.errors import run_script
from semsearch.evaluate import auroc, balanced_accuracy, read_expected
from semsearch.index import Index

HERE = Path(__file__).resolve().parent
SENTENCE = re.compile(r"(?<=[.!?])\s+")
BATCH, LEARNING_RATE, SCALE, TRAIN_LENGTH = 32, 2e-5, 20.0, 128


def cloze_pairs(papers, rng: random.Random) -> list[tuple[str, str, None]]:
    """(a sentence of the abstract, the title and the rest): one per paper with three sentences or more."""
    pairs = []
    for paper in papers:
        sentences = [s for s in SENTENCE.split(paper.abstract or "") if len(s.split()) >= 6]
        if len(sentences) < 3:
            continue
        i = rng.randrange(len(sentences))
        pairs.append((sentences[i], f"{paper.title}. " + " ".join(sentences[:i] + sentences[i + 1 :]), None))
    return pairs


def label_pairs(labelled, taxonomy, rng: random.Random) -> list[tuple[str, str, str]]:
    """Labelled papers with their leaf's description and a paper of the same leaf; example questions
    with their leaf's description and one of its papers. The leaf is the group: never a negative."""
    leaves_of = {
        p.id: [leaf for leaf, share in zip(taxonomy.leaves, taxonomy.leaf_spread(cats), strict=True) if share > 0]
        for p, _, cats in labelled
    }
    texts_of: dict[str, list[str]] = {}
    for paper, _, _ in labelled:
        for leaf in leaves_of[paper.id]:
            texts_of.setdefault(leaf, []).append(paper.embedding_text())
    pairs = []
    for paper, _, _ in labelled:
        if not leaves_of[paper.id]:
            continue
        leaf, text = rng.choice(leaves_of[paper.id]), paper.embedding_text()
        pairs.append((text, taxonomy.described(leaf), leaf))
        others = [t for t in texts_of[leaf] if t != text]
        if others:
            pairs.append((text, rng.choice(others), leaf))
    for leaf in taxonomy.leaves:
        for question in taxonomy.questions.get(leaf, ()):
            pairs.append((question, taxonomy.described(leaf), leaf))
            if texts_of.get(leaf):
                pairs.append((question, rng.choice(texts_of[leaf]), leaf))
    return pairs


def tune(args) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from semsearch.embeddings import DEFAULT_MODEL, model_location
    from semsearch.taxonomy import load_taxonomy

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    index = Index.open(args.index)
    labelled = index.store.survey_labelled()
    labelled_ids = {p.id for p, _, _ in labelled}
    pairs = label_pairs(labelled, load_taxonomy(), rng) if args.labels else []
    unlabelled = [p for _, p in index.store.iter_papers() if p.id not in labelled_ids]
    pairs += cloze_pairs(unlabelled, rng)
    print(f"{len(pairs)} pairs ({'with' if args.labels else 'without'} the survey's labels)", flush=True)

    model = SentenceTransformer(model_location(DEFAULT_MODEL), device="cpu")
    model.max_seq_length = TRAIN_LENGTH
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)

    def embed(texts: list[str]):
        return torch.nn.functional.normalize(model(model.tokenize(texts))["sentence_embedding"], dim=-1)

    model.train()
    started = time.time()
    for epoch in range(args.epochs):
        rng.shuffle(pairs)
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            logits = embed([a for a, _, _ in batch]) @ embed([b for _, b, _ in batch]).T * SCALE
            groups = [g for _, _, g in batch]
            same = torch.tensor(
                [[i != j and g is not None and g == h for j, h in enumerate(groups)] for i, g in enumerate(groups)]
            )
            logits = logits.masked_fill(same, -1e4)
            target = torch.arange(len(batch))
            cross_entropy = torch.nn.functional.cross_entropy
            loss = (cross_entropy(logits, target) + cross_entropy(logits.T, target)) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, {time.time() - started:.0f} s", flush=True)
    model.max_seq_length = 256  # what the engine embeds with
    model.save(str(args.out))
    print(
        f"saved {args.out}; build an index with: semsearch ingest survey --offline --model {args.out} --index NEW "
        f"&& semsearch ingest jsonl ../shared/data/arxiv_topics.jsonl --model {args.out} --index NEW"
    )


def ceiling(args) -> None:
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    index = Index.open(args.index)
    store = index.store
    every = read_expected(args.shared / "eval" / "new_papers_dev.jsonl")
    every = [r for r in every if store.find(r["id"]) is not None]
    vec_ids = [store.find(r["id"]) for r in every]
    vectors, papers = store.embeddings_for(vec_ids), store.papers_by_vec_id(vec_ids)
    x_every = np.vstack([vectors[v] for v in vec_ids])
    texts_every = [papers[v].embedding_text() for v in vec_ids]

    def folds(x, texts, words: bool):
        """(train, test, features) for five folds; word TF-IDF fitted on each training fold only."""
        for train, test in KFold(5, shuffle=True, random_state=0).split(x):
            tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2), stop_words="english")
            tfidf.fit([texts[i] for i in train])

            def features(rows, tfidf=tfidf):
                dense = csr_matrix(x[rows])
                return hstack([dense, tfidf.transform([texts[i] for i in rows])]).tocsr() if words else dense

            yield train, test, features

    # Scope: in the taxonomy (an expected node) against outside (null), the same way.
    inside = np.array([bool(r["expected"]) for r in every])
    print(f"{len(every)} dev papers, {inside.sum()} inside, {(~inside).sum()} outside")
    for words in (False, True):
        for c in (1.0, 10.0, 100.0):
            chance = np.zeros(len(every))
            for train, test, features in folds(x_every, texts_every, words):
                model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
                chance[test] = model.fit(features(train), inside[train]).predict_proba(features(test))[:, 1]
            best = max(balanced_accuracy(chance >= t, inside) for t in np.unique(chance))
            print(
                f"{'vectors + words' if words else 'vectors'}, C {c:g}: scope AUROC {auroc(chance, inside):.3f}, "
                f"balanced accuracy {balanced_accuracy(chance >= 0.5, inside):.3f} at one half, "
                f"{best:.3f} at the best threshold (chosen on the judged papers themselves)"
            )

    keep = [i for i, r in enumerate(every) if r["expected"]]
    records, x, texts = [every[i] for i in keep], x_every[keep], [texts_every[i] for i in keep]
    classes = sorted({r["expected"][0] for r in records})
    y = np.array([classes.index(r["expected"][0]) for r in records])

    def right(node: str, expected: list[str]) -> bool:
        return any(node == e or node.startswith(e + "/") for e in expected)

    print(f"{len(records)} dev papers in the taxonomy, {len(classes)} distinct expected nodes")
    for words in (False, True):
        for c in (1.0, 10.0, 100.0):
            hits = np.zeros(len(records))
            for train, test, features in folds(x, texts, words):
                model = LogisticRegression(C=c, max_iter=3000).fit(features(train), y[train])
                predicted = model.classes_[model.predict_proba(features(test)).argmax(axis=1)]
                hits[test] = [right(classes[p], records[i]["expected"]) for p, i in zip(predicted, test, strict=True)]
            print(f"{'vectors + words' if words else 'vectors'}, C {c:g}: first suggestion {hits.mean():.3f}")


def sentences(args) -> None:
    from semsearch.evaluate import evaluate_search, read_questions, read_topics
    from semsearch.lexical import strip_request
    from semsearch.search import Searcher

    index = Index.open(args.index)
    topics = read_topics(args.shared / "data" / "arxiv_topics.jsonl")
    files = [path for path in question_sets(args.shared).values() if path.exists()]
    whole = Searcher.question_leaves

    def combine(how: str):
        def question_leaves(self, query: str, vector: np.ndarray):
            parts = [p for p in re.split(r"(?<=[.!?;])\s+", query.strip()) if len(p.split()) >= 3]
            if how == "whole" or len(parts) < 2:
                return whole(self, query, vector)
            classifier = self.classifier
            vectors = np.vstack([vector, self.embedder.encode(parts)])
            scores = classifier.leaf_scores([strip_request(t) for t in [query, *parts]], vectors, questions=True)
            probabilities = classifier.probabilities(scores, questions=True)
            if how == "mean of scores":
                return classifier.probabilities(scores.mean(axis=0, keepdims=True), questions=True)[0]
            if how == "most peaked":
                return probabilities[int(np.argmax(probabilities.max(axis=1)))]
            if how == "geometric mean":
                g = np.exp(np.log(probabilities + 1e-9).mean(axis=0))
                return g / g.sum()
            return probabilities.mean(axis=0)

        return question_leaves

    print("reading | " + " | ".join(f.stem for f in files))
    for how in ("whole", "mean", "mean of scores", "most peaked", "geometric mean"):
        Searcher.question_leaves = combine(how)
        searcher, row = Searcher(index), []
        for path in files:
            kind, questions = read_questions(path)
            result = evaluate_search(index, questions, kind, topics, {"s": searcher})["s"]
            row.append(f"{result.get('ndcg@10', result.get('success@3')):.3f}")
        print(f"{how} | " + " | ".join(row), flush=True)
    Searcher.question_leaves = whole


def leaves(args) -> None:
    """Where topical questions lose: the share of the question model's leaf distribution on the
    leaves their labels name, the ranking with those leaves given (an oracle: it reads the labels),
    and the example questions' weight in the question model, judged first by training data alone
    (each example question placed by a model fitted without it)."""
    from semsearch import classify
    from semsearch.evaluate import evaluate_search, read_questions, read_topics
    from semsearch.ingest import TextVectors
    from semsearch.search import Searcher
    from semsearch.taxonomy import load_taxonomy

    index = Index.open(args.index)
    topics = read_topics(args.shared / "data" / "arxiv_topics.jsonl")
    sets = {name: path for name, path in question_sets(args.shared).items() if path.exists()}
    sets = {name: read_questions(path) for name, path in sets.items()}
    sets = {name: questions for name, (kind, questions) in sets.items() if kind == "topical"}
    taxonomy = load_taxonomy()
    asking: dict = {}  # the question being scored, for the oracle

    def named(question: dict, classifier) -> np.ndarray:
        """1 on each leaf whose path holds a node the question's labels name (evaluate's rule)."""
        nodes = set(question.get("categories") or [])
        return np.array([float(bool(nodes & set(leaf.split("/")))) for leaf in classifier.leaves])

    class Given(Searcher):
        def question_leaves(self, query: str, vector: np.ndarray):
            right = named(asking["question"], self.classifier)
            return right / right.sum() if right.any() else super().question_leaves(query, vector)

    def scores(searcher, *, mass: bool = False) -> list[str]:
        row = []
        for questions in sets.values():
            found, share = [], []
            for question in questions:
                asking["question"] = question
                found.append(evaluate_search(index, [question], "topical", topics, {"s": searcher})["s"]["ndcg@10"])
                if mass:
                    query = question["query"]
                    distribution = searcher.question_leaves(query, searcher.embedder.encode([query]))
                    share.append(named(question, searcher.classifier) @ distribution)
            row.append(f"{np.mean(found):.3f}" + (f" ({np.mean(share):.2f})" if mass else ""))
        return row

    base = Searcher(index)
    print("ranking | " + " | ".join(sets))
    print("as shipped (the question's mass on its right leaves) | " + " | ".join(scores(base, mass=True)), flush=True)
    print("right leaves given (oracle) | " + " | ".join(scores(Given(index, base.embedder))), flush=True)

    store, shipped = index.store, classify.QUESTION_WEIGHT
    embed = TextVectors(store, index.manifest.model, base.embedder.encode)
    labelled = classify.labelled_papers(store.survey_labelled())
    corpus = store.unlabelled_abstracts(classify.MAX_WORD_SCOPE_PAPERS)
    for weight in (1.0, 3.0, 10.0, 30.0):
        classify.QUESTION_WEIGHT = weight
        classifier = classify.TaxonomyClassifier.train(labelled, taxonomy, embed, corpus=corpus)
        searcher = Searcher(index, base.embedder)
        searcher.classifier = classifier  # a cached property: set, it is the one searches use
        top, rank = left_out_questions(classifier)
        print(
            f"example questions weigh {weight:g} (left out: top-1 {top:.3f}, MRR {rank:.3f}) | "
            + " | ".join(scores(searcher)),
            flush=True,
        )
    classify.QUESTION_WEIGHT = shipped


def openings(args) -> None:
    """What the openings of the index's abstracts teach the question model (classify.abstract_opening),
    and the ablations of its rule: every question set, the classifier trained as ingest trains it
    with one setting changed at a time."""
    import re as regex

    from semsearch import classify
    from semsearch.evaluate import evaluate_search, read_questions, read_topics
    from semsearch.ingest import TextVectors
    from semsearch.search import Searcher
    from semsearch.taxonomy import load_taxonomy

    index = Index.open(args.index)
    store, taxonomy = index.store, load_taxonomy()
    topics = read_topics(args.shared / "data" / "arxiv_topics.jsonl")
    sets = {name: read_questions(path) for name, path in question_sets(args.shared).items() if path.exists()}
    base = Searcher(index)
    embed = TextVectors(store, index.manifest.model, base.embedder.encode)  # in memory: nothing is saved
    labelled = classify.labelled_papers(store.survey_labelled())
    corpus = store.unlabelled_abstracts(classify.MAX_WORD_SCOPE_PAPERS)
    never = regex.compile(r"(?!)")
    variants = {
        "no openings (the corpus without its abstracts)": ({}, [row[:2] for row in corpus]),
        "shipped: two sentences, before the authors speak, abstracts in scope": ({}, corpus),
        "one sentence": ({"OPENING_SENTENCES": 1}, corpus),
        "three sentences": ({"OPENING_SENTENCES": 3}, corpus),
        "every sentence before the authors speak": ({"OPENING_SENTENCES": 1000}, corpus),
        "the first two sentences, whoever speaks": ({"AUTHORS_SPEAK": never}, corpus),
        "every abstract, in scope or not": ({"SCOPE_THRESHOLD": 0.0}, corpus),
        "an opening weighs 0.3 papers": ({"OPENING_WEIGHT": 0.3}, corpus),
        "an opening weighs 3 papers": ({"OPENING_WEIGHT": 3.0}, corpus),
    }
    print("training | openings | " + " | ".join(sets))
    for name, (settings, taught) in variants.items():
        shipped = {key: getattr(classify, key) for key in settings}
        for key, value in settings.items():
            setattr(classify, key, value)
        try:
            classifier = classify.TaxonomyClassifier.train(labelled, taxonomy, embed, corpus=taught)
        finally:
            for key, value in shipped.items():
                setattr(classify, key, value)
        searcher = Searcher(index, base.embedder)
        searcher.classifier = classifier  # a cached property: set, it is the one searches use
        row = []
        for kind, questions in sets.values():
            found = evaluate_search(index, questions, kind, topics, {"s": searcher})["s"]
            row.append(f"{found['ndcg@10']:.3f}" if kind == "topical" else f"{found['success@3']:.3f}")
        print(f"{name} | {classifier.opening_rows} | " + " | ".join(row), flush=True)


def left_out_questions(classifier) -> tuple[float, float]:
    """Top-1 and MRR of each example question's leaf, placed by the question model refitted
    without that question (`TaxonomyClassifier.left_out_questions`)."""
    scores, truth = classifier.left_out_questions()
    right = scores[truth.astype(bool)]
    above = (scores > right[:, None]).sum(axis=1)
    return float((above == 0).mean()), float(np.mean(1.0 / (above + 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("tune", "ceiling", "sentences", "leaves", "openings"):
        command = commands.add_parser(name)
        command.add_argument("--index", type=Path, required=True)
        command.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    commands.choices["tune"].add_argument("--out", type=Path, required=True)
    commands.choices["tune"].add_argument("--labels", action="store_true", help="also the survey's labels")
    commands.choices["tune"].add_argument("--epochs", type=int, default=1)
    commands.choices["tune"].add_argument("--seed", type=int, default=0, help="pairs drawn, their order, torch")
    args = parser.parse_args()
    measure = {"tune": tune, "ceiling": ceiling, "sentences": sentences, "leaves": leaves, "openings": openings}
    measure[args.command](args)


if __name__ == "__main__":
    run_script(main)
