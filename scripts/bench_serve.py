"""Load test of `semsearch serve` on loopback: concurrent clients with a mix of requests.

    python scripts/bench_serve.py [--index DIR] [--clients 8] [--requests 800] [--seconds 60]
                                  [--workers 1] [--ingest-every 10]

Copies the index to a temporary directory (the run may ingest into it), starts the server in a
subprocess on a free 127.0.0.1 port, and sends a bounded number of requests, stopping early at the
time limit: searches, related work, classifications and paper pages in the ratio 4:2:1:1. With
`--ingest-every S` a one-paper `semsearch ingest jsonl` publishes every S seconds meanwhile, and
a monitor asks /api/health every 0.2 s: an answer is stale when it comes from an older generation
than one published more than 5 s before. Reports requests/s, latency, errors and stale answers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from semsearch.errors import run_script

QUESTIONS = [
    "how do I shrink the KV cache for long prompts?",
    "speculative decoding with a small draft model",
    "post-training quantization to 4 bits",
    "pruning attention heads",
    "low-rank adapters for fine-tuning",
    "mixture of experts routing",
    "prompt compression for long contexts",
    "state space models instead of attention",
]
PAPERS = ["2306.00978", "2211.10438", "2309.17453", "2302.01318"]  # survey papers: in every index built from it
ABSTRACT = {
    "title": "Evicting tokens from the key-value cache",
    "abstract": "We keep heavy-hitter tokens in the KV cache and evict the rest during long-context decoding.",
}
STALE_AFTER = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_for(n: int, base: str) -> urllib.request.Request:
    kind = n % 8
    if kind < 4:
        query = urllib.parse.urlencode({"q": QUESTIONS[n % len(QUESTIONS)], "k": 10})
        return urllib.request.Request(f"{base}/api/search?{query}")
    if kind < 6:
        return urllib.request.Request(f"{base}/api/related/{PAPERS[n % len(PAPERS)]}?k=10")
    if kind == 6:
        body = json.dumps(ABSTRACT).encode()
        return urllib.request.Request(f"{base}/api/classify", body, {"Content-Type": "application/json"})
    return urllib.request.Request(f"{base}/api/papers/{PAPERS[n % len(PAPERS)]}")


def generation_number(name: str) -> int:
    return int(name.split("-")[1])


def resident_kb(pid: int) -> int:
    """Resident memory of a process (Linux), in kB; 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load_test(args: argparse.Namespace) -> dict:
    """Run the load described by `args` (see `arguments`); the figures of the run."""
    scratch = Path(tempfile.mkdtemp(prefix="semsearch-bench-"))
    index = scratch / "index"
    shutil.copytree(args.index, index, ignore=shutil.ignore_patterns("staging", ".lock"))
    port = free_port()
    command = [sys.executable, "-m", "semsearch", "serve", "--port", str(port), "--index", str(index)]
    server = subprocess.Popen([*command, "--workers", str(args.workers)], stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    published: list[tuple[float, int]] = []  # (time the ingest returned, generation it published)
    served: list[tuple[float, int]] = []  # (time of a health answer, generation it came from)
    memory: list[tuple[float, int]] = []  # (time, the server's resident kB)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = json.load(urllib.request.urlopen(base + "/api/health", timeout=2))
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        for n in range(8 * args.workers):  # every kind of request once per worker, before timing
            urllib.request.urlopen(request_for(n, base), timeout=60).read()

        counter = iter(range(args.requests))
        stop_at = time.monotonic() + args.seconds
        finished = threading.Event()

        def client() -> None:
            while time.monotonic() < stop_at:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                started = time.perf_counter()
                try:
                    urllib.request.urlopen(request_for(n, base), timeout=30).read()
                except OSError as err:
                    with lock:
                        errors.append(f"{request_for(n, base).full_url}: {err}")
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

        def ingester() -> None:
            for n in itertools.count():
                if finished.wait(args.ingest_every):
                    return
                source = scratch / f"new-{n}.jsonl"
                paper = {"id": f"2999.{n:05d}", "title": f"Benchmark paper {n} on caches", "abstract": "A method."}
                source.write_text(json.dumps(paper) + "\n")
                run = subprocess.run(
                    [sys.executable, "-m", "semsearch", "ingest", "jsonl", str(source), "--index", str(index)],
                    capture_output=True,
                    text=True,
                )
                if run.returncode != 0:
                    errors.append(f"ingest: {run.stderr.strip()[-200:]}")
                    continue
                current = (index / "CURRENT").read_text().strip()
                with lock:
                    published.append((time.monotonic(), generation_number(current)))

        def monitor() -> None:
            while not finished.wait(0.2):
                try:
                    name = json.load(urllib.request.urlopen(base + "/api/health", timeout=5))["generation"]
                except OSError as err:
                    errors.append(f"health: {err}")
                    continue
                with lock:
                    served.append((time.monotonic(), generation_number(name)))
                    memory.append((time.monotonic(), resident_kb(server.pid)))

        helpers = [threading.Thread(target=monitor)]
        if args.ingest_every:
            helpers.append(threading.Thread(target=ingester))
        for thread in helpers:
            thread.start()
        started = time.perf_counter()
        clients = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed = time.perf_counter() - started
        finished.set()
        for thread in helpers:
            thread.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)

    stale = sum(
        1
        for at, generation in served
        if any(generation < number and at - when > STALE_AFTER for when, number in published)
    )
    latencies.sort()
    return {
        "papers": health["papers"],
        "requests": len(latencies),
        "seconds": elapsed,
        "throughput": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(0.99 * (len(latencies) - 1))],
        "errors": errors,
        "publishes": len(published),
        "health_answers": len(served),
        "stale": stale,
        "memory_kb": [kb for _, kb in memory],
    }


def arguments(description: str, **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="index")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ingest-every", type=float, default=0.0, help="seconds between publishes (0: none)")
    parser.set_defaults(**defaults)
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__)
    run = load_test(args)
    print(
        f"index: {run['papers']} papers; {args.workers} worker(s), {args.clients} concurrent clients, "
        f"mix search:related:classify:paper = 4:2:1:1"
    )
    print(f"{run['requests']} requests in {run['seconds']:.1f} s: {run['throughput']:.1f} requests/s")
    print(f"latency: p50 {run['p50']:.1f} ms, p99 {run['p99']:.1f} ms")
    print(f"errors: {len(run['errors'])}" + (f" (first: {run['errors'][0]})" if run["errors"] else ""))
    if args.ingest_every:
        print(
            f"publishes during the run: {run['publishes']}; health answers: {run['health_answers']}, "
            f"stale (older than a publish {STALE_AFTER:.0f} s before): {run['stale']}"
        )


if __name__ == "__main__":
    run_script(main)
