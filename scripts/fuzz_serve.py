"""Adversarial soak of `semsearch serve` on loopback: hostile requests mixed with ordinary ones.

    python scripts/fuzz_serve.py [--index DIR] [--seconds 120] [--requests 20000] [--clients 4] [--seed 0]

Copies the index, starts the server in a subprocess on a free 127.0.0.1 port and, for a bounded
number of requests and time, sends a seeded mix: ordinary searches, related work, classifications
and paper pages (as `bench_serve.py`), and hostile ones — random and oversized query strings,
control characters and NUL bytes, out-of-range `k`, malformed and wrongly typed JSON bodies,
bodies over the limit, path traversal in every path parameter (sent raw, not normalised by a
client), a foreign `Host` header, unknown routes and methods. Reports the answers by status
class: the targets are no 5xx, no dropped connection, every 4xx a JSON `{"error"}`, the server
still answering ordinary requests at the end, and its memory not growing past 10 %.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import PAPERS, QUESTIONS, free_port, resident_kb  # noqa: E402

from semsearch.errors import run_script

NASTY_TEXT = ["", " ", "\t\n", "\x00", "\x00" * 50, "\u202e", "😀" * 300, "a" * 5000, "' OR 1=1 --", "<script>"]
FOREIGN_HOST = "rebound.example"  # a DNS-rebinding page's name for 127.0.0.1: must be refused
TRAVERSALS = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "..\\..\\x"]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(NASTY_TEXT + QUESTIONS)
    return "".join(chr(rng.choice([rng.randrange(0, 128), rng.randrange(0, 0x3000)])) for _ in range(rng.randrange(40)))


def hostile_request(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    """(method, raw path, headers, body) of one hostile request."""
    quote = urllib.parse.quote
    kind = rng.randrange(10)
    headers = {"Content-Type": "application/json"}
    if kind == 0:
        k = rng.choice(["0", "-5", "100000", "abc", "1e9", ""])
        return "GET", f"/api/search?q={quote(random_text(rng))}&k={k}", headers, b""
    if kind == 1:
        return "GET", f"/api/search?q={quote(random_text(rng))}&year_from={rng.randrange(-5000, 5000)}", headers, b""
    if kind == 2:
        body = rng.choice(
            [
                b"{",
                b"null",
                b"[]",
                json.dumps({"title": random_text(rng), "abstract": random_text(rng)}).encode(),
                json.dumps({"title": 5, "abstract": ["x"]}).encode(),
                json.dumps({"title": "t", "abstract": "a" * 30_000}).encode(),
            ]
        )
        return "POST", "/api/classify", headers, body
    if kind == 3:
        return "POST", "/api/classify", headers, b'{"title": "' + b"x" * 1_200_000 + b'"}'
    if kind == 4:
        route = rng.choice(["/api/related/", "/api/papers/", "/api/digests/", "/static/", "/paper/"])
        return "GET", route + rng.choice(TRAVERSALS), headers, b""
    if kind == 5:
        return "GET", "/api/search?q=kv+cache", {**headers, "Host": FOREIGN_HOST}, b""
    if kind == 6:
        body = json.dumps({"likes": [random_text(rng)], "dislikes": [], "k": rng.choice([0, 5, 1000])}).encode()
        return "POST", "/api/recommend", headers, body
    if kind == 7:
        categories = "&".join(f"category={quote(random_text(rng))}" for _ in range(rng.randrange(6)))
        return "GET", f"/api/trends?{categories}", headers, b""
    if kind == 8:
        method = rng.choice(["DELETE", "PUT", "PATCH"])
        return method, rng.choice(["/api/search", "/api/labels", "/nowhere"]), headers, b""
    body = json.dumps({"id": random_text(rng), "category": random_text(rng)}).encode()
    return "POST", "/api/labels", headers, body


def ordinary_request(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    kind = rng.randrange(4)
    if kind == 0:
        return "GET", "/api/search?" + urllib.parse.urlencode({"q": rng.choice(QUESTIONS), "k": 10}), {}, b""
    if kind == 1:
        return "GET", f"/api/related/{rng.choice(PAPERS)}?k=10", {}, b""
    if kind == 2:
        body = json.dumps({"title": "Evicting tokens", "abstract": "We evict tokens from the KV cache."}).encode()
        return "POST", "/api/classify", {"Content-Type": "application/json"}, body
    return "GET", f"/api/papers/{rng.choice(PAPERS)}", {}, b""


def send(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One request over a raw socket (the path goes out exactly as given); (status, body)."""
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", "Content-Length": str(len(body)), **headers}
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall("\r\n".join(lines).encode("utf-8", "surrogateescape") + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server may answer an oversized body before reading it all: its answer is read below
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            if not chunks:
                raise
    answer = b"".join(chunks)
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="index")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="semsearch-fuzz-"))
    index = scratch / "index"
    shutil.copytree(args.index, index, ignore=shutil.ignore_patterns("staging", ".lock"))
    port = free_port()
    command = [sys.executable, "-m", "semsearch", "serve", "--port", str(port), "--index", str(index)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    memory: list[int] = []
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                send(port, "GET", "/api/health", {}, b"")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        counter = iter(range(args.requests))
        stop_at = time.monotonic() + args.seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop_at and (n := next(counter, None)) is not None:
                hostile = rng.random() < 0.7
                method, path, headers, body = (hostile_request if hostile else ordinary_request)(rng)
                try:
                    status, answer = send(port, method, path, headers, body)
                except (OSError, ValueError, IndexError) as err:
                    with lock:
                        statuses["dropped"] += 1
                        problems.append(f"{method} {path[:80]}: {err}")
                    continue
                with lock:
                    statuses[f"{status // 100}xx {'hostile' if hostile else 'ordinary'}"] += 1
                    foreign = headers.get("Host") == FOREIGN_HOST
                    if status >= 500 or (not hostile and status != 200) or (foreign and status < 400):
                        problems.append(f"{method} {path[:80]} -> {status}: {answer[:120]!r}")
                    elif status >= 400 and path.startswith("/api") and "error" not in json.loads(answer or b"{}"):
                        problems.append(f"{method} {path[:80]} -> {status} without an error field")
                    if n % 200 == 0:
                        memory.append(resident_kb(server.pid))

        threads = [threading.Thread(target=client, args=(args.seed * 1000 + c,)) for c in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        still = send(port, "GET", "/api/search?q=kv+cache+eviction", {}, b"")[0]
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)

    total = sum(statuses.values())
    print(f"{total} requests in {elapsed:.0f} s ({total / elapsed:.1f}/s), {args.clients} clients, seed {args.seed}")
    for key in sorted(statuses):
        print(f"  {key}: {statuses[key]}")
    print(f"problems: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
    print(f"an ordinary search after the run: {still}")
    print(f"tracebacks in the server's log: {log.count('Traceback')}")
    memory = [kb for kb in memory if kb]
    if len(memory) > 5:
        warm, last = memory[len(memory) // 5], memory[-1]
        growth = (last - warm) / warm
        print(f"resident memory: {warm / 1024:.0f} MB when warm, {last / 1024:.0f} MB at the end ({growth:+.1%})")
    sys.exit(1 if problems or still != 200 else 0)


if __name__ == "__main__":
    run_script(main)
