"""Vector index at scale, on synthetic data (no model needed).

    python scripts/bench_scale.py [--sizes 100000 1000000] [--queries 500] [--with-store]

Vectors are unit-length, 384-dimensional, drawn around random topic centres so that neighbours
exist as they do among real abstracts. For each size: the index kind semsearch picks, build time,
bytes per paper on disk and in memory, single-question latency p50/p99 (k=10), and recall@10
against exact search. `--with-store` also writes synthetic metadata and embeddings to the SQLite
store and reports its bytes per paper. Targets at 1 M: recall@10 >= 0.95, p50 <= 20 ms,
<= 1 KB of vector memory a paper.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from semsearch import vectors as vector_index

DIMENSION = 384


def synthetic(n: int, rng: np.random.Generator, centres: np.ndarray, spread: float = 0.9) -> np.ndarray:
    out = np.empty((n, DIMENSION), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        picked = centres[rng.integers(0, len(centres), m)]
        block = picked + spread * rng.standard_normal((m, DIMENSION), dtype=np.float32) / np.sqrt(DIMENSION)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    """Resident memory now, file-backed (memory-mapped) pages included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_bytes_per_paper(data: np.ndarray, workdir: Path) -> float:
    from semsearch.paper import Paper
    from semsearch.store import PendingEmbedding, Store

    store = Store(workdir / "papers.db")
    store.set_meta("model", "synthetic")
    words = np.array("quantization pruning cache decoding attention experts sparse tokens model training".split())
    rng = np.random.default_rng(1)
    for start in range(0, len(data), 20_000):
        batch = range(start, min(start + 20_000, len(data)))
        pending = []
        for i in batch:
            abstract = " ".join(rng.choice(words, 150))  # about the length of an arXiv abstract
            vec_id = store.put(Paper(id=f"s{i}", title=f"Synthetic paper {i}", abstract=abstract, year=2024))
            pending.append(PendingEmbedding(vec_id, "", "h"))
        store.put_embeddings(pending, data[start : start + len(pending)])
        store.commit()
    store.close()
    return (workdir / "papers.db").stat().st_size / len(data)


def bench(n: int, queries: int, with_store: bool) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(64, n // 500), DIMENSION)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = synthetic(n, rng, centres)
    probes = data[rng.integers(0, n, queries)] + 0.05 * rng.standard_normal((queries, DIMENSION), dtype=np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    kind = vector_index.choose_index_type("auto", n)
    ids = np.arange(n, dtype=np.int64)

    with tempfile.TemporaryDirectory(prefix="semsearch-scale-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        training = data[rng.choice(n, vector_index.training_size(n), replace=False)]
        batches = ((ids[s : s + 100_000], data[s : s + 100_000]) for s in range(0, n, 100_000))
        index = vector_index.build(batches, n, DIMENSION, kind, training)
        path = workdir / "vectors.faiss"
        vector_index.write(index, path)
        build_seconds = time.perf_counter() - started
        del index

        before = rss_mb()
        loaded = vector_index.load(path)
        latencies, found = [], []
        for q in probes:
            t = time.perf_counter()
            _, got = vector_index.search(loaded, q[None, :], 10)
            latencies.append((time.perf_counter() - t) * 1000)
            found.append(got[0])
        resident = rss_mb() - before

        exact = np.vstack([np.argsort(-(data @ q))[:10] for q in probes[: min(queries, 200)]])
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=False)])
        disk = path.stat().st_size / n
        store = store_bytes_per_paper(data, workdir) if with_store else None

    latencies.sort()
    print(f"--- {n:,} papers: index kind {kind}")
    print(f"build: {build_seconds:.1f} s")
    print(
        f"vector index on disk: {disk:.0f} bytes/paper; in memory after {queries} questions "
        f"(memory-mapped, resident growth): {resident * 2**20 / n:.0f} bytes/paper"
    )
    if store is not None:
        print(f"SQLite store (metadata + float32 embedding): {store:.0f} bytes/paper")
    print(
        f"latency k=10: p50 {latencies[len(latencies) // 2]:.2f} ms, "
        f"p99 {latencies[int(0.99 * (len(latencies) - 1))]:.2f} ms"
    )
    print(f"recall@10 against exact search: {recall:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--with-store", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores")
    for n in args.sizes:
        bench(n, args.queries, args.with_store)


if __name__ == "__main__":
    main()
