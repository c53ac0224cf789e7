"""A local stand-in for the arXiv API: serves Atom feeds written here, with scripted failures."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from semsearch.paper import normalize_title

FEED_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title>arXiv Query results</title>
  <id>http://arxiv.org/api/stub</id>
  <updated>2024-01-01T00:00:00-05:00</updated>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
  <opensearch:itemsPerPage>{size}</opensearch:itemsPerPage>
"""

ENTRY = """  <entry>
    <id>http://arxiv.org/abs/{id}v2</id>
    <updated>{published}</updated>
    <published>{published}</published>
    <title>{title}</title>
    <summary>{abstract}</summary>
    <author><name>Grace Hopper</name></author>
    <author><name>Edsger Dijkstra</name></author>
    <link href="http://arxiv.org/abs/{id}v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/{id}v2" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
"""


def stub_paper(arxiv_id: str) -> dict:
    return {
        "id": arxiv_id,
        "title": f"Stub paper {arxiv_id} on efficient inference",
        "abstract": f"An abstract written for the stub about paper {arxiv_id}: faster decoding & smaller caches.",
    }


@dataclass
class Step:
    """What the stub does for one request: an HTTP status, an empty feed, or a stall."""

    status: int = 200
    empty: bool = False
    stall: float = 0.0
    drop: int = 0  # leave out this many of the requested ids (the feed's total still counts them)
    hang_up: bool = False  # close the connection without any answer
    page: bytes | None = None  # answer HTTP 200 with these bytes instead of a feed (a proxy's page, garbage)
    content_type: str = "application/atom+xml"
    trickle: float = 0.0  # send the answer a byte at a time, this many seconds apart
    trickle_head: float = 0.0  # the same for the status line and headers (the body never comes)
    pause_at: bytes = b""  # send the answer up to these bytes, wait `pause` seconds, then the rest (no length)
    pause: float = 0.0
    cut_at: bytes = b""  # send the answer up to these bytes (no length) and close the connection
    repeat: bool = False  # send the page's first entry twice
    total: int | None = None  # say the results number this many (arXiv's empty answers may say 0)


@dataclass
class ArxivStub:
    papers: dict[str, dict] = field(default_factory=dict)  # arXiv id -> paper; unknown ids get stub papers
    script: list[Step] = field(default_factory=list)  # consumed one per request; then plain success
    unknown: set[str] = field(default_factory=set)  # ids arXiv never returns
    requests: list[dict] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    peers: set = field(default_factory=set)  # the client's (address, port) of each connection

    def feed(self, ids: list[str], start: int, size: int, total: int) -> bytes:
        body = FEED_HEAD.format(total=total, start=start, size=size)
        for arxiv_id in ids:
            paper = self.papers.get(arxiv_id) or stub_paper(arxiv_id)
            body += ENTRY.format(
                id=arxiv_id,
                title=escape(paper["title"]),
                abstract=escape(paper["abstract"]),
                published=paper.get("published", "2024-01-15T10:00:00Z"),
            )
        return (body + "</feed>\n").encode()

    def respond(self, query: dict, step: Step) -> tuple[int, bytes]:
        if step.stall:
            time.sleep(step.stall)
        if step.status != 200:
            return step.status, b"busy"
        if step.page is not None:
            return 200, step.page
        start = int(query.get("start", ["0"])[0])
        size = int(query.get("max_results", ["10"])[0])
        if query.get("id_list", [""])[0]:
            ids = [i for i in query["id_list"][0].split(",") if i not in self.unknown]
            total = len(ids)
            ids = ids[start : start + size]
        else:
            ids = sorted(self.papers, key=lambda i: (self.papers[i].get("published", ""), i))
            search = query.get("search_query", [""])[0]
            window = re.search(r"submittedDate:\[(\d{12}) TO (\d{12})\]", search)
            if window:  # papers submitted in the window, as arXiv would answer
                low, high = window.groups()
                stamp = lambda i: re.sub(r"\D", "", self.papers[i].get("published", ""))[:12]  # noqa: E731
                ids = [i for i in ids if low <= stamp(i) <= high]
            phrases = re.findall(r'ti:"([^"]+)"', search)
            if phrases:  # papers whose title holds one of the phrases
                ids = [i for i in ids if any(p in normalize_title(self.papers[i]["title"]) for p in phrases)]
            total = len(ids)
            ids = ids[start : start + size]
        if step.empty:
            ids = []
        ids = ids[: len(ids) - step.drop] if step.drop else ids
        ids = ids + ids[:1] if step.repeat else ids
        return 200, self.feed(ids, start, size, total if step.total is None else step.total)

    def __enter__(self) -> ArxivStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                stub.requests.append(query)
                stub.peers.add(self.client_address)  # one per connection
                stub.request_times.append(time.monotonic())
                step = stub.script.pop(0) if stub.script else Step()
                if step.hang_up:
                    self.close_connection = True
                    self.connection.shutdown(2)  # the socket closes with no status line sent
                    return
                if step.trickle_head:
                    try:
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/atom+xml\r\n" * 50:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(step.trickle_head)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                status, body = stub.respond(query, step)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", step.content_type)
                    if step.cut_at and step.cut_at in body:
                        body = body[: body.index(step.cut_at)]
                        self.close_connection = True
                    if not step.trickle and not step.pause_at and not step.cut_at:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if step.pause_at and step.pause_at in body:
                        cut = body.index(step.pause_at)
                        self.wfile.write(body[:cut])
                        self.wfile.flush()
                        time.sleep(step.pause)
                        body = body[cut:]
                        self.close_connection = True  # without a length, the end is the close
                    for start in range(0, len(body), 1 if step.trickle else len(body) or 1):
                        self.wfile.write(body[start : start + (1 if step.trickle else len(body))])
                        self.wfile.flush()
                        time.sleep(step.trickle)
                    # Without a length, the end of the answer is the close.
                    self.close_connection = bool(step.trickle or step.pause_at or step.cut_at)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/query"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
