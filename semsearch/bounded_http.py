"""`semsearch serve`'s HTTP protocol: uvicorn's own (httptools), with a request's head bounded.

uvicorn's httptools protocol reads a request line and headers of any size, appending each piece to
what it has (time quadratic in the size), in the event loop: one client sending a 100 MB header
held every other request for 24 s and grew the server by 180 MB; a few hundred MB more and nothing
was answered for minutes, or the server was killed for its memory. A head over MAX_HEAD bytes is
now answered 431, `{"error": ...}`, and the connection closed. (uvicorn's h11 protocol, used when
httptools is missing, has its own bound of 16 KiB.)
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A request line and its headers: a URL is at most 64 KiB (httptools reads no longer one), a
# browser's headers a few KiB.
MAX_HEAD = 128 * 1024


def too_large_answer(limit: int = MAX_HEAD) -> bytes:
    body = json.dumps({"error": f"the request line and headers are over {limit} bytes"}).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"x-content-type-options: nosniff\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


class BoundedHead(HttpToolsProtocol):
    """HttpToolsProtocol counting the bytes of each request's head as they arrive."""

    limit = MAX_HEAD

    def connection_made(self, transport) -> None:
        self._head, self._reading_head = 0, True
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        self._reading_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head, self._reading_head = 0, False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused: what else arrives is not read
            return
        if self._reading_head:
            self._head += len(data)
        super().data_received(data)  # one piece read: a body after a small head may come with it
        if self._reading_head and self._head > self.limit and not self.transport.is_closing():
            if self.cycle is None or self.cycle.response_complete:  # no other request's answer under way
                self.transport.write(too_large_answer(self.limit))
            self.transport.close()
