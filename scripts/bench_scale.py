"""Scale, on synthetic papers: the vector index alone, or (--end-to-end) the whole question path.

    python scripts/bench_scale.py [--sizes 100000 1000000] [--queries 500] [--with-store]
    python scripts/bench_scale.py --end-to-end [--sizes 10000 100000 1000000] [--queries 300]

Vectors are unit-length, 384-dimensional, drawn around random topic centres so that neighbours
exist as they do among real abstracts. For each size: the index kind semsearch picks, build time,
bytes per paper on disk and in memory, single-question latency p50/p99 (k=10), and recall@10
against exact search. `--with-store` also writes synthetic metadata and embeddings to the SQLite
store and reports its bytes per paper. Targets at 1 M: recall@10 >= 0.95, p50 <= 20 ms,
<= 1 KB of vector memory a paper.

--end-to-end builds real semsearch indexes: the survey (offline, embedded by the model), then N
synthetic papers through `ingest jsonl --vectors` (texts drawn word by word from the shared
corpus's vocabulary when ../shared is there, else from the survey's titles; vectors precomputed
around random topic centres). It times the build, then, in a fresh process, the hybrid question
path (embedding, BM25, FAISS, SQLite, the classifier and taxonomy credit) on the taxonomy's
example questions, and reports resident memory and disk per paper. Targets at 1 M on 2 cores:
p50 <= 50 ms, p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from semsearch import vectors as vector_index
from semsearch.errors import run_script

DIMENSION = 384
SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_topics.jsonl"


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


# --- the whole question path ---------------------------------------------------------------------
def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    """Words and their frequencies, from the shared corpus if present, else the survey's titles."""
    import re
    from collections import Counter

    from semsearch.sources.jsonl import read_jsonl
    from semsearch.sources.survey import load_survey

    papers = read_jsonl(SHARED_CORPUS) if SHARED_CORPUS.exists() else load_survey().papers
    counts = Counter(w for p in papers for w in re.findall(r"[a-z][a-z0-9-]+", f"{p.title} {p.abstract}".lower()))
    words, freq = zip(*counts.most_common(20_000), strict=True)
    return np.array(words), np.array(freq, dtype=np.float64) / sum(freq)


def write_synthetic(n: int, dimension: int, workdir: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """n synthetic records (JSON Lines) and their vectors (.npy), written in blocks."""
    import json

    words, p = vocabulary()
    centres = rng.standard_normal((max(64, n // 500), dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    records, vectors = workdir / "synthetic.jsonl", workdir / "synthetic.npy"
    stored = np.lib.format.open_memmap(vectors, mode="w+", dtype=np.float32, shape=(n, dimension))
    with records.open("w") as out:
        for start in range(0, n, 50_000):
            m = min(50_000, n - start)
            text = words[rng.choice(len(words), size=(m, 110), p=p)]
            for i in range(m):
                title, abstract = " ".join(text[i, :10]).capitalize(), " ".join(text[i, 10:])
                year = int(rng.integers(2015, 2026))
                out.write(json.dumps({"id": f"syn{start + i:07d}", "title": title, "abstract": abstract, "year": year}))
                out.write("\n")
            picked = centres[rng.integers(0, len(centres), m)]
            block = picked + 0.9 * rng.standard_normal((m, dimension), dtype=np.float32) / np.sqrt(dimension)
            stored[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    stored.flush()
    return records, vectors


QUESTION_PATH = """
import json, sys, time
from pathlib import Path
from semsearch.index import Index
from semsearch.search import Searcher
from semsearch.taxonomy import load_taxonomy
from scripts.bench_scale import rss_mb

index_dir, count = Path(sys.argv[1]), int(sys.argv[2])
questions = [q for asked in load_taxonomy().questions.values() for q in asked]
questions = (questions * (count // max(len(questions), 1) + 1))[:count]
started = time.perf_counter()
searcher = Searcher(Index.open(index_dir))
searcher.search("warm-up: how do I shrink the KV cache?", k=10)
load = time.perf_counter() - started
latencies = []
for question in questions:
    t = time.perf_counter()
    searcher.search(question, k=10)
    latencies.append((time.perf_counter() - t) * 1000)
print(json.dumps({"load_s": load, "latencies_ms": latencies, "rss_mb": rss_mb()}))
"""


def end_to_end(n: int, queries: int, workdir: Path, model: str | None = None) -> dict:
    """Build an index of the survey plus n synthetic papers; time questions in a fresh process."""
    import json
    import subprocess
    import sys

    from semsearch.index import Index
    from semsearch.ingest import ingest_jsonl, ingest_survey

    index_dir = workdir / f"index-{n}"
    started = time.perf_counter()
    ingest_survey(index_dir=index_dir, model=model, offline=True, progress=False)
    manifest = Index.open(index_dir).manifest
    records, vectors = write_synthetic(n, manifest.dimension, workdir, np.random.default_rng(n))
    written = time.perf_counter()
    ingest_jsonl([records], index_dir=index_dir, vectors=vectors, vectors_model=manifest.model, progress=False)
    built = time.perf_counter()
    records.unlink()
    vectors.unlink()
    root = Path(__file__).resolve().parents[1]
    answered = subprocess.run(
        [sys.executable, "-c", QUESTION_PATH, str(index_dir), str(queries)],
        capture_output=True, text=True, check=True, cwd=root,
    )  # fmt: skip
    timing = json.loads(answered.stdout.strip().splitlines()[-1])
    latencies = sorted(timing["latencies_ms"])
    generation = Index.open(index_dir).generation_dir
    disk = sum(f.stat().st_size for f in generation.rglob("*") if f.is_file())
    return {
        "papers": Index.open(index_dir).manifest.count,
        "index_kind": Index.open(index_dir).manifest.index_type,
        "write_synthetic_s": round(written - started, 1),
        "ingest_s": round(built - written, 1),
        "load_and_first_question_s": round(timing["load_s"], 2),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1),
        "rss_mb": round(timing["rss_mb"]),
        "disk_bytes_per_paper": round(disk / n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--queries", type=int)
    parser.add_argument("--with-store", action="store_true")
    parser.add_argument("--end-to-end", action="store_true", help="the whole question path on built indexes")
    parser.add_argument("--keep", type=Path, help="with --end-to-end: build the indexes here and keep them")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores")
    if args.end_to_end:
        for n in args.sizes or [10_000, 100_000, 1_000_000]:
            workdir = args.keep or Path(tempfile.mkdtemp(prefix="semsearch-e2e-"))
            print(f"--- {n:,} synthetic papers + the survey", flush=True)
            print(end_to_end(n, args.queries or 300, workdir), flush=True)
            if args.keep is None:
                import shutil

                shutil.rmtree(workdir)
        return
    for n in args.sizes or [100_000, 1_000_000]:
        bench(n, args.queries or 500, args.with_store)


if __name__ == "__main__":
    run_script(main)
