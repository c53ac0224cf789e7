"""HTTP GETs whole within a deadline and a size: what every network source (arXiv, a list's URL)
reads through.

requests' timeout bounds each read, not the call: a server sending a byte now and then, in its
headers as well as its body, held a call for ever. Here a timer shuts the call's socket at its
deadline, which ends a read waiting on headers too (a check as each piece of the body arrives
cannot: no piece arrives while headers are read). The same cut ends a call at once when its `stop`
is set (a server stopping its watch), which otherwise waited out the deadline (30 s) to exit.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from semsearch.errors import Stopped

MAX_REDIRECTS = 3  # arXiv's move to https is one hop, a renamed repository's README two
STOP_POLL = 0.1  # seconds between looks at a call's `stop`: how late a stopping server cuts its call

# Per thread, the sockets the current call opened: its deadline cuts them.
_sockets = threading.local()


class Overdue(requests.Timeout):
    """The answer, headers and body, did not arrive whole within the call's deadline."""


class BrokeOff(requests.ConnectionError):
    """The connection failed part-way through the answer (reset, or closed short of its length)."""


class TooLarge(requests.RequestException):
    """The answer is larger than the call's limit; reading stopped at the limit."""


class _Cuttable:
    """A connection whose socket its call's deadline can shut down."""

    def connect(self):
        super().connect()
        getattr(_sockets, "open", []).append(self.sock)


class _CuttableHTTP(_Cuttable, urllib3.connection.HTTPConnection):
    pass


class _CuttableHTTPS(_Cuttable, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _CuttableHTTP


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _CuttableHTTPS


class _CuttableAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class BoundedSession(requests.Session):
    """Every call whole within `timeout` seconds, headers and body (redirects included), and at
    most `max_bytes` of body once decoded (a gzip bomb stops at the limit too). The body is read
    into `response.content` before the call returns. Failures are requests' exceptions: Overdue,
    BrokeOff, TooLarge, or what requests raises itself (a refused connection, a bad redirect,
    TooManyRedirects past MAX_REDIRECTS).

    Redirects are followed here, not by requests, which reads each redirect's body whole, and
    decoded, to free its connection, and keeps it: a 302 whose body was a gzip bomb grew the
    process past 20 GB. A redirect's body is never read (each call's connection is its own)."""

    def __init__(self, timeout: float, max_bytes: int, stop: threading.Event | None = None):
        super().__init__()
        self.timeout, self.max_bytes, self.stop = timeout, max_bytes, stop
        self.max_redirects = MAX_REDIRECTS
        for scheme in ("http://", "https://"):
            self.mount(scheme, _CuttableAdapter())

    def on_headers(self, response: requests.Response) -> None:
        """Called when an answer's status and headers have arrived, before its body is read."""

    def before_redirect(self) -> None:
        """Called before each redirect is followed: a hop is a request to pace like any other."""

    def resolve_redirects(self, *args, **kwargs):
        """Nothing: requests' own reads the body (see the class), even with allow_redirects=False."""
        return iter(())

    def _follow(self, method, url, **kwargs) -> requests.Response:
        """The answer at the end of at most `max_redirects` redirects, its body not yet read."""
        kwargs["allow_redirects"] = False
        for hop in range(self.max_redirects + 1):
            response = super().request(method, url, **kwargs)
            self.on_headers(response)
            target = self.get_redirect_target(response)
            if not target:
                return response
            response.close()
            if hop == self.max_redirects:
                raise requests.TooManyRedirects(f"Exceeded {self.max_redirects} redirects.", response=response)
            url = urljoin(response.url, target)
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                raise requests.exceptions.InvalidSchema(f"it redirected to a {scheme}: address, not http(s)")
            self.before_redirect()
        raise AssertionError("unreachable")

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        kwargs["stream"] = True
        # A fresh connection per call: its socket is the one cut.
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Connection": "close"}
        _sockets.open = sockets = []
        expired, stopped, finished = threading.Event(), threading.Event(), threading.Event()
        late = f"its answer took longer than {self.timeout:g} s"

        def cut(why: threading.Event) -> None:
            why.set()
            for sock in sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def guard() -> None:  # the call's deadline, and its `stop` looked at every STOP_POLL seconds
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                if self.stop is not None and self.stop.is_set():
                    cut(stopped)  # again at each look: a connection opened since is cut too
                if finished.wait(left if self.stop is None else min(left, STOP_POLL)):
                    return
            cut(expired)

        if self.stop is not None and self.stop.is_set():
            raise Stopped("stopped before asking")
        threading.Thread(target=guard, name="semsearch-fetch-deadline", daemon=True).start()
        body = bytearray()
        try:
            response = self._follow(method, url, **kwargs)
            try:
                while chunk := response.raw.read1(2**16, decode_content=True):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise TooLarge(f"its answer is larger than {self.max_bytes // 2**20} MB")
            finally:
                response.close()
            finished.set()
            # The cut socket ended a body without a length as a close would: a part, not the answer.
            if stopped.is_set():
                raise Stopped("stopped while waiting for an answer")
            if expired.is_set():
                raise Overdue(late)
        except TooLarge:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
            if stopped.is_set():
                raise Stopped("stopped while waiting for an answer") from None
            if expired.is_set():
                raise Overdue(late) from None
            if isinstance(err, requests.RequestException):
                raise
            if isinstance(err, urllib3.exceptions.ReadTimeoutError):
                raise Overdue(f"its answer stalled for {self.timeout:g} s") from None
            raise BrokeOff(f"its answer broke off ({type(err).__name__})") from None
        finally:
            finished.set()
            _sockets.open = []
        response._content = bytes(body)
        return response
