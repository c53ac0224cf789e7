"""Suggesting where a paper belongs in the survey's taxonomy, and whether it belongs at all.

The method, chosen with `semsearch eval classify` (leave-one-out over the survey's papers):

- A paper is two unit vectors: its sentence embedding, and TF-IDF over character n-grams of its
  text (robust to word forms in short titles: quantiz-, prun-, sparsi-).
- Training rows are the labelled papers plus one row per leaf holding our description of that leaf,
  so a leaf with one or two papers still has a prototype. A description row weighs as much as ten
  papers (a tenth of the ridge penalty): it says what the leaf is, where a paper is one example.
- Kernel ridge regression onto one-hot leaf targets, kernel exp(γ·(mean of the two cosines − 1)).
  Its leave-one-out predictions have a closed form, so evaluation and calibration are honest and
  cost one matrix inverse.
- Leaf scores become probabilities by a softmax whose temperature is fit on those leave-one-out
  scores. An inner node's probability is the sum over its leaves.
- The first suggestion is a leaf, where the taxonomy files its papers, found top-down: the most
  probable branch, then its most probable child, and so on. A curator can file under it, and
  every node on its path is the most probable at its level, so it is right as far as a coarser
  label goes too (backing off to the deepest node with probability ≥ 1/2 gave a top-level branch
  for a third of real abstracts). The two alternatives are the most probable leaves of other
  kinds of method (outside the first's third-level node): a second leaf of the same kind adds
  little that the first does not already say.
- Confidence is the chance that the first suggestion is in the right area of the taxonomy (its
  second-level node, e.g. Model Compression), by a softmax temperature fit for that event on the
  leave-one-out scores of labelled papers with an abstract. It says how sure the place is if the
  paper belongs to the taxonomy; whether it does is the scope verdict beside it (`in_scope`).
  Discounting it by the scope probability made it under-confident on real in-scope papers
  (expected calibration error 0.186 against 0.062 on the shared dev set).
- Scope: how close the paper is to the taxonomy (the mean of its nearest labelled papers and the
  nearest node description) minus how close it is to described kinds of research outside it
  (multimodal models, RLHF, reasoning benchmarks, agents, continual learning, translation, ...,
  other fields that use language models, computing outside machine learning). The in-scope
  threshold is the 5th percentile of the labelled papers' own leave-one-out values, over those with
  an abstract (as new papers have) when there are enough: 95% of them count as in scope.
- Scope's words (`ScopeWords`): the embedding misses words that mark efficiency work ("sparsity",
  "memory", "compress"). Where the index holds enough abstracts, a logistic regression over their
  word TF-IDF learns them from the embedding's own verdicts (its surest 30 % each way, and the
  labelled papers as in); a text longer than a title is then judged by both scores, each in
  standard units of the index's papers. No label of any evaluation is read; the index's texts
  teach it, so it is retrained as the corpus grows (`ingest.update_predictions`).
- Questions are placed by a second fit on the same kernel (`question_weights`): the rows above,
  our example questions, and the openings of the index's abstracts in scope (`abstract_opening`:
  the sentences before the authors speak of their own work), each aimed at the leaf distribution
  the paper model gives its paper. An abstract opens on the situation its paper answers, in the
  words a user puts a problem in; our 150 example questions alone left problem-phrased questions
  with under half their leaf mass on the right leaves (docs/evaluation.md, "Openings"). Its scores
  become chances at its own softmax temperature, fit as the papers' is on left-out rows: each
  example question placed by the question model fitted without it (`left_out_questions`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import NamedTuple

import numpy as np

from semsearch.lexical import tokenize
from semsearch.paper import normalize_title, title_letters
from semsearch.taxonomy import Taxonomy, is_under, node_at

METHOD_VERSION = 18
GAMMA = 2.0  # kernel width on the averaged cosine
RIDGE = 0.1  # ridge penalty
DESCRIPTION_WEIGHT = 10.0  # our description of a leaf is its prototype: fit nearly exactly
QUESTION_WEIGHT = 1.0  # a question we wrote for a leaf counts as one labelled paper
OPENING_WEIGHT = 1.0  # so does an abstract's opening, aimed at its paper's leaf distribution
OPENING_SENTENCES = 2  # an opening is at most this many sentences ...
OPENING_MIN_WORDS = 8  # ... and at least this many words (else the abstract has none)
MAX_OPENINGS = 2_000  # an evenly spaced sample beyond this: the question model's fit grows as its cube
CONFIDENCE_DEPTH = 2  # confidence: the chance that the first suggestion is in the right node of this level
ALTERNATIVE_DEPTH = 3  # alternatives come from other nodes of this level than the first suggestion
SCOPE_PERCENTILE = 5.0
SCOPE_THRESHOLD = 0.5  # `in_scope` is `scope >= SCOPE_THRESHOLD`: the calibrated probability's even odds
MIN_CALIBRATION_PAPERS = 20  # labelled papers of one form (abstract, or title alone) needed to calibrate on them
SHORT_TEXT_WORDS = 40  # a text this short is a title (or a title and a line): judged against labelled titles
SMOOTHING = 0.05  # label smoothing when fitting the softmax temperature
PATH_SCALES = (0.25, 0.5, 0.75, 1.0)  # the top-down walk's temperature, as a share of the calibrated one
NEIGHBOURS = 3
WORD_SCOPE_SHARE = 30.0  # % of the index's abstracts at each end of the embedding's scope taken as in / out
MIN_WORD_SCOPE_PAPERS = 200  # unlabelled abstracts needed before scope learns their words
MAX_WORD_SCOPE_PAPERS = 10_000  # an evenly spaced sample beyond this: more costs ingest time, adds little
WORD_SCOPE_FOLDS = 5  # the labelled papers' word scores, for the threshold, come from models without them
WORD_SCOPE_C = 10.0  # inverse L2 penalty of the word model (scikit-learn's C)
CLASSIFIER_ARTIFACT = "taxonomy_classifier"
# Other fields that borrow language models or transformers as a tool, in our words: anchors of what
# is out of scope beside the taxonomy's own list (which describes LLM research outside it). A
# protein-structure or traffic paper that mentions language models is not about making LLMs
# efficient; without these it sat nearer the taxonomy than anything it was compared with.
OTHER_FIELDS = (
    "Predicting the three-dimensional structure of proteins from amino-acid sequences with a protein language model.",
    "Protein design and function prediction from sequence embeddings of a pretrained protein model.",
    "Forecasting traffic flow and speed on road sensor networks with spatio-temporal graph neural networks.",
    "Medium-range weather forecasting and climate simulation with a neural model trained on reanalysis data.",
    "Predicting molecular properties and planning chemical synthesis with a transformer over SMILES strings.",
    "Drug discovery: generating candidate molecules and scoring how they bind to protein targets.",
    "Materials discovery: predicting crystal structures and their stability with graph networks.",
    "A foundation model of single-cell gene expression for genomics and biology.",
    "Forecasting electricity demand, sales or other time series with a pretrained sequence model.",
    "Clinical decision support: a language model answers medical exam questions and summarises patient notes.",
    "Robot manipulation policies that follow natural-language instructions in the physical world.",
    "Trajectory prediction and planning for autonomous driving from sensor data.",
    "Financial market prediction and sentiment analysis of news with language models.",
    "Legal judgement prediction and contract analysis with language models.",
    "Simulating survey respondents and social behaviour with language-model personas in social science.",
    "Tutoring students and grading essays with language models in education.",
    "Recommending products from users' behaviour sequences with a recommender model.",
    "Seismic, satellite and remote-sensing imagery analysed with deep networks for earth observation.",
    "Detecting fake news, hate speech and misinformation on social media.",
    "Music generation and audio synthesis with generative models.",
)
# Computing outside machine learning, in our words. Its efficiency work (fast encryption, lock-free
# tables, low-latency networks) says "faster", "memory" and "energy" as the taxonomy does, and sat
# nearer it than any anchor of other research (4 of 7 such abstracts we wrote were let in).
OTHER_COMPUTING = (
    "Computer systems outside machine learning: file systems, databases, operating systems and "
    "concurrent data structures.",
    "Cryptography and security protocols: encryption, key exchange and signatures made fast on constrained hardware.",
    "Computer networks: congestion control, routing, caching and wireless and mobile communication.",
    "High-performance scientific computing: numerical solvers, sparse linear algebra and "
    "simulations on supercomputers.",
    "Computer graphics and rendering: ray tracing, geometry processing and real-time graphics.",
)
# Efficiency work on other modalities' models is in scope: the same methods (pruning, quantization,
# distillation, efficient attention, fast decoding) applied to vision, speech or diffusion models.
# Without these, such a paper sat nearest the out-of-scope "multimodal" description.
OTHER_MODALITIES = (
    "Pruning or merging redundant visual tokens to speed up inference of vision-language models.",
    "Quantizing the weights and activations of vision transformers and diffusion models to low bit widths.",
    "Distilling a diffusion model into a student that samples images in a few steps, cutting inference cost.",
    "Compressing speech recognition transformers by pruning, quantization and knowledge distillation.",
    "Efficient attention and token reduction for vision transformers and video models.",
    "Parameter-efficient fine-tuning of vision and multimodal foundation models with adapters or low-rank updates.",
    "Fast, memory-efficient inference of multimodal language models: KV cache compression, speculative decoding.",
    "Mixture-of-experts and sparse architectures for efficient vision and multimodal models.",
)
log = logging.getLogger(__name__)


@dataclass
class LabelledPaper:
    id: str
    title: str
    text: str
    embedding: np.ndarray
    categories: list[str]

    @property
    def has_abstract(self) -> bool:
        return self.text != self.title


def is_short(text: str) -> bool:
    """A title, or little more: scope judges it against the labelled papers known by title alone."""
    return len(text.split()) <= SHORT_TEXT_WORDS


@dataclass
class Suggestion:
    category: str
    score: float


@dataclass
class Neighbour:
    id: str
    title: str
    categories: list[str]
    similarity: float


@dataclass
class Classification:
    id: str | None
    suggestions: list[Suggestion]
    confidence: float
    scope: float  # the calibrated chance of belonging to the taxonomy at all, rounded as shown
    neighbours: list[Neighbour] = field(default_factory=list)
    leaf_probabilities: np.ndarray | None = None  # over the classifier's leaves (taxonomy document order)

    @property
    def category(self) -> str:
        return self.suggestions[0].category

    @property
    def in_scope(self) -> bool:
        """The verdict is the shown probability against the shown threshold, so that a reader who
        thresholds `scope` themselves never disagrees with it (rounding included)."""
        return self.scope >= SCOPE_THRESHOLD

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "suggestions": [{"category": s.category, "score": round(s.score, 4)} for s in self.suggestions],
            "confidence": round(self.confidence, 4),
            "scope": self.scope,
            "scope_threshold": SCOPE_THRESHOLD,
            "in_scope": self.in_scope,
        }

    def answer(self, classifier: TaxonomyClassifier) -> dict:
        """What every door gives (CLI --json and --batch, HTTP, MCP): `to_dict`, the probability of
        each node on the first suggestion's path (by `classifier`, which made it), and the closest
        labelled papers."""
        from semsearch.taxonomy import ancestors

        probability = classifier.node_probabilities(self.leaf_probabilities[None, :])[0]
        return self.to_dict() | {
            "path": [
                {"node": node, "probability": round(probability[node], 4)}
                for node in [*reversed(ancestors(self.category)), self.category]
            ],
            "neighbours": [
                {"id": n.id, "title": n.title, "categories": n.categories, "similarity": round(n.similarity, 4)}
                for n in self.neighbours
            ],
        }


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, truth: np.ndarray, smoothing: float = SMOOTHING) -> float:
    """The softmax temperature minimising label-smoothed cross-entropy against the true leaves.

    Smoothing keeps a small labelled set whose held-out predictions all happen to be right from
    driving the temperature to zero (certainty that a dozen examples cannot justify)."""
    known = truth.sum(axis=1) > 0  # a paper labelled only outside the taxonomy says nothing here
    if not known.any():
        return 1.0
    scores, truth = scores[known], truth[known]
    target = (1.0 - smoothing) * truth / truth.sum(axis=1, keepdims=True) + smoothing / truth.shape[1]
    best, best_loss = 1.0, math.inf
    for temperature in np.logspace(-3, 0.5, 60):
        log_p = np.log(np.maximum(softmax(scores, temperature), 1e-12))
        loss = -(target * log_p).sum(axis=1).mean()
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    return best


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Where an abstract's authors start to speak of their own work; what comes before is the situation.
AUTHORS_SPEAK = re.compile(
    r"\b(we|our|us|this paper|this work|this study|in this|here,|propose|present|introduce)\b", re.IGNORECASE
)


def abstract_opening(abstract: str) -> str:
    """The sentences an abstract opens with before its authors speak of their own work ("we",
    "this paper", "propose"), at most OPENING_SENTENCES; "" when they are fewer than OPENING_MIN_WORDS
    words. ("Long prompts make the KV cache outgrow GPU memory." is how a user puts the problem too.)"""
    before = []
    for sentence in SENTENCE_END.split(" ".join(abstract.split())):
        if AUTHORS_SPEAK.search(sentence) or len(before) == OPENING_SENTENCES:
            break
        before.append(sentence)
    opening = " ".join(before)
    return opening if len(opening.split()) >= OPENING_MIN_WORDS else ""


class CorpusPaper(NamedTuple):
    """An unlabelled paper of the index with its abstract: what scope learns its words from, and
    whose opening teaches the question model (`TaxonomyClassifier.train`)."""

    text: str  # as embedded: the title, then the abstract
    vector: np.ndarray
    abstract: str = ""


@dataclass
class SparseRows:
    """Rows of a sparse matrix in compressed form (scipy's CSR layout, without importing scipy)."""

    data: np.ndarray  # float32 values, row after row
    indices: np.ndarray  # their columns
    indptr: np.ndarray  # row i holds data[indptr[i]:indptr[i + 1]]
    columns: int

    FEW = 16  # up to this many rows are multiplied in numpy (a question never imports scipy)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def head(self, rows: int) -> SparseRows:
        end = int(self.indptr[rows])
        return SparseRows(self.data[:end], self.indices[:end], self.indptr[: rows + 1], self.columns)

    def select(self, rows: Sequence[int]) -> SparseRows:
        parts = [slice(int(self.indptr[r]), int(self.indptr[r + 1])) for r in rows]
        lengths = [part.stop - part.start for part in parts]
        data = np.concatenate([self.data[part] for part in parts]) if parts else self.data[:0]
        indices = np.concatenate([self.indices[part] for part in parts]) if parts else self.indices[:0]
        return SparseRows(data, indices, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), self.columns)

    def extended(self, more: SparseRows) -> SparseRows:
        """These rows, then `more`'s (the same columns)."""
        indptr = np.concatenate([self.indptr, more.indptr[1:] + self.indptr[-1]]).astype(np.int64)
        data, indices = np.concatenate([self.data, more.data]), np.concatenate([self.indices, more.indices])
        return SparseRows(data, indices, indptr, self.columns)

    def dense(self) -> np.ndarray:
        out = np.zeros((len(self), self.columns), dtype=np.float32)
        out[np.repeat(np.arange(len(self)), np.diff(self.indptr)), self.indices] = self.data
        return out

    def dot_rows(self, other: SparseRows) -> np.ndarray:
        """other × selfᵀ, dense: one row per row of `other`. A few rows of `other` are spread out
        and multiplied in numpy (faster than scipy for one question, and scipy stays unimported);
        a batch goes through scipy's sparse product."""
        if len(other) > self.FEW:
            from scipy.sparse import csr_matrix

            def matrix(rows: SparseRows):
                return csr_matrix((rows.data, rows.indices, rows.indptr), shape=(len(rows), rows.columns))

            return (matrix(self) @ matrix(other).T).T.toarray()  # this order converts only the small side
        products = self.data[:, None] * other.dense().T[self.indices]  # one row per stored value
        filled = np.flatnonzero(np.diff(self.indptr))  # reduceat would give an empty row a neighbour's value
        sums = np.zeros((len(self), len(other)), dtype=np.float32)
        if len(filled):
            sums[filled] = np.add.reduceat(products, self.indptr[filled], axis=0)
        return sums.T


