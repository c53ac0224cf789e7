"""`semsearch serve`'s HTTP protocol: uvicorn's own (httptools), each request bounded in size and time.

uvicorn's httptools protocol reads a request line and headers of any size, appending each piece to
what it has (time quadratic in the size), in the event loop: one client sending a 100 MB header
held every other request for 24 s and grew the server by 180 MB. A head over MAX_HEAD bytes is now
answered 431, `{"error": ...}`, and the connection closed. (uvicorn's h11 protocol, used when
httptools is missing, has its own bound of 16 KiB.)

It also waits for a request for ever: a connection that sends nothing, or half a request, is held
open, and a client opening such connections by the thousand used up the server's open files (1,024
on many systems), after which every other client was refused and the index was reported damaged
(`CURRENT` could not be opened). A request must now arrive whole within READ_SECONDS of its
connection opening or its first byte: after that the connection is answered 408 and closed.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A request line and its headers: a URL is at most 64 KiB (httptools reads no longer one), a
# browser's headers a few KiB.
MAX_HEAD = 128 * 1024
READ_SECONDS = 30.0  # a request of 1 MB, the most a body may be, arrives in that time at 35 kB/s

STATUS = {400: b"400 Bad Request", 408: b"408 Request Timeout", 431: b"431 Request Header Fields Too Large"}
NOT_HTTP = "the request is not HTTP this server can read (a URL is read up to 64 KiB)"


def refusal(status: int, message: str) -> bytes:
    """An answer of `status` with the one error body, the connection then closed."""
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (STATUS[status], len(body), body)
    )


class BoundedHead(HttpToolsProtocol):
    """HttpToolsProtocol counting the bytes of each request's head as they arrive, and timing each
    request from its connection's opening (or its first byte) until it is read whole."""

    limit = MAX_HEAD
    read_seconds = READ_SECONDS

    def connection_made(self, transport) -> None:
        self._head, self._reading_head, self._deadline = 0, True, None
        super().connection_made(transport)
        self._start_clock()

    def connection_lost(self, exc) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._reading_head = True
        self._start_clock()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head, self._reading_head = 0, False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # What arrives next is the next request's head: counted from its first piece, which is read
        # before the parser reports the message's beginning (on a kept-alive connection it was not
        # counted, and a head 60 kB over the bound was read).
        self._reading_head = True
        self._stop_clock()
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused: what else arrives is not read
            return
        if self._reading_head:
            self._head += len(data)
        super().data_received(data)  # one piece read: a body after a small head may come with it
        if self._reading_head and self._head > self.limit and not self.transport.is_closing():
            self._refuse(431, f"the request line and headers are over {self.limit} bytes")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are no request (or a URL over 64 KiB, which httptools does
        not read), with the one error body: it was text, "Invalid HTTP request received."."""
        self._refuse(400, NOT_HTTP)

    def _start_clock(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_seconds, self._too_slow)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.pipeline or self.flow.read_paused:  # reading waits on the server answering a request before
            self._start_clock()  # it (pipelined), not on the client: the answer under way is not cut off
            return
        self._refuse(408, f"the request did not arrive whole within {self.read_seconds:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` unless another request's answer is under way on this connection (or this
        request's own: its app then reads a disconnect), and close."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(refusal(status, message))
        self.transport.close()
