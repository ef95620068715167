"""WebSocket through sheer: the upstream's 101 makes a byte tunnel both ways (nginx's upgrade), with
nginx's documented configuration (proxy_http_version 1.1, Upgrade and Connection set)."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"      # RFC 6455, 1.3


def accept_of(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame(payload: bytes, mask: bool) -> bytes:
    """A final text frame (RFC 6455, 5.2); clients mask theirs."""
    assert len(payload) < 126
    if not mask:
        return bytes([0x81, len(payload)]) + payload
    key = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(sock: socket.socket, buffer: bytearray) -> bytes:
    while len(buffer) < 2 or len(buffer) < 2 + (4 if buffer[1] & 0x80 else 0) + (buffer[1] & 0x7F):
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError(bytes(buffer))
        buffer += chunk
    masked, length = buffer[1] & 0x80, buffer[1] & 0x7F
    start = 2 + (4 if masked else 0)
    payload = bytes(buffer[start:start + length])
    if masked:
        key = buffer[2:6]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    del buffer[:start + length]
    return payload


class WebSocketEcho:
    """A WebSocket server: checks the handshake it got, answers 101 with a first message in the same
    packet, then echoes every message upper-cased."""

    def __init__(self, harness: Harness, host: str) -> None:
        self.port = harness.listen(host)
        self.sock = harness.sockets[(host, self.port)]
        self.sock.setblocking(True)
        self.heads: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            self.heads.append(head)
            fields = {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip()
                      for line in head.split(b"\r\n")[1:]}
            if fields.get(b"upgrade", b"").lower() != b"websocket":
                conn.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept_of(fields[b"sec-websocket-key"]) + b"\r\n\r\n"
                         + frame(b"welcome", mask=False))
            buffer = bytearray(rest)
            try:
                while True:
                    message = read_frame(conn, buffer)
                    if message == b"quiet":
                        continue
                    conn.sendall(frame(message.upper(), mask=False))
            except (EOFError, OSError):
                return


def handshake(port: int, key: bytes, extra: bytes = b"") -> tuple[socket.socket, bytes, bytearray]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    sock.sendall(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return sock, head, bytearray(rest)


def serve(harness: Harness, up: WebSocketEcho, settings: str = "") -> tuple[int, Path]:
    proxy = harness.listen("127.0.0.1")
    log = harness.tmp / "access.log"
    harness.serve(f"""log_format ws '$status $body_bytes_sent "$request" $upstream_status';
        server {{ listen 127.0.0.1:{proxy}; access_log {log} ws;
            location /chat {{
                proxy_pass http://127.0.0.11:{up.port};
                proxy_http_version 1.1;
                proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection "upgrade";{settings}
            }} }}""")
    return proxy, log


def test_websocket_handshake_and_messages_both_ways(harness: Harness) -> None:
    up = WebSocketEcho(harness, "127.0.0.11")
    proxy, log = serve(harness, up)
    key = base64.b64encode(os.urandom(16))
    # the client's first message goes right behind its handshake, before the 101 came
    sock, head, buffer = handshake(proxy, key, frame(b"early", mask=True))
    with sock:
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
        assert b"Connection: upgrade" in lines and b"Upgrade: websocket" in lines
        assert b"Sec-WebSocket-Accept: " + accept_of(key) in lines
        assert read_frame(sock, buffer) == b"welcome"      # sent by the upstream with its 101
        assert read_frame(sock, buffer) == b"EARLY"
        for text in (b"hello", b"x" * 100):
            sock.sendall(frame(text, mask=True))
            assert read_frame(sock, buffer) == text.upper()
    upstream_head = up.heads[0].split(b"\r\n")
    assert upstream_head[0] == b"GET /chat HTTP/1.1"
    assert b"Upgrade: websocket" in upstream_head and b"Connection: upgrade" in upstream_head
    for _ in range(300):      # the client's close ends both sides, then the line is written
        if log.exists() and log.read_text():
            break
        time.sleep(0.01)
    status, sent, rest = log.read_text().split(" ", 2)
    assert status == "101" and int(sent) == 2 * 4 + len("welcome") + len("early") + len("hello") + 100
    assert rest == '"GET /chat HTTP/1.1" 101\n'


def test_an_idle_tunnel_ends_after_proxy_read_timeout(harness: Harness) -> None:
    up = WebSocketEcho(harness, "127.0.0.11")
    proxy, _ = serve(harness, up, "\n                proxy_read_timeout 1s;")
    sock, head, buffer = handshake(proxy, base64.b64encode(os.urandom(16)))
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ")
        assert read_frame(sock, buffer) == b"welcome"
        sock.sendall(frame(b"quiet", mask=True))        # activity: the upstream answers nothing
        began = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(100) == b""                     # closed by sheer, not by the test's timeout
        assert time.monotonic() - began > 0.5
    assert "upstream timed out (110: Connection timed out) while proxying upgraded connection" \
        in harness.error_log()


def test_without_upgrade_headers_set_the_upstream_sees_a_plain_get(harness: Harness) -> None:
    up = WebSocketEcho(harness, "127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{proxy};
        location /chat {{ proxy_pass http://127.0.0.11:{up.port}; }} }}""")
    sock, head, _ = handshake(proxy, base64.b64encode(os.urandom(16)))
    with sock:
        assert head.startswith(b"HTTP/1.1 426 ")        # nginx's default: Upgrade is not passed on
    assert not any(line.lower().startswith(b"upgrade:") for line in up.heads[0].split(b"\r\n"))
