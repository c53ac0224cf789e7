"""A local HTTP(S) server for tests of what semsearch reads from the network (lists, arXiv's
redirects, the bounded session): each GET is answered by a function the test gives."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Serving:
    """A local server answering each GET with `answer(handler)`, over TLS when given a context;
    `url` names `path` on it. A client that goes away mid-answer is no failure of the server's."""

    def __init__(self, answer, tls: ssl.SSLContext | None = None, path: str = "/README.md"):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                try:
                    answer(self)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, address = super().get_request()
                return (tls.wrap_socket(sock, server_side=True) if tls else sock), address

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_port}{path}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
