"""The sparse (BM25) index kept beside the vector index, built from the same papers at publish.

`bm25s` builds the index (precomputed BM25 weights in a term-major sparse matrix); questions are
scored straight from its saved arrays with numpy (memory-mapped when large), so that answering a
question imports neither bm25s nor scipy.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from functools import cache, cached_property
from pathlib import Path

import numpy as np

LEXICAL_DIR = "lexical"
IDS_FILE = "vec_ids.npy"
_WORD = re.compile(r"(?u)\b\w\w+\b")
# Common English function words; they carry no topic.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she should
    so some such than that the their theirs them themselves then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also via using use used based new towards toward""".split()
)

# Words and phrases that ask for literature rather than say what it is about ("can you recommend
# some good papers on ...?"). They are dropped from questions, never from papers: rare in abstracts,
# they would carry a high IDF and match papers at random. Words that can name a topic here
# ("state" space models, "search", "reads" and writes) are left alone except in a request phrase.
REQUEST_WORDS = """find show give list recommend recommended recommendation recommendations suggest suggestion
    suggestions looking look want need know tell explain discuss discusses discussed describe describes help please
    thanks paper papers work works research literature article articles publication publications study studies way
    ways method methods approach approaches technique techniques idea ideas option options anything something anyone
    someone good best great recent latest remember propose proposed proposes introduce introduced introduces
    present presented presents""".split()
# Phrases that ask, not say: "state of the art", "worth reading", and a thing named or called
# ("a paper named GPTQ", "what was it called?"; "named entity recognition" says what it is about).
REQUEST_PHRASES = re.compile(
    r"\bstate[- ]of[- ]the[- ]art\b|\b(?:should|to|must|worth) read(?:ing)?\b"
    r"|\b(?:a|an|the|this|that|which|what|one)\s+(?:paper|work|method|model|approach|technique)s?\s+"
    r"(?:(?:is|was)\s+)?(?:named|called)\b(?!\s+entit)|\bit\s+(?:is|was\s+)?called\b",
    re.IGNORECASE,
)


def lexical_text(title: str, abstract: str, categories: Sequence[str], descriptions: dict[str, str]) -> str:
    """What BM25 reads for a paper. The title counts twice (it names the method). A paper known only
    by its title borrows our description of the survey categories it is listed under, so that
    "hashing-based attention" can find a bare title such as "Reformer"."""
    parts = [title, title, abstract]
    if not abstract:
        parts += [descriptions[c] for c in categories if c in descriptions]
    return " ".join(part for part in parts if part)


@cache
def _stem():
    import Stemmer

    return Stemmer.Stemmer("english").stemWords


def tokenize(text: str) -> list[str]:
    # In compatibility form, as questions are read: a paper's text from a PDF spells "efficient"
    # with the ligature "ﬁ", a word no question could then match.
    text = unicodedata.normalize("NFKC", text) if not text.isascii() else text
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return _stem()(words)


@cache
def _request_stems() -> frozenset[str]:
    return frozenset(_stem()(REQUEST_WORDS))


def question_terms(question: str) -> list[str]:
    """The BM25 terms of a question: its words without request words, and without bare numbers,
    which in a question describe the asker's setting ("200-page contracts", "8 GPUs") and match
    papers only by coincidence ("NLLB-200")."""
    return [t for t in tokenize(strip_request(question)) if not t.isdigit()]


def strip_request(question: str) -> str:
    """The question without its request words and phrases: what it is about."""
    request = _request_stems()

    def asks(word: str) -> bool:
        words = _WORD.findall(word.lower())
        return bool(words) and all(stem in request for stem in _stem()(words))

    return " ".join(word for word in REQUEST_PHRASES.sub(" ", question).split() if not asks(word))


