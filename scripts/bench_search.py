"""Query latency once the index and model are loaded.

    python scripts/bench_search.py [--index DIR] [--queries FILE.jsonl] [--repeat 5]

Questions come from a JSON Lines file with a `query` field (default: the shared dev questions),
else from a small built-in list.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from semsearch.errors import run_script
from semsearch.index import Index
from semsearch.search import Searcher

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval"
FALLBACK = [
    "how do I shrink the KV cache for long prompts?",
    "speculative decoding with a small draft model",
    "post-training quantization of weights to 4 bits",
    "pruning attention heads",
    "parameter-efficient fine-tuning with low-rank adapters",
]


def load_questions(path: str | None) -> list[str]:
    files = [Path(path)] if path else sorted(DEV.glob("*.jsonl"))
    rows = [json.loads(line) for f in files if f.exists() for line in f.open() if line.strip()]
    return [row["query"] for row in rows if "query" in row] or FALLBACK  # question files, not paper files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=None)
    parser.add_argument("--queries", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    started = time.perf_counter()
    searcher = Searcher(Index.open(args.index))
    searcher.search("warm up", k=args.k)
    load = time.perf_counter() - started
    questions = load_questions(args.queries)
    latencies = []
    for _ in range(args.repeat):
        for question in questions:
            started = time.perf_counter()
            searcher.search(question, k=args.k)
            latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(f"index: {searcher.index.manifest.count} papers, model {searcher.index.manifest.model}")
    print(f"load (open index + model + first query): {load:.2f} s")
    print(
        f"{len(latencies)} queries: p50 {p(0.5):.1f} ms, p90 {p(0.9):.1f} ms, p99 {p(0.99):.1f} ms, "
        f"mean {statistics.mean(latencies):.1f} ms"
    )


if __name__ == "__main__":
    run_script(main)
