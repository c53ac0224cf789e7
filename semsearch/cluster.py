"""Embedding on a Ray cluster: `semsearch ingest jsonl FILE --ray ADDRESS` (extra `semsearch[ray]`).

Each worker runs the index's ONNX export, whose files travel through Ray's object store (workers
need neither a shared disk nor torch). The local process stays the index's single writer: it hands
out each batch of stale papers, gets the vectors back in order, then stores and commits them as a
local ingest does, so an interrupted run resumes the same way and publishing is unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from semsearch.errors import SemsearchError

EXPORT_FILES = ("encoder.json", "model.onnx", "tokenizer.json")
WORKER_BATCH = 32  # texts per task: small enough to spread a store batch over every worker
LOCAL = "local"  # start a Ray instance on this machine (its cores are the workers)


class _Encoder:
    """A Ray actor: the ONNX encoder, loaded from the shipped files written to a temp dir for the
    while. The session and the tokenizer hold what they read, so the files go at once: Ray kills
    its workers, which never cleaned up after themselves (87 MB left in /tmp per worker and run)."""

    def __init__(self, files: dict[str, bytes]):
        from semsearch.embeddings import OnnxEmbedder

        with tempfile.TemporaryDirectory(prefix="semsearch-encoder-") as folder:
            for name, content in files.items():
                (Path(folder) / name).write_bytes(content)
            self.embedder = OnnxEmbedder(Path(folder), threads=1)  # one core per worker

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts)


class RayEmbedder:
    """`encode` as the local encoders have it, computed by one actor per CPU of the cluster."""

    normalized = True

    def __init__(self, export_dir: Path, address: str, *, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise SemsearchError("--ray needs Ray: pip install 'semsearch[ray]'") from None
        config = json.loads((export_dir / "encoder.json").read_text(encoding="utf-8"))
        self.model_name, self.dimension = config["model"], int(config["dimension"])
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            options = {"num_cpus": workers or os.cpu_count()} if address == LOCAL else {"address": address}
            try:
                ray.init(**options, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, ValueError, RuntimeError) as err:
                if "ray[client]" in str(err):  # a missing package, not the network
                    raise SemsearchError(f"--ray {address} needs Ray's client: pip install 'semsearch[ray]'") from None
                raise SemsearchError(f"cannot reach the Ray cluster at {address!r}: {err}") from None
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        files = ray.put({name: (export_dir / name).read_bytes() for name in EXPORT_FILES})
        encoder = ray.remote(num_cpus=1)(_Encoder)
        self.actors = [encoder.remote(files) for _ in range(count)]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        chunks = [texts[start : start + WORKER_BATCH] for start in range(0, len(texts), WORKER_BATCH)]
        pending = [self.actors[i % len(self.actors)].encode.remote(chunk) for i, chunk in enumerate(chunks)]
        return np.vstack(self._ray.get(pending)).astype(np.float32)

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._started_here:
            self._ray.shutdown()
