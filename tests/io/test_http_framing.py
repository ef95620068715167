"""HTTP framing as strict as nginx both ways: an upstream cannot slip a second response into the
next request's answer; bad requests get nginx's status, its log line and their place after the
good requests pipelined before them; HTTP/0.9; absolute-form targets."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io


class RawUpstream:
    """A thread that answers each request it reads with `answer(request_head)` bytes in one send()."""

    def __init__(self, host: str, answer: Callable[[bytes], bytes]) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.connections = 0
        self.heads: list[bytes] = []
        self.closed: list[float] = []          # when sheer closed each connection
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    while b"\r\n\r\n" in data:
                        head, _, data = data.partition(b"\r\n\r\n")
                        self.heads.append(head)
                        conn.sendall(self.answer(head))
            except OSError:
                pass
        self.closed.append(time.monotonic())

    def close(self) -> None:
        self.sock.close()


def responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Split a response stream (Content-Length framing, as sheer's own pages and these tests use)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        length = int(fields.get(b"content-length", b"0"))
        out.append((status, fields, rest[:length]))
        data = rest[length:]
    return out


def exchange(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            pass
        return got


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG"
POISON_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG")


@pytest.mark.parametrize(("answer", "warning"), [
    (POISON, 'upstream sent more data than specified in "Content-Length" header while reading upstream'),
    (POISON_CHUNKED, "upstream sent data after final chunk while reading upstream"),
])
def test_an_upstream_answering_twice_in_one_packet_poisons_nothing(harness: Harness, answer: bytes,
                                                                    warning: str) -> None:
    upstream = RawUpstream("127.0.0.11", lambda head: answer)
    try:
        port = harness.listen("127.0.0.1")
        harness.serve(f"""upstream origin {{ server 127.0.0.11:{upstream.port}; keepalive 4; }}
            server {{ listen 127.0.0.1:{port}; location / {{ proxy_http_version 1.1;
                      proxy_set_header Connection ""; proxy_pass http://origin; }} }}""")
        request = b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            for n in range(3):                    # keepalive: each answer must be its own request's
                sock.sendall(request % n)
                got = b""
                while not got.endswith(b"OK") and b"WRONG" not in got and b"0\r\n\r\n" not in got[-5:]:
                    got += sock.recv(65536)
                assert b"WRONG" not in got
                assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        assert upstream.connections == 3          # a connection that said too much is never reused
        wait_for(lambda: warning in harness.error_log())
        assert re.search(r"\[warn\] .*" + re.escape(warning) + r", client: 127\.0\.0\.1, server: , "
                         r'request: "GET /0 HTTP/1\.1", upstream: "http://127\.0\.0\.11:\d+/0", host: "a"',
                         harness.error_log())
    finally:
        upstream.close()


def return_server(harness: Harness, extra: str = "") -> tuple[int, Path]:
    port = harness.listen("127.0.0.1")
    log = harness.tmp / "access.log"
    harness.serve(f"""log_format st '$status "$request"';
        server {{ listen 127.0.0.1:{port}; access_log {log} st; {extra}
                 location / {{ return 200 "ok"; }} }}""")
    return port, log


def test_a_bad_request_is_answered_after_the_good_ones_before_it(harness: Harness) -> None:
    port, log = return_server(harness)
    good = b"GET /g HTTP/1.1\r\nHost: a\r\n\r\n"
    got = responses(exchange(port, good * 10 + b"G@T /bad HTTP/1.1\r\nHost: a\r\n\r\n" + good * 10))
    assert [status for status, _, _ in got] == [200] * 10 + [400]       # then the connection closed
    assert got[-1][1][b"connection"] == b"close" and b"<title>400 Bad Request</title>" in got[-1][2]
    wait_for(lambda: "client sent invalid method" in harness.error_log())
    assert re.search(r"\[info\] .*client sent invalid method while reading client request line, "
                     r"client: 127\.0\.0\.1, server: , request: \"G@T /bad HTTP/1\.1\"", harness.error_log())
    wait_for(lambda: len(log.read_text().splitlines()) == 11)
    assert log.read_text().splitlines()[-1] == '400 "G@T /bad HTTP/1.1"'


@pytest.mark.parametrize(("request_bytes", "status", "page"), [
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, b"505 HTTP Version Not Supported"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: a/../b\r\n\r\n", 400, b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501, b"501 Not Impl"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, b"501 Not Implemented"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tchunked\r\n\r\n", 501, b"501 Not Implemented"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, b"501 Not Implemented"),
    (b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n', 501, b"501 Not Implemented"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", 400, b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413, b"413 Request Entity Too Large"),
    (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, b"414 Request-URI Too Large"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nCookie: " + b"x" * 9000 + b"\r\n\r\n", 400,
     b"400 Request Header Or Cookie Too Large"),
    (b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405, b"405 Not Allowed"),
])
def test_framing_errors_get_nginx_status(harness: Harness, request_bytes: bytes, status: int,
                                         page: bytes) -> None:
    port, log = return_server(harness)
    got = responses(exchange(port, request_bytes))
    assert len(got) == 1
    assert got[0][0] == status and got[0][1][b"connection"] == b"close" and page in got[0][2]
    wait_for(lambda: log.exists() and log.read_text().startswith(f"{status} "))


def test_http09_as_nginx(harness: Harness) -> None:
    port, _ = return_server(harness)
    assert exchange(port, b"GET /\r\n") == b"ok"                  # the body alone, then the close
    page = exchange(port, b"POST /\r\n")
    assert page.startswith(b"<html>") and b"<title>400 Bad Request</title>" in page
    wait_for(lambda: "client sent invalid method in HTTP/0.9 request" in harness.error_log())


def test_a_stalled_head_is_closed_at_client_header_timeout(harness: Harness) -> None:
    port, log = return_server(harness, "client_header_timeout 1s;")
    began = time.monotonic()
    assert exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=5) == b""    # no answer: a close
    assert 0.9 <= time.monotonic() - began < 3
    wait_for(lambda: log.exists() and log.read_text().startswith('408 "GET / HTTP/1.1"'))
    assert re.search(r"\[info\] .*client timed out \(110: Connection timed out\) while reading client "
                     r"request headers", harness.error_log())


def test_absolute_form_goes_upstream_in_origin_form(harness: Harness) -> None:
    upstream = RawUpstream("127.0.0.11", lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    try:
        port = harness.listen("127.0.0.1")
        harness.serve(f"""server {{ listen 127.0.0.1:{port}; location / {{ proxy_set_header Host $host;
                          proxy_pass http://127.0.0.11:{upstream.port}; }} }}""")
        got = responses(exchange(port, b"GET http://Example.COM:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n"
                                       b"Connection: close\r\n\r\n"))
        assert got[0][0] == 200
        wait_for(lambda: upstream.heads)
        assert upstream.heads[0].startswith(b"GET /p?q=1 HTTP/1.0\r\nHost: example.com\r\n")
    finally:
        upstream.close()


def test_a_tls_handshake_is_refused_at_once_and_logged_escaped(harness: Harness) -> None:
    port, log = return_server(harness)
    got = responses(exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))     # no newline in it
    assert got[0][0] == 400
    wait_for(lambda: log.exists() and log.read_text())
    assert log.read_text() == '400 "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03"\n'


def test_expect_100_continue_is_answered_as_nginx(harness: Harness) -> None:
    """nginx says `100 Continue` before it reads or drops a body, even when none is declared; not
    before an error page."""
    port, _ = return_server(harness)
    got = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    got = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 9999999\r\n\r\n", timeout=1)
    assert got.startswith(b"HTTP/1.1 413 ")
