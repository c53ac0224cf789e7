"""Soak test of `semsearch serve` on loopback: minutes of mixed requests while ingests publish.

    python scripts/soak_serve.py [--index DIR] [--seconds 180] [--requests 20000] [--ingest-every 20]

The load of `bench_serve.py` (8 clients; search, related, classify and paper requests), bounded
in requests and time, with a one-paper ingest publishing every `--ingest-every` seconds. Reports
errors (the target is 0), latency, and how the server's resident memory grew from the end of the
first fifth of the run (once caches are warm) to the end (the target is at most 10 %).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import arguments, load_test  # noqa: E402

from semsearch.errors import run_script


def main() -> None:
    args = arguments(__doc__, seconds=180.0, requests=20_000, ingest_every=20.0)
    run = load_test(args)
    memory = [kb for kb in run["memory_kb"] if kb]
    warm, last = memory[len(memory) // 5], memory[-1]
    print(
        f"{run['requests']} requests in {run['seconds']:.0f} s ({run['throughput']:.1f}/s), "
        f"{run['publishes']} publishes"
    )
    print(f"errors: {len(run['errors'])}" + (f" (first: {run['errors'][0]})" if run["errors"] else ""))
    print(f"latency: p50 {run['p50']:.1f} ms, p99 {run['p99']:.1f} ms; stale health answers: {run['stale']}")
    print(
        f"resident memory: {warm / 1024:.0f} MB when warm, {last / 1024:.0f} MB at the end "
        f"({(last - warm) / warm:+.1%})"
    )


if __name__ == "__main__":
    run_script(main)
