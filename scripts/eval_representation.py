"""Would a better representation of papers and questions reach issue 23's last targets? (docs/evaluation.md,
"A better representation")

Three measurements, none of which reads an evaluation label to train (the ceiling reads them on purpose,
to say what the labels themselves would allow):

- `tune`: all-MiniLM-L6-v2 tuned contrastively on an index's own texts, saved as a sentence-transformers
  directory to build an index with (`semsearch ingest ... --model DIR`). Pairs: the inverse cloze task
  (a sentence of an unlabelled paper's abstract, and its title with the rest of the abstract) and, with
  `--labels`, the survey's labelled papers with their leaf's description, with another paper of the
  leaf, and our example questions with their leaf's description and one of its papers. In-batch
  negatives, symmetric loss; pairs of one leaf are not each other's negatives.
- `ceiling`: a logistic regression trained on the dev set's own `expected` nodes (five-fold), over the
  index's vectors and optionally word TF-IDF: how often a first suggestion could be right if the judge's
  labels were training data.
- `sentences`: a question of several sentences read sentence by sentence (the leaf distributions of each
  sentence and of the whole combined: mean, most peaked, geometric mean, mean of scores) in search.

    python scripts/eval_representation.py tune --index DIR --out MODEL_DIR [--labels] [--epochs N] [--seed S]
    python scripts/eval_representation.py ceiling --index DIR [--shared ../shared]
    python scripts/eval_representation.py sentences --index DIR [--shared ../shared]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

import numpy as np
from eval_question_kind import question_sets  # the script beside this one (its folder is on sys.path)

from semsearch.evaluate import read_expected
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
    records = read_expected(args.shared / "eval" / "new_papers_dev.jsonl")
    records = [r for r in records if r["expected"] and store.find(r["id"]) is not None]
    vec_ids = [store.find(r["id"]) for r in records]
    vectors, papers = store.embeddings_for(vec_ids), store.papers_by_vec_id(vec_ids)
    x = np.vstack([vectors[v] for v in vec_ids])
    texts = [papers[v].embedding_text() for v in vec_ids]
    classes = sorted({r["expected"][0] for r in records})
    y = np.array([classes.index(r["expected"][0]) for r in records])

    def right(node: str, expected: list[str]) -> bool:
        return any(node == e or node.startswith(e + "/") for e in expected)

    print(f"{len(records)} dev papers in the taxonomy, {len(classes)} distinct expected nodes")
    for words in (False, True):
        for c in (1.0, 10.0, 100.0):
            hits = np.zeros(len(records))
            for train, test in KFold(5, shuffle=True, random_state=0).split(x):
                tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2), stop_words="english")
                tfidf.fit([texts[i] for i in train])

                def features(rows, tfidf=tfidf, words=words):
                    dense = csr_matrix(x[rows])
                    return hstack([dense, tfidf.transform([texts[i] for i in rows])]).tocsr() if words else dense

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
            probabilities = classifier.probabilities(scores)
            if how == "mean of scores":
                return classifier.probabilities(scores.mean(axis=0, keepdims=True))[0]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("tune", "ceiling", "sentences"):
        command = commands.add_parser(name)
        command.add_argument("--index", type=Path, required=True)
        command.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    commands.choices["tune"].add_argument("--out", type=Path, required=True)
    commands.choices["tune"].add_argument("--labels", action="store_true", help="also the survey's labels")
    commands.choices["tune"].add_argument("--epochs", type=int, default=1)
    commands.choices["tune"].add_argument("--seed", type=int, default=0, help="pairs drawn, their order, torch")
    args = parser.parse_args()
    {"tune": tune, "ceiling": ceiling, "sentences": sentences}[args.command](args)


if __name__ == "__main__":
    main()
