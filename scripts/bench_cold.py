"""Cold-start time of one question: semsearch against the naive path, side by side.

    python scripts/bench_cold.py [--index DIR] [--runs 5]

Naive path, in a fresh process: import sentence-transformers, load the model, encode the question,
search the FAISS index. semsearch: `semsearch search QUESTION --json` in a fresh process (which
answers with the ONNX export of the model, BM25 and the taxonomy as well). The two are run
alternately; medians are reported. ratio = semsearch seconds ÷ naive seconds. Target (issues 17, 25): ratio ≤ 0.10.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import time
from pathlib import Path

from semsearch.errors import run_script
from semsearch.index import Index

QUESTION = "how do I shrink the KV cache for long prompts?"
NAIVE = """
import sys
import faiss
from sentence_transformers import SentenceTransformer
from semsearch.embeddings import model_location
model = SentenceTransformer(model_location(sys.argv[1]), device="cpu")
vector = model.encode([sys.argv[3]], normalize_embeddings=True)
faiss.read_index(sys.argv[2]).search(vector, 10)
"""


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # As installed: pip byte-compiles the package, and an editable install writes its bytecode on the
    # first import, unless PYTHONDONTWRITEBYTECODE is set; then every fresh process would compile
    # semsearch's ~20 modules from source (~60 ms) and the naive path one. Compiled here, both read it.
    import semsearch

    compileall.compile_dir(Path(semsearch.__file__).parent, quiet=1)
    index = Index.open(args.index)
    vectors = str(index.generation_dir / "vectors.faiss")
    naive = [sys.executable, "-c", NAIVE, index.manifest.model, vectors, QUESTION]
    ours = [sys.executable, "-m", "semsearch", "search", QUESTION, "--json", "--index", str(index.directory)]
    timed(ours)  # warm the OS file cache for both, so neither pays for the first disk read
    timed(naive)
    naive_times, our_times = [], []
    for run in range(args.runs):
        naive_times.append(timed(naive))
        our_times.append(timed(ours))
        print(f"run {run + 1}: naive {naive_times[-1]:.2f} s, semsearch {our_times[-1]:.2f} s")
    naive_median, our_median = statistics.median(naive_times), statistics.median(our_times)
    print(f"index: {Path(index.directory)} ({index.manifest.count} papers)")
    print(f"naive (import sentence-transformers, load, encode, search): median {naive_median:.2f} s")
    print(f"semsearch search (fresh process): median {our_median:.2f} s")
    print(f"ratio (semsearch s / naive s): {our_median / naive_median:.3f} (target <= 0.10)")


if __name__ == "__main__":
    run_script(main)
