"""The TLS transport of `listen ... ssl` (sheer.io.tls_transport): OpenSSL on the socket, with the
transport interface the HTTP proxy uses. Large answers to a slow reader (SSL_write retried after
WANT_WRITE, pause_writing/resume_writing), a large upload through a proxy (pause_reading while the
upstream is slow), pipelined requests, keepalive, and the close: close_notify both ways."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
import trustme
from test_http_harness import Harness, harness_fixture  # noqa: F401
from tls_kit import Files, client_context, connect, issue

pytestmark = pytest.mark.io

BIG = bytes(range(256)) * 16384          # 4 MiB


@pytest.fixture(name="tls")
def tls_fixture(harness: Harness, tmp_path: Path) -> tuple[int, Files]:
    files = issue(trustme.CA(), tmp_path, "a.test")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "big").write_bytes(BIG)
    up = digest_upstream()
    port = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {files.cert}; ssl_certificate_key {files.key};
                  client_max_body_size 16m; root {tmp_path}/www;
                  location /n {{ return 200 "$request_uri\\n"; }}
                  location /up {{ proxy_pass http://127.0.0.11:{up}; }} }}""")
    return port, files


def digest_upstream() -> int:
    """An upstream that reads a request with a Content-Length body and answers the body's SHA-256."""
    listener = socket.create_server(("127.0.0.11", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                time.sleep(0.001)         # a slow upstream: sheer must stop reading the client meanwhile
                body += conn.recv(65536)
            answer = hashlib.sha256(body).hexdigest().encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(answer), answer))
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def read_answer(sock: ssl.SSLSocket, slow: bool = False) -> tuple[bytes, bytes]:
    """One answer with a Content-Length: head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length:")))
    while len(rest) < length:
        rest += sock.recv(16384)
        if slow:
            time.sleep(0.001)
    assert len(rest) == length
    return head, rest


def test_a_large_file_to_a_slow_reader_arrives_whole(tls: tuple[int, Files]) -> None:
    port, files = tls
    with connect(port, "a.test", client_context(files.ca)) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
        time.sleep(0.5)                   # the server fills the socket and waits (WANT_WRITE)
        head, body = read_answer(sock, slow=True)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()
        sock.sendall(b"GET /n?after HTTP/1.1\r\nHost: a.test\r\n\r\n")    # the connection goes on
        assert read_answer(sock)[1] == b"/n?after\n"


def test_a_large_upload_through_the_proxy(tls: tuple[int, Files]) -> None:
    port, files = tls
    with connect(port, "a.test", client_context(files.ca)) as sock:
        head = b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % len(BIG)
        sender = threading.Thread(target=sock.sendall, args=(head + BIG,))
        sender.start()
        answer = read_answer(sock)
        sender.join(10)
        assert answer[0].startswith(b"HTTP/1.1 200 OK")
        assert answer[1] == hashlib.sha256(BIG).hexdigest().encode()     # all of it, in order


def test_pipelined_requests_are_answered_in_order(tls: tuple[int, Files]) -> None:
    port, files = tls
    with connect(port, "a.test", client_context(files.ca)) as sock:
        sock.sendall(b"".join(b"GET /n%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n for n in range(200)))
        for n in range(200):
            assert read_answer(sock)[1] == b"/n%d\n" % n


def test_records_that_arrive_together_are_all_read(tls: tuple[int, Files]) -> None:
    """A readable event reads a record while OpenSSL holds none decrypted (sheer.io.tls_transport): the
    records already in the socket are read on the events that follow. 51 records in one segment here."""
    port, files = tls
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context(files.ca).wrap_bio(incoming, outgoing, server_hostname="a.test")
    while True:
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))
    for n in range(50):
        client.write(b"GET /n%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % n)      # a record each
    client.write(b"GET /nlast HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    raw.sendall(outgoing.read())             # the client's Finished and the 51 records at once
    answers = b""
    with raw:
        while data := raw.recv(65536):
            incoming.write(data)
            try:
                while piece := client.read(65536):      # b"": the server's close_notify
                    answers += piece
            except ssl.SSLWantReadError:
                pass
    bodies = [answer.partition(b"\r\n\r\n")[2] for answer in answers.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"/n%d\n" % n for n in range(50)] + [b"/nlast\n"]


def test_close_notify_both_ways(tls: tuple[int, Files]) -> None:
    port, files = tls
    ctx = client_context(files.ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="a.test", suppress_ragged_eofs=False) as sock:
        sock.sendall(b"GET /n HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        assert read_answer(sock)[1] == b"/n\n"
        assert sock.recv(100) == b""      # the server's close_notify: a clean end, no ragged EOF
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="a.test") as sock:
        sock.sendall(b"GET /n HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert read_answer(sock)[1] == b"/n\n"
        plain = sock.unwrap()             # ours, answered by the server's close_notify
        assert plain.recv(100) == b""     # then the server closes the connection
        plain.close()