class LexicalIndex:
    def __init__(self, vec_ids: np.ndarray, vocabulary: dict[str, int], weights, rows, starts):
        self.vec_ids = vec_ids
        self.vocabulary = vocabulary
        self.weights, self.rows, self.starts = weights, rows, starts  # term-major sparse matrix

    @classmethod
    def build(cls, texts: Sequence[str], vec_ids: Sequence[int], directory: Path) -> None:
        """Index `texts` (paper i has vec_ids[i]) into `directory`/lexical."""
        import bm25s

        target = directory / LEXICAL_DIR
        target.mkdir(parents=True, exist_ok=True)
        model = bm25s.BM25()
        # bm25s refuses a corpus without a single term (no papers, or only stopwords like "On it"):
        # a placeholder term that no question can contain keeps such papers indexed, scoring nothing.
        corpus = [tokenize(t) for t in texts]
        if not any(corpus):
            corpus = [["\u2205"] for _ in texts] or [["\u2205"]]
        model.index(corpus, show_progress=False)
        model.save(str(target), show_progress=False)
        np.save(target / IDS_FILE, np.asarray(vec_ids, dtype=np.int64))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        source = directory / LEXICAL_DIR
        vocabulary = json.loads((source / "vocab.index.json").read_text(encoding="utf-8"))  # as bm25s writes it
        if not (isinstance(vocabulary, dict) and all(type(term) is int for term in vocabulary.values())):
            raise ValueError("vocab.index.json is not a map of words to term numbers")
        from semsearch.vectors import MAP_ABOVE_BYTES

        def array(name: str) -> np.ndarray:  # in memory unless large (why: vectors.MAP_ABOVE_BYTES)
            path = source / name
            return np.load(path, mmap_mode="r" if path.stat().st_size > MAP_ABOVE_BYTES else None)

        vec_ids, weights = np.load(source / IDS_FILE), array("data.csc.index.npy")
        rows, starts = array("indices.csc.index.npy"), array("indptr.csc.index.npy")
        # The arrays read against each other (each a few comparisons, or one pass over the terms'
        # starts): cut or shifted, with no checksum to tell (an index written before them), a
        # question read past their ends and failed with a numpy traceback.
        if not (
            vec_ids.ndim == weights.ndim == rows.ndim == starts.ndim == 1
            and np.issubdtype(vec_ids.dtype, np.integer)
            and np.issubdtype(rows.dtype, np.integer)
            and np.issubdtype(starts.dtype, np.integer)
            and len(starts) >= 1
            and starts[0] == 0
            and starts[-1] == len(rows) == len(weights)
            and bool(np.all(np.diff(starts) >= 0))
            and all(0 <= term < len(starts) - 1 for word, term in vocabulary.items() if word)  # bm25s maps "" past them
        ):
            raise ValueError("its arrays do not fit together")
        return cls(vec_ids, vocabulary, weights, rows, starts)

    def holding(self, term: str) -> int:
        """How many indexed papers hold a term."""
        column = self.vocabulary.get(term)
        return 0 if column is None else int(self.starts[column + 1] - self.starts[column])

    def idf(self, term: str) -> float:
        """How rare a term is across the indexed papers (0 for one no paper holds)."""
        holding = self.holding(term)
        return math.log((len(self.vec_ids) + 1) / (holding + 0.5)) if holding else 0.0

    @cached_property
    def _by_vec_id(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.vec_ids, kind="stable")
        return self.vec_ids[order], order

    def score_of(self, scores: np.ndarray, vec_ids: Sequence[int]) -> np.ndarray:
        """The entries of `scores` (as `scores` returns them) for these papers; 0 for one not indexed.
        A question reads a few hundred, not a dict of every paper that shares a word with it."""
        wanted = np.asarray(vec_ids, dtype=np.int64)
        known, order = self._by_vec_id
        at = np.minimum(np.searchsorted(known, wanted), max(len(known) - 1, 0))
        found = known[at] == wanted if len(known) else np.zeros(len(wanted), dtype=bool)
        return np.where(found, scores[order[at]] if len(known) else 0.0, 0.0)

    def specificity(self, query: str) -> float:
        """How rare the question's words are here: their mean inverse document frequency over the
        largest possible (a word no paper holds counts as rarest). A question about one paper
        names its method's particular words; a topical one, the field's common ones."""
        terms = question_terms(query)
        n = len(self.vec_ids)
        if not terms or n < 2:
            return 0.0
        most = np.log(n + 1.0)
        idf = []
        for token in terms:
            term = self.vocabulary.get(token)
            df = int(self.starts[term + 1]) - int(self.starts[term]) if term is not None else 0
            idf.append(np.log((n + 1.0) / (df + 1.0)) / most)
        return float(np.mean(idf))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper (in vec_ids order) for the question `query`."""
        scores = np.zeros(len(self.vec_ids), dtype=np.float32)
        for token in question_terms(query):
            term = self.vocabulary.get(token)
            if term is not None:
                start, end = int(self.starts[term]), int(self.starts[term + 1])
                papers = self.rows[start:end]
                if len(papers) and (papers.min() < 0 or papers.max() >= len(scores)):  # not checked at load: a pass
                    from semsearch.errors import IndexDamaged  # over every entry would cost each fresh question

                    raise IndexDamaged("the BM25 index names papers it does not hold; rebuild the index")
                scores[papers] += self.weights[start:end]  # a term lists each paper once
        return scores