class CharNgramTfidf:
    """TF-IDF over character n-grams inside words (sublinear tf, smoothed idf, unit rows).

    Our own few lines rather than scikit-learn's vectorizer, which costs a second to import on
    every question."""

    def __init__(self, lengths: tuple[int, int] = (3, 5), min_df: int = 2):
        self.lengths = lengths
        self.min_df = min_df

    def _word_grams(self, word: str) -> list[str]:
        low, high = self.lengths
        padded = f" {word} "
        return [padded[i : i + n] for n in range(low, high + 1) for i in range(len(padded) - n + 1)]

    def fit(self, texts: Sequence[str]) -> CharNgramTfidf:
        document_frequency: Counter = Counter()
        for text in texts:
            document_frequency.update({g for word in text.lower().split() for g in self._word_grams(word)})
        kept = sorted(g for g, df in document_frequency.items() if df >= self.min_df)
        self.vocabulary = {gram: i for i, gram in enumerate(kept)}
        df = np.array([document_frequency[g] for g in kept], dtype=np.float64)
        self.idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
        return self

    def _features_of(self, word: str) -> np.ndarray:
        """Vocabulary ids of a word's n-grams, with repeats; cached, since words recur across papers."""
        cache = self.__dict__.setdefault("_features", {})
        found = cache.get(word)
        if found is None:
            ids = [self.vocabulary[g] for g in self._word_grams(word) if g in self.vocabulary]
            found = cache[word] = np.asarray(ids, dtype=np.int64)
        return found

    def transform(self, texts: Sequence[str]) -> SparseRows:
        indptr, indices, data = [0], [], []
        for text in texts:
            words = text.lower().split()
            ids = np.concatenate([self._features_of(w) for w in words]) if words else np.zeros(0, np.int64)
            columns, counts = np.unique(ids, return_counts=True)
            weights = (1 + np.log(counts.astype(np.float32))) * self.idf[columns]
            norm = float(np.linalg.norm(weights))
            indices.append(columns)
            data.append(weights / norm if norm else weights)
            indptr.append(indptr[-1] + len(columns))
        return SparseRows(
            np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int64),
            np.asarray(indptr, dtype=np.int64),
            len(self.vocabulary),
        )


