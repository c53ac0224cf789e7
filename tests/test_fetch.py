"""The bounded HTTP session every network source reads through (semsearch.fetch), against real
local servers: plain HTTP and HTTPS with a certificate made for the test."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from semsearch.fetch import BoundedSession, BrokeOff, Overdue, TooLarge
from tests.local_server import Serving


def _send(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_an_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_too_large():
    """`max_bytes` is the most an answer may be: that many bytes are the answer, one more is refused,
    and the refusal names the limit in MB."""
    limit = 2**20
    for size, fits in ((limit, True), (limit + 1, False)):
        with Serving(lambda handler, size=size: _send(handler, b"x" * size)) as serving:
            with BoundedSession(10, limit) as session:
                if fits:
                    assert len(session.get(serving.url).content) == limit
                else:
                    with pytest.raises(TooLarge, match=r"^its answer is larger than 1 MB$"):
                        session.get(serving.url)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A server context and the file of its self-signed certificate, made for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)


def test_an_https_answer_is_read_whole(tls):
    context, cert_file = tls
    with Serving(lambda handler: _send(handler, b"# Papers\n"), context) as serving:
        with BoundedSession(10, 2**20) as session:
            assert session.get(serving.url, verify=cert_file).content == b"# Papers\n"


def test_an_https_server_trickling_its_headers_is_cut_at_the_deadline_too(tls):
    """The deadline shuts the socket of an https call as of an http one (arXiv and GitHub are
    https): a byte every 20 ms restarts requests' own timeout, so only the cut ends the call."""
    context, cert_file = tls

    def trickle(handler):
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: yes\r\n" * 1000:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.02)

    started = time.monotonic()
    with Serving(trickle, context) as serving, BoundedSession(0.5, 2**20) as session:
        with pytest.raises(Overdue, match=r"^its answer took longer than 0.5 s$"):
            session.get(serving.url, verify=cert_file)
    assert time.monotonic() - started < 3


def test_a_call_after_a_cut_one_gets_its_own_deadline():
    """Each call's timer cuts only its own sockets: a call after an overdue one is read whole."""
    calls = []

    def answer(handler):
        calls.append(handler.path)
        if len(calls) == 1:
            handler.send_response(200)
            handler.end_headers()
            try:
                for _ in range(100):
                    handler.wfile.write(b"x")
                    handler.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass
        else:
            _send(handler, b"whole")

    with Serving(answer) as serving, BoundedSession(0.4, 2**20) as session:
        with pytest.raises(Overdue):
            session.get(serving.url)
        assert session.get(serving.url).content == b"whole"


def test_a_redirect_from_http_to_https_is_followed(tls):
    """arXiv's move to https is such a hop: the answer is the one at the https address."""
    context, cert_file = tls
    with Serving(lambda handler: _send(handler, b"# Papers\n"), context) as secure:

        def moved(handler):
            handler.send_response(301)
            handler.send_header("Location", secure.url)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with Serving(moved) as plain, BoundedSession(10, 2**20) as session:
            response = session.get(plain.url, verify=cert_file)
    assert response.url == secure.url and response.content == b"# Papers\n"


def test_the_callers_headers_are_sent_and_every_call_asks_for_its_connection_to_be_closed():
    """A connection kept alive would serve the next call on a socket that call's deadline cannot
    cut (it cuts the sockets its own call opened): each call asks for `Connection: close`, beside
    the headers its caller gave (arXiv and GitHub are told who asks)."""
    seen = []

    def answer(handler):
        seen.append(dict(handler.headers))
        _send(handler, b"ok")

    with Serving(answer) as serving, BoundedSession(10, 2**20) as session:
        session.get(serving.url, headers={"User-Agent": "semsearch-test"})
    assert seen[0]["User-Agent"] == "semsearch-test"
    assert seen[0]["Connection"].lower() == "close"  # the token is case-insensitive (RFC 9110)


def test_a_server_that_never_completes_the_connection_is_given_up_at_the_deadline():
    """The deadline's timer cuts the sockets a call has connected; one still connecting is bounded
    by the timeout requests is given. A listening socket whose queue is full drops each new
    connection's first packet, so the connection never completes (the kernel tries for minutes)."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(0)
    port = listening.getsockname()[1]
    queued = []
    for _ in range(3):  # fill the queue: it holds one more than the backlog of 0
        waiting = socket.socket()
        waiting.setblocking(False)
        waiting.connect_ex(("127.0.0.1", port))
        queued.append(waiting)
    time.sleep(0.2)
    started = time.monotonic()
    try:
        with BoundedSession(0.5, 2**20) as session, pytest.raises(requests.Timeout):
            session.get(f"http://127.0.0.1:{port}/list.md")
    finally:
        for sock in (*queued, listening):
            sock.close()
    assert time.monotonic() - started < 3


def test_redirects_past_the_limit_end_in_too_many_redirects_carrying_the_last_answer():
    hops = []

    def loop(handler):
        hops.append(handler.path)
        handler.send_response(302)
        handler.send_header("Location", f"/hop{len(hops)}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with Serving(loop) as serving, BoundedSession(10, 2**20) as session:
        with pytest.raises(requests.TooManyRedirects, match=r"^Exceeded 3 redirects\.$") as raised:
            session.get(serving.url)
    assert hops == ["/README.md", "/hop1", "/hop2", "/hop3"]
    assert raised.value.response.status_code == 302 and raised.value.response.url.endswith("/hop3")


def test_an_answer_shorter_than_its_length_broke_off_and_says_how():
    def short(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b"x" * 10)

    with Serving(short) as serving, BoundedSession(10, 2**20) as session:
        with pytest.raises(BrokeOff) as raised:
            session.get(serving.url)
    assert str(raised.value) == "its answer broke off (ProtocolError)"  # urllib3's name for it
