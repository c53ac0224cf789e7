"""The sparse (BM25) index kept beside the vector index, built from the same papers at publish."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

LEXICAL_DIR = "lexical"
IDS_FILE = "vec_ids.npy"


def lexical_text(title: str, abstract: str, categories: Sequence[str], descriptions: dict[str, str]) -> str:
    """What BM25 reads for a paper. The title counts twice (it names the method). A paper known only
    by its title borrows our description of the survey categories it is listed under, so that
    "hashing-based attention" can find a bare title such as "Reformer"."""
    parts = [title, title, abstract]
    if not abstract:
        parts += [descriptions[c] for c in categories if c in descriptions]
    return " ".join(part for part in parts if part)


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


class LexicalIndex:
    def __init__(self, model, vec_ids: np.ndarray):
        self.model = model
        self.vec_ids = vec_ids
        self.position = {int(v): i for i, v in enumerate(vec_ids)}

    @classmethod
    def build(cls, texts: Sequence[str], vec_ids: Sequence[int]) -> LexicalIndex:
        import bm25s

        model = bm25s.BM25()
        # bm25s refuses an empty corpus; an index of one placeholder document scores nothing.
        model.index(tokenize(texts) if texts else [["\u2205"]], show_progress=False)
        return cls(model, np.asarray(vec_ids, dtype=np.int64))

    def save(self, directory: Path) -> None:
        target = directory / LEXICAL_DIR
        target.mkdir(parents=True, exist_ok=True)
        self.model.save(str(target), show_progress=False)
        np.save(target / IDS_FILE, self.vec_ids)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        import bm25s

        source = directory / LEXICAL_DIR
        model = bm25s.BM25.load(str(source), mmap=True, show_progress=False, verbosity=0)
        return cls(model, np.load(source / IDS_FILE))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every paper (in vec_ids order) for `query`."""
        tokens = tokenize([query])[0]
        known = [t for t in tokens if t in self.model.vocab_dict]
        if not known or len(self.vec_ids) == 0:
            return np.zeros(len(self.vec_ids), dtype=np.float32)
        return np.asarray(self.model.get_scores(known), dtype=np.float32)[: len(self.vec_ids)]

    def top(self, query: str, n: int) -> list[tuple[int, float]]:
        scores = self.scores(query)
        n = min(n, int((scores > 0).sum()))
        if n <= 0:
            return []
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best])]
        return [(int(self.vec_ids[i]), float(scores[i])) for i in best]