@dataclass(eq=False, repr=False)
class ScopeWords:
    """Which words mark a paper of the taxonomy's field: a linear model over a text's word TF-IDF
    (stemmed words as BM25 reads them, sublinear counts, unit rows). Fitted with scikit-learn at
    ingest; scored here with numpy, so a question or a classify call never imports it."""

    terms: list[str]
    idf: np.ndarray
    coefficients: np.ndarray
    intercept: float

    @classmethod
    def vocabulary(cls, counts: Sequence[Counter]) -> tuple[list[str], np.ndarray]:
        """Terms found in two texts or more, and their smoothed IDF, over the texts' word counts."""
        document_frequency: Counter = Counter()
        for words in counts:
            document_frequency.update(words.keys())
        terms = sorted(term for term, df in document_frequency.items() if df >= 2)
        df = np.array([document_frequency[t] for t in terms], dtype=np.float64)
        return terms, np.log((1 + len(counts)) / (1 + df)) + 1

    @cached_property
    def _column(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    def row(self, words: Counter) -> tuple[np.ndarray, np.ndarray]:
        """A text's unit TF-IDF row: its columns and their weights."""
        found = [(self._column[t], n) for t, n in words.items() if t in self._column]
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        columns, n = (np.array(part) for part in zip(*found, strict=True))
        weights = (1 + np.log(n)) * self.idf[columns]
        return columns, weights / np.linalg.norm(weights)

    @classmethod
    def fit(cls, terms: list[str], idf: np.ndarray, counts: Sequence[Counter], inside: np.ndarray) -> ScopeWords:
        from scipy.sparse import csr_matrix
        from sklearn.linear_model import LogisticRegression

        shape = cls(terms, idf, np.zeros(len(terms)), 0.0)
        rows = [shape.row(words) for words in counts]
        matrix = csr_matrix(
            (
                np.concatenate([w for _, w in rows]),
                np.concatenate([c for c, _ in rows]),
                np.concatenate([[0], np.cumsum([len(c) for c, _ in rows])]),
            ),
            shape=(len(rows), len(terms)),
        )
        model = LogisticRegression(C=WORD_SCOPE_C, solver="newton-cg", max_iter=2000, class_weight="balanced")
        model = model.fit(matrix, inside)  # the same fit as L-BFGS (a convex loss), about five times sooner here
        return cls(terms, idf, model.coef_[0].astype(np.float64), float(model.intercept_[0]))

    def scores(self, counts: Sequence[Counter]) -> np.ndarray:
        """The model's log-odds of "in the field" for each text's word counts."""
        scores = np.empty(len(counts))
        for i, words in enumerate(counts):
            columns, weights = self.row(words)
            scores[i] = weights @ self.coefficients[columns] + self.intercept
        return scores


def _finite_numbers(value) -> bool:
    """A number, or an array of numbers, all finite (a bool is no number here)."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iu" or (value.dtype.kind == "f" and bool(np.isfinite(value).all()))
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def word_counts(texts: Sequence[str]) -> list[Counter]:
    return [Counter(tokenize(text)) for text in texts]


def row_ridge(papers: int, leaves: int, questions: int, openings: int = 0) -> np.ndarray:
    """The ridge penalty of each training row, in their order (labelled papers, one description per
    leaf, example questions, abstracts' openings): a row that counts as w papers has RIDGE / w."""
    weights = [(papers, 1.0), (leaves, DESCRIPTION_WEIGHT), (questions, QUESTION_WEIGHT), (openings, OPENING_WEIGHT)]
    return np.concatenate([np.full(rows, RIDGE / weight) for rows, weight in weights])


def _scope_calibration(left_out_scope: np.ndarray) -> tuple[float, float]:
    """Threshold and logistic width from labelled papers' left-out scope scores: the probability is 1/2
    at their SCOPE_PERCENTILE-th percentile and 0.95 at their median."""
    threshold = float(np.percentile(left_out_scope, SCOPE_PERCENTILE))
    spread = max(float(np.median(left_out_scope)) - threshold, 1e-3)
    return threshold, spread / math.log(19.0)


def labelled_fingerprint(rows: Sequence[tuple[str, str, str]], taxonomy: Taxonomy, model: str) -> str:
    """Changes whenever retraining would give another classifier: labels, texts, descriptions, model."""
    digest = hashlib.sha1(f"{METHOD_VERSION}\n{model}\n".encode())
    for path in taxonomy.nodes:
        digest.update(f"{path}\t{taxonomy.descriptions[path]}\n".encode())
    digest.update("\n".join([*taxonomy.out_of_scope, *OTHER_FIELDS, *OTHER_COMPUTING, *OTHER_MODALITIES]).encode())
    for leaf, asked in sorted(taxonomy.questions.items()):
        digest.update(f"{leaf}\t{asked}\n".encode())
    for row in rows:
        digest.update(("\t".join(row) + "\n").encode())
    return digest.hexdigest()


@dataclass(eq=False, repr=False)
class TaxonomyClassifier:
    """Kernel ridge over the labelled papers, our leaf descriptions and example questions.

    Its fields are its whole fitted state: `to_bytes` saves exactly these (arrays in an .npz, the
    rest as JSON) and `from_bytes` accepts exactly these, so what an index holds is visible here."""

    leaves: list[str]
    nodes: list[str]
    children: dict[str, list[str]]
    method_version: int  # a saved classifier shows which method made it
    # Training rows: labelled papers, then one description per leaf, then example questions, then
    # the last `opening_rows`: openings of the index's abstracts (the question model's alone).
    train_vectors: np.ndarray | None = None
    train_tfidf: SparseRows | None = None  # one row per training row
    tfidf: CharNgramTfidf | None = None
    offset: np.ndarray | None = None  # mean target, added back to every score
    weights: np.ndarray | None = None  # papers' and descriptions' rows -> leaves: places papers
    question_weights: np.ndarray | None = None  # every row -> leaves: places questions
    opening_rows: int = 0
    temperature: float = 1.0  # softmax temperature of leaf scores (fit on leave-one-out scores)
    question_temperature: float = 1.0  # the question model's own (fit on its example questions left out)
    confidence_temperature: float = 1.0  # the same for the confidence of the first suggestion's area
    path_temperature: float = 1.0  # the softmax temperature of the top-down walk to the first suggestion
    loo_scores: np.ndarray | None = None  # labelled papers' leave-one-out leaf scores
    loo_truth: np.ndarray | None = None
    description_vectors: np.ndarray | None = None  # every node's description: evidence of scope
    out_of_scope_vectors: np.ndarray | None = None  # described kinds of research outside the taxonomy
    scope_threshold: float = 0.0  # for a paper with its abstract
    scope_scale: float = 1.0  # logistic width of the scope probability around the threshold
    short_scope_threshold: float = 0.0  # the same two for a title alone (`is_short`)
    short_scope_scale: float = 1.0
    scope_words: ScopeWords | None = None  # scope's words, learned from the index's abstracts (None: too few)
    scope_units: list[float] = field(default_factory=list)  # mean and sd of the embedding's and the words' scores
    labelled_ids: list[str] = field(default_factory=list)
    labelled_titles: list[str] = field(default_factory=list)
    labelled_categories: list[list[str]] = field(default_factory=list)

    @classmethod
    def untrained(cls, taxonomy: Taxonomy) -> TaxonomyClassifier:
        """The taxonomy's shape only (enough to turn leaf probabilities into suggestions)."""
        nodes = list(taxonomy.nodes)
        children = {node: taxonomy.children(node or None) for node in ["", *nodes]}
        return cls(taxonomy.leaves, nodes, children, method_version=METHOD_VERSION)

    # --- training -----------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        papers: Sequence[LabelledPaper],
        taxonomy: Taxonomy,
        embed: Callable[[list[str]], np.ndarray],
        corpus: Sequence[tuple] = (),
    ) -> TaxonomyClassifier:
        """Fit to the labelled `papers`; with `corpus`, the index's unlabelled papers as (text,
        vector, abstract) (`CorpusPaper`), scope also learns its words from them (`ScopeWords`) and
        the question model their openings (`abstract_opening`)."""
        corpus = [CorpusPaper(*row) for row in corpus]
        self = cls.untrained(taxonomy)
        leaf_index = {leaf: i for i, leaf in enumerate(self.leaves)}
        description_texts = [taxonomy.described(leaf) for leaf in self.leaves]
        node_vectors = embed([taxonomy.described(node) for node in self.nodes])
        # Every node, and efficiency work on other modalities: evidence of scope.
        modalities = embed(list(OTHER_MODALITIES)) if OTHER_MODALITIES else node_vectors[:0]
        self.description_vectors = np.vstack([node_vectors, modalities])
        self.out_of_scope_vectors = embed([*taxonomy.out_of_scope, *OTHER_FIELDS, *OTHER_COMPUTING])

        # Questions teach how people ask for a leaf, which is rarely in the words of its papers.
        asked = [(leaf, question) for leaf in self.leaves for question in taxonomy.questions.get(leaf, ())]
        question_texts = [question for _, question in asked]
        self.tfidf = CharNgramTfidf().fit([p.text for p in papers] + description_texts)
        texts = [p.text for p in papers] + description_texts + question_texts
        leaf_rows = node_vectors[[self.nodes.index(leaf) for leaf in self.leaves]]
        rows = [np.vstack([p.embedding for p in papers]), leaf_rows]
        if question_texts:
            rows.append(embed(question_texts))
        self.train_vectors = _unit_rows(np.vstack(rows))
        self.train_tfidf = self.tfidf.transform(texts)

        n, n_described = len(papers), len(papers) + len(self.leaves)
        targets = np.zeros((len(texts), len(self.leaves)), dtype=np.float64)
        for row, paper in enumerate(papers):  # a label at an inner node is spread over its leaves
            targets[row] = taxonomy.leaf_spread(paper.categories)
        for row, leaf in enumerate(self.leaves + [leaf for leaf, _ in asked], start=n):
            targets[row, leaf_index[leaf]] = 1.0

        kernel = self._kernel(self.train_vectors, self.train_tfidf)
        described = slice(0, n_described)
        self.offset = targets[described].mean(axis=0)
        ridge = row_ridge(n, len(self.leaves), len(question_texts))
        # Two fits on one kernel: papers are placed by a model of papers and descriptions; questions
        # (at the end, `_fit_question_model`) by one that has also seen our example questions and
        # the openings of abstracts, which would only blur the first.
        inverse = np.linalg.inv(kernel[described, described] + np.diag(ridge[described]))
        self.weights = inverse @ (targets[described] - self.offset)  # one row per paper and description

        # Closed-form leave-one-out: prediction for row i from a model trained without row i.
        loo = targets[described] - self.weights / np.diag(inverse)[:, None]
        self.loo_scores = loo[:n]
        self.loo_truth = (targets[:n] > 0).astype(np.float64)
        self.temperature = fit_temperature(self.loo_scores, self.loo_truth)

        self.path_temperature = self._fit_path_temperature(self.loo_scores, [p.categories for p in papers])
        self.labelled_ids = [p.id for p in papers]
        self.labelled_titles = [p.title for p in papers]
        self.labelled_categories = [list(p.categories) for p in papers]
        loo_scope = self.scope_scores(self.labelled_vectors, exclude_self=True)
        # Calibrated on papers like those it will judge, form by form: a bare title sits
        # systematically further from everything than the same paper with its abstract.
        # (A text's form at prediction is told by its length, `is_short`: only the text is given.)
        with_abstract = np.array([p.has_abstract for p in papers])
        full = with_abstract if with_abstract.sum() >= MIN_CALIBRATION_PAPERS else np.ones(n, dtype=bool)
        self.confidence_temperature = self._fit_confidence_temperature(
            self.loo_scores[full], [p.categories for p, keep in zip(papers, full, strict=True) if keep]
        )
        self.scope_threshold, self.scope_scale = _scope_calibration(loo_scope[full])
        long = np.array([not is_short(p.text) for p in papers], dtype=bool)
        corpus = [row for row in corpus if not is_short(row.text)]
        if len(corpus) >= MIN_WORD_SCOPE_PAPERS and long.sum() >= MIN_CALIBRATION_PAPERS:
            left_out = self._fit_scope_words([p.text for p in papers if not is_short(p.text)], loo_scope[long], corpus)
            if left_out is not None:
                self.scope_threshold, self.scope_scale = _scope_calibration(left_out)
        titles = ~with_abstract if (~with_abstract).sum() >= MIN_CALIBRATION_PAPERS else full
        self.short_scope_threshold, self.short_scope_scale = _scope_calibration(loo_scope[titles])
        self._fit_question_model(kernel, targets, corpus, embed)
        return self

    def _fit_question_model(
        self,
        kernel: np.ndarray,
        targets: np.ndarray,
        corpus: Sequence[CorpusPaper],
        embed: Callable[[list[str]], np.ndarray],
    ) -> None:
        """`question_weights` over every training row and the openings of the corpus's abstracts in
        scope, each aimed at its paper's leaf distribution by the paper model fitted above; and
        `question_temperature`, fit on the example questions each placed by the model without it
        (`left_out_questions`). Questions are shorter than papers and read differently, so the
        papers' temperature is not theirs (on the dev index it spread a question's chances too thinly)."""
        found = [(opening, row) for row in corpus if (opening := abstract_opening(row.abstract))]
        if found:
            texts, vectors = [row.text for _, row in found], np.vstack([row.vector for _, row in found])
            kept = np.flatnonzero(self.scope_probabilities(texts, vectors) >= SCOPE_THRESHOLD)
            if len(kept) > MAX_OPENINGS:
                kept = kept[np.linspace(0, len(kept) - 1, MAX_OPENINGS).round().astype(int)]
            if len(kept):
                openings = [found[i][0] for i in kept]
                placed = self.probabilities(self.leaf_scores([texts[i] for i in kept], vectors[kept]))
                self.train_vectors = np.vstack([self.train_vectors, _unit_rows(embed(openings))])
                self.train_tfidf = self.train_tfidf.extended(self.tfidf.transform(openings))
                self.opening_rows = len(openings)
                kernel = self._kernel(self.train_vectors, self.train_tfidf)
                targets = np.vstack([targets, placed])
        system = kernel + np.diag(self._ridge())
        self.question_weights = np.linalg.solve(system, targets - self.offset)
        scores, truth = self.left_out_questions(system)
        self.question_temperature = fit_temperature(scores, truth) if len(truth) else self.temperature

    def _ridge(self) -> np.ndarray:
        """The ridge penalty of each of the question model's training rows (`row_ridge`)."""
        n, leaves, rows = len(self.labelled_ids), len(self.leaves), len(self.train_vectors)
        return row_ridge(n, leaves, rows - n - leaves - self.opening_rows, self.opening_rows)

    def left_out_questions(self, system: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each example question's leaf scores by the question model fitted without it (closed-form
        leave-one-out, as for the papers: through the diagonal of the system's inverse), and its
        leaf (one-hot). `system`: the model's kernel plus its ridge, when the caller has it."""
        n, leaves = len(self.labelled_ids), len(self.leaves)
        asked = np.arange(n + leaves, len(self.train_vectors) - self.opening_rows)
        if system is None:
            system = self._kernel(self.train_vectors, self.train_tfidf) + np.diag(self._ridge())
        unit = np.zeros((len(system), len(asked)))
        unit[asked, np.arange(len(asked))] = 1.0
        diagonal = np.linalg.solve(system, unit)[asked, np.arange(len(asked))]
        fitted = (system @ self.question_weights)[asked] + self.offset  # the targets: one-hot, exactly fitted
        truth = (fitted > 0.5).astype(np.float64)
        return fitted - self.question_weights[asked] / diagonal[:, None], truth

    def _fit_scope_words(
        self, labelled_texts: list[str], labelled_scores: np.ndarray, corpus: Sequence[CorpusPaper]
    ) -> np.ndarray | None:
        """Fit `scope_words` and `scope_units` on the labelled papers (in) and the corpus's abstracts
        pseudo-labelled by the embedding's scope score; return the labelled papers' combined scope
        scores, their word scores from models that never saw them, for the threshold. None, and no
        words, when the corpus has too few papers on either side of the embedding's own verdict."""
        texts = labelled_texts + [row.text for row in corpus]
        embedding = np.concatenate([labelled_scores, self.scope_scores(np.vstack([row.vector for row in corpus]))])
        labelled = np.arange(len(texts)) < len(labelled_texts)
        low, high = np.percentile(embedding[~labelled], [WORD_SCOPE_SHARE, 100.0 - WORD_SCOPE_SHARE])
        # The surest of each side, and on that side of the embedding's threshold. In an index grown
        # by watching (in-scope papers only) its least likely share is still in the field: unless
        # half of each share is on its side, there is nothing to learn the field's words against.
        outside = ~labelled & (embedding <= low) & (embedding < self.scope_threshold)
        inside = labelled | ((embedding >= high) & (embedding >= self.scope_threshold))
        if min(outside.sum(), (inside & ~labelled).sum()) < WORD_SCOPE_SHARE / 200 * len(corpus):
            return None
        taught = inside | outside
        counts = word_counts(texts)
        terms, idf = ScopeWords.vocabulary(counts)
        fold = np.random.default_rng(0).permutation(len(texts)) % WORD_SCOPE_FOLDS
        left_out = np.zeros(len(texts))
        for k in range(WORD_SCOPE_FOLDS):
            rows = np.flatnonzero(taught & (fold != k))
            model = ScopeWords.fit(terms, idf, [counts[i] for i in rows], inside[rows])
            held = np.flatnonzero(fold == k)
            left_out[held] = model.scores([counts[i] for i in held])
        rows = np.flatnonzero(taught)
        self.scope_words = ScopeWords.fit(terms, idf, [counts[i] for i in rows], inside[rows])
        self.scope_units = [
            float(embedding.mean()),
            float(max(embedding.std(), 1e-6)),
            float(left_out.mean()),
            float(max(left_out.std(), 1e-6)),
        ]
        return self._combined_scope(embedding[labelled], left_out[labelled])

    def _combined_scope(self, embedding: np.ndarray, words: np.ndarray) -> np.ndarray:
        embedding_mean, embedding_sd, words_mean, words_sd = self.scope_units
        return (embedding - embedding_mean) / embedding_sd + (words - words_mean) / words_sd

    @property
    def labelled_vectors(self) -> np.ndarray:
        return self.train_vectors[: len(self.labelled_ids)]

    # --- saving: arrays and JSON, never pickle -----------------------------------------------------
    # An index may come from someone else; loading a saved classifier must not run code it holds.
    def to_bytes(self) -> bytes:
        """The classifier as an .npz archive: its array fields, and the others as one JSON entry."""
        arrays, state = {}, {}
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                arrays[name] = value
            elif name == "tfidf":
                arrays["tfidf.idf"] = value.idf
                state[name] = {"lengths": list(value.lengths), "min_df": value.min_df, "vocabulary": value.vocabulary}
            elif name == "scope_words" and value is not None:
                arrays |= {"scope_words.idf": value.idf, "scope_words.coefficients": value.coefficients}
                state[name] = {"terms": value.terms, "intercept": value.intercept}
            elif name == "train_tfidf":
                arrays |= {f"{name}.{part}": getattr(value, part) for part in ("data", "indices", "indptr")}
                state[f"{name}.columns"] = value.columns
            else:
                state[name] = value
        buffer = io.BytesIO()
        np.savez(buffer, state=np.frombuffer(json.dumps(state).encode(), dtype=np.uint8), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, saved: bytes) -> TaxonomyClassifier:
        """A classifier saved by `to_bytes`; ValueError unless the archive holds exactly its fields,
        as numbers where it keeps numbers, every one finite (an edited archive gave NaN scopes)."""
        with np.load(io.BytesIO(saved), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        state = json.loads(arrays.pop("state").tobytes())
        for value in [*arrays.values(), *(v for v in state.values() if isinstance(v, float))]:
            if not _finite_numbers(value):
                raise ValueError("the classifier holds values that are not finite numbers")
        saved_tfidf = state.pop("tfidf")
        tfidf = CharNgramTfidf(tuple(saved_tfidf["lengths"]), saved_tfidf["min_df"])
        tfidf.vocabulary, tfidf.idf = saved_tfidf["vocabulary"], arrays.pop("tfidf.idf")
        sparse = tuple(arrays.pop(f"train_tfidf.{part}") for part in ("data", "indices", "indptr"))
        train_tfidf = SparseRows(*sparse, columns=state.pop("train_tfidf.columns"))
        if (words := state.pop("scope_words", None)) is not None:
            idf, coefficients = arrays.pop("scope_words.idf"), arrays.pop("scope_words.coefficients")
            terms, intercept, units = words["terms"], words["intercept"], state.get("scope_units")
            if not (
                idf.ndim == coefficients.ndim == 1
                and len(terms) == len(idf) == len(coefficients)
                and all(isinstance(t, str) for t in terms)
                and np.all(idf > 0)
                and _finite_numbers(intercept)
                and isinstance(units, list)
                and len(units) == 4
                and all(map(_finite_numbers, units))
                and units[1] > 0
                and units[3] > 0
            ):
                raise ValueError("scope's word model does not match its terms")
            words = ScopeWords(list(terms), idf, coefficients, float(intercept))
        elif state.get("scope_units"):
            raise ValueError("scope's word model does not match its terms")
        values = state | arrays | {"tfidf": tfidf, "train_tfidf": train_tfidf, "scope_words": words}
        if set(values) != {f.name for f in fields(cls)}:
            raise ValueError("not a classifier saved by this version of semsearch")
        widths = [values[name] for name in WIDTHS]
        if not all(isinstance(width, float) and width > 0 for width in widths):
            raise ValueError("the classifier's temperatures and scales must be positive numbers")
        openings, trained, weights = values["opening_rows"], values["train_vectors"], values["question_weights"]
        rows = 0 if trained is None else len(trained)
        if type(openings) is not int or not 0 <= openings <= rows or (weights is not None and len(weights) != rows):
            raise ValueError("the classifier's question model does not match its training rows")
        if problem := _shape_problem(values):
            raise ValueError(f"the classifier's arrays do not fit together ({problem})")
        return cls(**values)

    def _kernel(self, vectors: np.ndarray, tfidf, rows: int | None = None) -> np.ndarray:
        """Kernel against the training rows (the first `rows` of them: papers place by fewer)."""
        train_vectors, train_tfidf = self.train_vectors, self.train_tfidf
        if rows is not None and rows < len(train_vectors):
            train_vectors, train_tfidf = train_vectors[:rows], train_tfidf.head(rows)
        dense = vectors @ train_vectors.T
        lexical = train_tfidf.dot_rows(tfidf)
        return np.exp(GAMMA * ((dense + lexical) / 2.0 - 1.0))

    # --- prediction ---------------------------------------------------------------------------
    def leaf_scores(self, texts: Sequence[str], vectors: np.ndarray, *, questions: bool = False) -> np.ndarray:
        """Score of each leaf for papers (or, with `questions`, for questions people ask)."""
        weights = self.question_weights if questions else self.weights
        vectors = _unit_rows(np.asarray(vectors, dtype=np.float32))
        return self._kernel(vectors, self.tfidf.transform(texts), rows=len(weights)) @ weights + self.offset

    def probabilities(self, scores: np.ndarray, *, questions: bool = False) -> np.ndarray:
        """Leaf scores as chances (with `questions`, scores of the question model)."""
        return softmax(scores, self.question_temperature if questions else self.temperature)

    def scope_scores(self, vectors: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
        vectors = _unit_rows(np.asarray(vectors, dtype=np.float32))
        similar = vectors @ self.labelled_vectors.T
        if exclude_self:
            np.fill_diagonal(similar, -1.0)
        k = min(5, similar.shape[1])
        near_papers = np.sort(similar, axis=1)[:, -k:].mean(axis=1)
        near_nodes = (vectors @ self.description_vectors.T).max(axis=1)
        outside = (vectors @ self.out_of_scope_vectors.T).max(axis=1)
        return (near_papers + near_nodes) / 2.0 - outside

    def scope_thresholds(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text's scope threshold and logistic width: a title's own (`is_short`), else an abstract's."""
        short = np.array([is_short(t) for t in texts], dtype=bool)
        return (
            np.where(short, self.short_scope_threshold, self.scope_threshold),
            np.where(short, self.short_scope_scale, self.scope_scale),
        )

    def scope_evidence(self, texts: Sequence[str], scores: np.ndarray) -> np.ndarray:
        """The scope score of each text whose embedding scope score is given: with scope's words, a
        text longer than a title is judged by both (a title has too few words to judge by)."""
        scores = np.asarray(scores, dtype=np.float64).copy()
        if self.scope_words is None:
            return scores
        long = np.flatnonzero([not is_short(t) for t in texts])
        if len(long):
            words = self.scope_words.scores(word_counts([texts[i] for i in long]))
            scores[long] = self._combined_scope(scores[long], words)
        return scores

    def scope_probabilities(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """The calibrated chance that each paper belongs to the taxonomy at all: logistic in its
        scope score, 1/2 at the threshold of its form (title alone, or with an abstract)."""
        return self.calibrated_scope(self.scope_evidence(texts, self.scope_scores(vectors)), texts)

    def calibrated_scope(self, scores: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """`scope_probabilities` of texts whose scope scores (`scope_evidence`) are known."""
        threshold, scale = self.scope_thresholds(texts)
        return 1.0 / (1.0 + np.exp(-(scores - threshold) / scale))

    def first_leaf(self, node_probability: dict[str, float]) -> str:
        """The leaf reached top-down by the most probable child at every level."""
        node = ""
        while children := self.children.get(node):
            node = max(children, key=node_probability.__getitem__)
        return node

    @cached_property
    def _under(self) -> np.ndarray:
        """leaves × nodes, 1 where the leaf is the node or lies below it: a node's probability is the
        sum over its leaves."""
        return np.array([[float(is_under(leaf, node)) for node in self.nodes] for leaf in self.leaves])

    def node_probabilities(self, leaf_probabilities: np.ndarray) -> list[dict[str, float]]:
        """For each row of leaf probabilities, every node's probability (a node's: its leaves' sum)."""
        return [dict(zip(self.nodes, row, strict=True)) for row in (leaf_probabilities @ self._under).tolist()]

    def suggest(self, leaf_probabilities: np.ndarray, path: np.ndarray | None = None) -> list[Suggestion]:
        """Three suggestions, best first: the leaf found top-down (by `path`, the leaf probabilities at
        the walk's temperature, when given), then the most probable leaves of other kinds of method
        (other nodes at ALTERNATIVE_DEPTH) that are no more probable than it. Scores are the
        calibrated probabilities, and fall down the list: an alternative more probable than the
        first had come second (13 % of the dev papers) and was never the one that was right there
        (top three 0.906 with it or without)."""
        node_probability = self.node_probabilities(leaf_probabilities[None, :])[0]
        walk = node_probability if path is None else self.node_probabilities(path[None, :])[0]
        chosen = [self.first_leaf(walk)]
        for j in np.argsort(-leaf_probabilities):
            leaf = self.leaves[j]
            if node_probability[leaf] > node_probability[chosen[0]]:
                continue
            if all(node_at(leaf, ALTERNATIVE_DEPTH) != node_at(c, ALTERNATIVE_DEPTH) for c in chosen):
                chosen.append(leaf)
                if len(chosen) == 3:
                    break
        return [Suggestion(node, node_probability[node]) for node in chosen]

    @cached_property
    def _area_matrix(self) -> tuple[list[str], np.ndarray]:
        """The nodes at CONFIDENCE_DEPTH and a leaves × those nodes 0/1 matrix (their columns of `_under`)."""
        areas = sorted({node_at(leaf, CONFIDENCE_DEPTH) for leaf in self.leaves})
        return areas, self._under[:, [self.nodes.index(area) for area in areas]]

    def path(self, scores: np.ndarray) -> np.ndarray:
        """Leaf probabilities at the temperature of the top-down walk."""
        return softmax(scores, self.path_temperature)

    def _fit_path_temperature(self, scores: np.ndarray, truth: Sequence[Sequence[str]]) -> float:
        """The walk's temperature: the share of the calibrated one (PATH_SCALES) whose top-down
        first suggestion is right most often on the leave-one-out scores of the labelled papers. The
        calibrated temperature spreads a paper over neighbouring leaves, which is right for
        probabilities but lets a branch of many half-likely leaves outweigh the one leaf that fits
        (0.604 against 0.623 at half of it on the survey, leave-one-out). A tie keeps the sharper:
        where the labelled papers cannot tell the walks apart (every share on the two community
        lists of the dev data), the walk that reaches the most probable leaf, so that no leaf more
        probable than the first suggestion is left out of the three (`suggest`)."""
        best, best_right = self.temperature, -1.0
        for scale in sorted(PATH_SCALES):
            temperature = self.temperature * scale
            firsts = [self.first_leaf(n) for n in self.node_probabilities(softmax(scores, temperature))]
            right = np.mean([any(is_under(f, c) for c in cats) for f, cats in zip(firsts, truth, strict=True)])
            if right > best_right + 1e-9:
                best, best_right = temperature, right
        return float(best)

    def _fit_confidence_temperature(self, scores: np.ndarray, truth: Sequence[Sequence[str]]) -> float:
        """The temperature at which the first suggestion's area probability best predicts (least
        log-loss) whether that area is right, on held-out (leave-one-out) scores."""
        areas, matrix = self._area_matrix
        firsts = [self.first_leaf(nodes) for nodes in self.node_probabilities(self.path(scores))]
        column = np.array([areas.index(node_at(f, CONFIDENCE_DEPTH)) for f in firsts])
        right = np.array(
            [
                any(node_at(c, CONFIDENCE_DEPTH) == node_at(f, CONFIDENCE_DEPTH) for c in cats)
                for f, cats in zip(firsts, truth, strict=True)
            ]
        )
        best, best_loss = 1.0, math.inf
        for temperature in np.logspace(-3, 0.5, 80):
            p = np.clip((softmax(scores, temperature) @ matrix)[np.arange(len(firsts)), column], 1e-9, 1 - 1e-9)
            loss = -np.where(right, np.log(p), np.log(1 - p)).mean()
            if loss < best_loss:
                best, best_loss = float(temperature), loss
        return best

    def confidence(self, scores: np.ndarray, firsts: Sequence[str]) -> np.ndarray:
        """For each row of leaf scores, the calibrated chance that its first suggestion is in the
        right area (node at CONFIDENCE_DEPTH)."""
        areas, matrix = self._area_matrix
        column = [areas.index(node_at(f, CONFIDENCE_DEPTH)) for f in firsts]
        return (softmax(scores, self.confidence_temperature) @ matrix)[np.arange(len(firsts)), column]

    def neighbours(
        self, vector: np.ndarray, k: int = NEIGHBOURS, *, other_than: str | None = None, title: str | None = None
    ) -> list[Neighbour]:
        """The k labelled papers closest to `vector`, never the paper itself: the paper `other_than`,
        or the one with the same `title` (a paper of the index classified again, by its id or by
        its pasted title and abstract, was its own closest labelled paper, at 1.00)."""
        similar = self.labelled_vectors @ _unit_rows(vector[None, :].astype(np.float32))[0]
        letters = title_letters(normalize_title(title)) if title else None
        best = [
            i
            for i in np.argsort(-similar)[: k + 1]
            if self.labelled_ids[i] != other_than and (not letters or self._labelled_letters[i] != letters)
        ]
        return [
            Neighbour(self.labelled_ids[i], self.labelled_titles[i], self.labelled_categories[i], float(similar[i]))
            for i in best[:k]
        ]

    @cached_property
    def _labelled_letters(self) -> list[str]:
        return [title_letters(normalize_title(title)) for title in self.labelled_titles]

    def classify(
        self,
        texts: Sequence[str],
        vectors: np.ndarray,
        ids: Sequence[str | None] | None = None,
        *,
        titles: Sequence[str | None] | None = None,
        explain: bool = True,
    ) -> list[Classification]:
        """`ids` are echoed in the answers; with `titles` too (each text's title), a labelled paper
        is not its own neighbour when given again by its text alone."""
        vectors = np.asarray(vectors, dtype=np.float32)
        scores = self.leaf_scores(texts, vectors)
        probabilities = self.probabilities(scores)
        in_scope_probability = self.scope_probabilities(texts, vectors)
        ids = list(ids) if ids is not None else [None] * len(texts)
        titles = list(titles) if titles is not None else [None] * len(texts)
        suggestions = [self.suggest(p, walk) for p, walk in zip(probabilities, self.path(scores), strict=True)]
        confidence = self.confidence(scores, [s[0].category for s in suggestions])
        results = []
        for row, paper_id in enumerate(ids):
            results.append(
                Classification(
                    id=paper_id,
                    suggestions=suggestions[row],
                    confidence=float(confidence[row]),
                    scope=round(float(in_scope_probability[row]), 4),
                    neighbours=self.neighbours(vectors[row], other_than=paper_id, title=titles[row]) if explain else [],
                    leaf_probabilities=probabilities[row],
                )
            )
        return results


# Divisors of scores (softmax temperatures, logistic widths): zero or below gives no probability.
WIDTHS = (
    "temperature",
    "question_temperature",
    "confidence_temperature",
    "path_temperature",
    "scope_scale",
    "short_scope_scale",
)


def _shape_problem(values: dict) -> str | None:
    """What in a saved classifier's fields does not fit the rest (None when all fits): each array
    is read against the others (a matrix of the leaves' width, rows of the vectors' width, sparse
    rows whose columns lie within the vocabulary), so an archive whose checksums were made to match,
    with one array cut or widened, is refused at loading rather than failing inside a question."""
    leaves, labelled = values["leaves"], values["labelled_ids"]
    if not (isinstance(leaves, list) and leaves and all(isinstance(leaf, str) for leaf in leaves)):
        return "no leaves"
    if not all(
        isinstance(values[name], list) for name in ("nodes", "labelled_ids", "labelled_titles", "labelled_categories")
    ):
        return "its lists are not lists"
    if not len(labelled) == len(values["labelled_titles"]) == len(values["labelled_categories"]):
        return "labelled papers"
    width = len(leaves)
    trained = values["train_vectors"]
    if trained is None:  # untrained: nothing else is kept
        return None
    if trained.ndim != 2 or not np.issubdtype(trained.dtype, np.floating):
        return "train_vectors"
    rows, dimension = trained.shape
    for name in ("description_vectors", "out_of_scope_vectors"):
        array = values[name]
        if array is not None and (array.ndim != 2 or array.shape[1] != dimension):
            return name
    expected = {
        "offset": (width,),
        "weights": (len(labelled) + width, width),
        "question_weights": (rows, width),
        "loo_scores": (len(labelled), width),
        "loo_truth": (len(labelled), width),
    }
    for name, shape in expected.items():
        if values[name] is not None and values[name].shape != shape:
            return name
    tfidf, sparse = values["tfidf"], values["train_tfidf"]
    terms = len(tfidf.idf) if getattr(tfidf.idf, "ndim", 0) == 1 else -1
    vocabulary = tfidf.vocabulary
    if not (
        isinstance(vocabulary, dict)
        and all(type(column) is int and 0 <= column < terms for column in vocabulary.values())
    ):
        return "tfidf vocabulary"
    indptr, indices = sparse.indptr, sparse.indices
    if not (
        sparse.columns == terms
        and indptr.ndim == indices.ndim == sparse.data.ndim == 1
        and np.issubdtype(indptr.dtype, np.integer)
        and np.issubdtype(indices.dtype, np.integer)
        and len(indptr) == rows + 1
        and indptr[0] == 0
        and np.all(np.diff(indptr) >= 0)
        and indptr[-1] == len(indices) == len(sparse.data)
        and (not len(indices) or 0 <= indices.min() and indices.max() < terms)
    ):
        return "train_tfidf"
    return None


def _usable(saved: bytes | None, dimension: int | None = None) -> TaxonomyClassifier | None:
    """A saved classifier, unless there is none or it cannot be used here (saved by another
    version of semsearch, or in an older format, or over vectors of another width than the
    index's `dimension`)."""
    if saved is None:
        return None
    try:
        classifier = TaxonomyClassifier.from_bytes(saved)
    except Exception:  # noqa: BLE001 - anything unreadable means: train again
        return None
    trained = classifier.train_vectors
    if dimension is not None and trained is not None and trained.shape[1] != dimension:
        return None
    return classifier if classifier.method_version == METHOD_VERSION else None


def labelled_papers(rows) -> list[LabelledPaper]:
    """(paper, embedding, categories) rows, as a store gives them, as training papers."""
    return [LabelledPaper(p.id, p.title, p.embedding_text(), vector, categories) for p, vector, categories in rows]


def load_saved(store, artifact: str = CLASSIFIER_ARTIFACT) -> TaxonomyClassifier | None:
    """The classifier saved in `store` at ingest (the survey's, or a list's `artifact`), if this
    version can use it."""
    saved = store.get_artifact(artifact)
    return _usable(saved, store.stored_dimension() if saved is not None else None)


def classifier_for(store, taxonomy: Taxonomy, embed: Callable[[list[str]], np.ndarray]) -> TaxonomyClassifier | None:
    """The saved classifier, else one trained now; None when no paper is labelled."""
    saved = store.get_artifact(CLASSIFIER_ARTIFACT)
    classifier = _usable(saved, store.stored_dimension() if saved is not None else None)
    if classifier is None:
        if saved is not None:
            log.warning(
                "note: the index's classifier was saved by another version of semsearch, or is damaged; training "
                "one for this run (any `semsearch ingest`, e.g. `semsearch ingest survey --offline`, saves a new one)"
            )
        papers = labelled_papers(store.survey_labelled())
        classifier = TaxonomyClassifier.train(papers, taxonomy, embed) if papers else None
    return classifier


def classify_texts(
    index, items: Sequence[tuple[str | None, str, str]], embedder=None, classifier: TaxonomyClassifier | None = None
) -> list[Classification]:
    """Classify (id, title, abstract) triples against the taxonomy of `index` (with `classifier`
    when the caller has it loaded already, as the server does)."""
    from semsearch.embeddings import embedder_for
    from semsearch.errors import SemsearchError
    from semsearch.paper import embedding_text
    from semsearch.taxonomy import load_taxonomy

    embedder = embedder or embedder_for(index.manifest.model, index_dir=index.directory)
    classifier = classifier or classifier_for(index.store, load_taxonomy(), embedder.encode)
    if classifier is None:
        raise SemsearchError("the index has no labelled papers; run `semsearch ingest survey` first")
    texts = [embedding_text(title, abstract) for _, title, abstract in items]
    results = []
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        ids, titles = zip(*[(item[0], item[1]) for item in items[start : start + 256]], strict=True)
        results += classifier.classify(chunk, embedder.encode(chunk), ids, titles=titles)
    return results
