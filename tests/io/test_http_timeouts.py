"""A stalled peer on either side releases both sockets within its timeout, as nginx does
(client_body_timeout, buffered or streamed; proxy_send_timeout; proxy_read_timeout; send_timeout)."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest
from test_http_framing import responses, wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io


class Upstream:
    """A thread per connection: reads (or not), answers (or not), and notes when sheer hung up."""

    def __init__(self, *, read: bool = True, answer: bytes = b"", flood: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.11", 0))
        self.port = self.sock.getsockname()[1]
        self.read, self.answer, self.flood = read, answer, flood
        self.received = 0
        self.connected: list[float] = []
        self.hung_up: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connected.append(time.monotonic())
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.answer or self.flood:
                    conn.settimeout(0.2)
                    try:
                        self.received += len(conn.recv(65536))
                    except TimeoutError:
                        pass
                    conn.settimeout(None)
                    conn.sendall(self.answer)
                    conn.sendall(b"x" * self.flood)     # blocks once the proxy stops reading
                if not self.read:           # never read: watch the connection's TCP state instead
                    deadline = time.monotonic() + 30
                    while _established(conn) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.hung_up.append(time.monotonic())
                    return
                while chunk := conn.recv(65536):
                    self.received += len(chunk)
            except OSError:
                pass
        self.hung_up.append(time.monotonic())

    def close(self) -> None:
        self.sock.close()


def proxied(harness: Harness, upstream: Upstream, settings: str) -> tuple[int, Path]:
    port = harness.listen("127.0.0.1")
    log = harness.tmp / "access.log"
    harness.serve(f"""log_format st '$status $request_time';
        server {{ listen 127.0.0.1:{port}; access_log {log} st; {settings}
                 location / {{ proxy_pass http://127.0.0.11:{upstream.port}; }} }}""")
    return port, log


def gone(sock: socket.socket, timeout: float) -> bytes:
    """What the proxy sent before it closed the connection (within `timeout`)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


@pytest.mark.parametrize("sent", [1_000, 100_000])     # buffered (under 64k), then streamed
def test_a_body_that_stops_coming_is_timed_out(harness: Harness, sent: int) -> None:
    """The issue's case: 200,000 bytes declared, some sent, then silence."""
    upstream = Upstream()
    try:
        port, log = proxied(harness, upstream, "client_body_timeout 1s; client_max_body_size 0;")
        sock = socket.create_connection(("127.0.0.1", port))
        began = time.monotonic()
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n" + b"x" * sent)
        assert gone(sock, 5) == b""                     # nginx: no answer, 408 in the access log
        assert time.monotonic() - began < 4
        sock.close()
        if sent > 65536:                                # streaming: the upstream's socket goes too
            wait_for(lambda: upstream.hung_up, 3)
            assert upstream.hung_up[0] - began < 4
        else:
            assert upstream.connected == []             # a buffered body never reached an upstream
        wait_for(lambda: log.exists() and log.read_text().startswith("408 "))
    finally:
        upstream.close()


def test_an_upstream_that_stops_reading_the_body_is_timed_out(harness: Harness) -> None:
    upstream = Upstream(read=False)
    try:
        port, _ = proxied(harness, upstream, "proxy_send_timeout 1s; client_max_body_size 0;")
        sock = socket.create_connection(("127.0.0.1", port))
        body = b"x" * 20_000_000
        data = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        sender = threading.Thread(target=lambda: _send_quietly(sock, data), daemon=True)
        began = time.monotonic()
        sender.start()
        sock.settimeout(10)
        got = sock.recv(65536)          # nginx answers 504 and reads (and drops) the rest of the body
        assert got.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n")
        assert time.monotonic() - began < 6
        wait_for(lambda: upstream.hung_up, 5)
        sender.join(10)
        assert not sender.is_alive()
        assert re.search(r"upstream timed out \(110: Connection timed out\) while sending request to "
                         r"upstream", harness.error_log())
        sock.close()
    finally:
        upstream.close()


def test_an_upstream_that_says_nothing_is_timed_out(harness: Harness) -> None:
    upstream = Upstream(read=False)
    try:
        port, _ = proxied(harness, upstream, "proxy_read_timeout 1s;")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            sock.settimeout(5)
            got = responses(sock.recv(65536))
            assert got[0][0] == 504
        wait_for(lambda: upstream.hung_up, 3)
    finally:
        upstream.close()


def test_a_client_that_stops_reading_is_let_go_at_send_timeout(harness: Harness) -> None:
    upstream = Upstream(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", flood=100_000_000)
    try:
        port, _ = proxied(harness, upstream, "send_timeout 1s;")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        began = time.monotonic()
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        wait_for(lambda: upstream.hung_up, 8)           # sheer let go of the upstream too
        assert upstream.hung_up[0] - began < 6
        wait_for(lambda: "while sending to client" in harness.error_log())
        sock.close()
    finally:
        upstream.close()


def _established(conn: socket.socket) -> bool:
    return conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 1     # TCP_ESTABLISHED


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass
