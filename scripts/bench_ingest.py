"""Ingest throughput against plain SentenceTransformer.encode on the same texts, in one run.

    python scripts/bench_ingest.py [../shared/data/arxiv_topics.jsonl] [--limit N] [--rounds 2]

The model is loaded (and warmed) before either is timed; the two are run alternately and the
best round of each is reported. Each round ingests into a fresh index that already holds the
model's ONNX export (made once per index directory; its one-off cost is printed apart).
ratio = ingest papers/s ÷ plain-encode papers/s. Target (issue 25): a whole ingest at least as fast
as a plain encode of the same texts, ratio ≥ 1.0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from semsearch.embeddings import Embedder, export_onnx
from semsearch.errors import run_script
from semsearch.ingest import ingest_jsonl
from semsearch.sources.jsonl import read_jsonl

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_topics.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default=str(DEFAULT))
    parser.add_argument("--limit", type=int, default=0, help="use the first N papers (0: all)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    papers = list(read_jsonl(Path(args.source)))
    if args.limit:
        papers = papers[: args.limit]
    texts = [p.embedding_text() for p in papers]
    work = Path(tempfile.mkdtemp(prefix="semsearch-bench-"))
    subset = work / "papers.jsonl"
    subset.write_text(
        "".join(json.dumps({"id": p.id, "title": p.title, "abstract": p.abstract}) + "\n" for p in papers)
    )

    embedder = Embedder()
    model = embedder.model
    model.encode(texts[:64])  # warm-up: first calls pay one-off allocation costs
    started = time.perf_counter()
    exported = export_onnx(embedder.model_name, index_dir=work / "exported")
    print(f"ONNX export (once per index directory): {time.perf_counter() - started:.1f}s")

    plain, full = [], []
    for round_number in range(args.rounds):
        started = time.perf_counter()
        model.encode(texts, batch_size=32)
        plain.append(len(texts) / (time.perf_counter() - started))

        index_dir = work / f"index-{round_number}"
        if exported is not None:
            shutil.copytree(exported.parent, index_dir / exported.parent.name)
        started = time.perf_counter()
        report = ingest_jsonl([subset], index_dir=index_dir, progress=False)
        full.append(len(texts) / (time.perf_counter() - started))
        assert report.embedded == len(texts), report.summary()
        shutil.rmtree(index_dir)
        print(f"round {round_number + 1}: plain encode {plain[-1]:.1f} papers/s, full ingest {full[-1]:.1f} papers/s")

    best_plain, best_full = max(plain), max(full)
    print(f"papers: {len(texts)}")
    print(f"plain SentenceTransformer.encode: {best_plain:.1f} papers/s")
    print(f"semsearch ingest jsonl (parse, store, embed, index, publish): {best_full:.1f} papers/s")
    print(f"ratio (ingest papers/s / plain papers/s): {best_full / best_plain:.3f} (target >= 1.0, issue 25)")
    shutil.rmtree(work)


if __name__ == "__main__":
    run_script(main)
