"""Load test of `semsearch serve` on loopback: 8 concurrent clients asking /api/search.

    python scripts/bench_serve.py [--index DIR] [--clients 8] [--requests 400] [--seconds 60]

Starts the server in a subprocess on a free 127.0.0.1 port, waits for /api/health, then sends a
bounded number of requests (stopping early at the time limit) and reports requests/s and latency.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", "semsearch", "serve", "--port", str(port)]
    if args.index:
        command += ["--index", args.index]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                papers = json.load(urllib.request.urlopen(base + "/api/health", timeout=2))["papers"]
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        urllib.request.urlopen(f"{base}/api/search?q=warm+up", timeout=30).read()

        latencies: list[float] = []
        errors = [0]
        counter = iter(range(args.requests))
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client() -> None:
            while time.monotonic() < stop_at:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                url = f"{base}/api/search?" + urllib.parse.urlencode({"q": QUESTIONS[n % len(QUESTIONS)], "k": 10})
                started = time.perf_counter()
                try:
                    urllib.request.urlopen(url, timeout=30).read()
                except OSError:
                    errors[0] += 1
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)

    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(0.99 * (len(latencies) - 1))]
    print(f"index: {papers} papers; {args.clients} concurrent clients, {len(latencies)} requests, {errors[0]} errors")
    print(f"throughput: {len(latencies) / elapsed:.1f} requests/s")
    print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
