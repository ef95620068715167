"""PROXY protocol on loopback: sending to stream upstreams (TCP v1/v2, UDP v2), accepting it (stream
and http) with realip, malformed and slow headers; and the http client-address headers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from sheer_process import Sheer, TcpEcho, UdpServer, free_port, wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401

from sheer.core import proxy_protocol

pytestmark = pytest.mark.io


def exchange(port: int, chunks: list[bytes], timeout: float = 5.0) -> bytes:
    """Send `chunks` (with a pause between them), half-close, read until the proxy closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.02)
        sock.shutdown(socket.SHUT_WR)
        data = []
        while piece := sock.recv(65536):
            data.append(piece)
        return b"".join(data)


def stream(port: int, body: str, upstream_port: int | None = None, listen: str = "") -> str:
    target = f"proxy_pass 127.0.0.11:{upstream_port};" if upstream_port else ""
    return f"""stream {{
    server {{
        listen 127.0.0.1:{port}{listen};
        {body}
        {target}
    }}
}}
"""


@pytest.mark.parametrize("version", [1, 2])
def test_send_to_tcp_upstream(version: int, run_sheer: Callable[..., Sheer],
                              closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    run_sheer(stream(port, f"proxy_protocol on; proxy_protocol_version {version}; proxy_half_close on;",
                     echo.port))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        client = sock.getsockname()
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        got = b"".join(iter(lambda: sock.recv(65536), b""))
    expected = (proxy_protocol.v1 if version == 1 else proxy_protocol.v2)(client, ("127.0.0.1", port))
    assert got == expected + b"hello"     # the echo returns exactly what the upstream received


def test_accept_with_realip_then_send_on(run_sheer: Callable[..., Sheer],
                                         closing: Callable[[Any], Any]) -> None:
    """A load balancer in front -> sheer -> upstream: the upstream's header names the original client."""
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    run_sheer(stream(port, "set_real_ip_from 127.0.0.0/8; proxy_protocol on;", echo.port, " proxy_protocol"))
    header = f"PROXY TCP4 203.0.113.7 127.0.0.1 4242 {port}\r\n".encode()
    # The header arrives in pieces and the payload in the same segment as its end.
    got = exchange(port, [header[:3], header[3:20], header[20:] + b"payload"])
    assert got == f"PROXY TCP4 203.0.113.7 127.0.0.1 4242 {port}\r\n".encode() + b"payload"


@pytest.mark.parametrize(("trusted", "expected"), [
    ("127.0.0.1", "2001:db8::7 2001:db8::7 4242 2001:db8::1 443 127.0.0.1"),
    ("10.0.0.0/8", "127.0.0.1 2001:db8::7 4242 2001:db8::1 443 127.0.0.1"),
])
def test_accept_variables(trusted: str, expected: str, run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    shown = ("$remote_addr $proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr "
             "$proxy_protocol_server_port $realip_remote_addr")
    run_sheer(stream(port, f'set_real_ip_from {trusted}; return "{shown}";', listen=" proxy_protocol"))
    header = proxy_protocol.v2(("2001:db8::7", 4242), ("2001:db8::1", 443))
    assert exchange(port, [header]).decode() == expected


def test_malformed_header_closes_with_a_log_line(run_sheer: Callable[..., Sheer],
                                                 closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    proxy = run_sheer(stream(port, "", echo.port, " proxy_protocol"))
    assert exchange(port, [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]) == b""
    proxy.wait_log('broken header: "GET / HTTP/1.1" while reading PROXY protocol, client: 127.0.0.1')
    assert exchange(port, [b"PROXY TCP4 1.2.3.4 5.6.7.8 80 065535\r\n"]) == b""
    proxy.wait_log('broken header: "PROXY TCP4 1.2.3.4 5.6.7.8 80 065535"')
    assert echo.connections == 0


def test_slow_header_times_out(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    proxy = run_sheer(stream(port, "proxy_protocol_timeout 500ms;", echo.port, " proxy_protocol"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PROXY TCP4 ")
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert 0.3 < time.monotonic() - started < 3
    proxy.wait_log("client timed out (110: Connection timed out) while reading PROXY protocol, client: "
                   "127.0.0.1")
    assert echo.connections == 0


def test_udp_v2_on_the_first_datagram(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    seen: list[bytes] = []
    upstream = closing(UdpServer("127.0.0.11", 0, lambda data, _peer: seen.append(data) or [b"ok"]))
    port = free_port(kinds=(socket.SOCK_DGRAM,))
    run_sheer(f"""stream {{
    server {{
        listen 127.0.0.1:{port} udp;
        proxy_protocol on;
        proxy_pass 127.0.0.11:{upstream.port};
    }}
}}
""")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.connect(("127.0.0.1", port))
        for payload in (b"first", b"second"):
            sock.send(payload)
            assert sock.recv(100) == b"ok"
        client = sock.getsockname()
    header = proxy_protocol.v2(client, ("127.0.0.1", port), "dgram")
    assert header[13] == 0x12       # AF_INET, DGRAM
    assert seen == [header + b"first", b"second"]


# --- http --------------------------------------------------------------------------------------

ECHO_ADDRESS = 'return 200 "$http_x_real_ip|$http_x_forwarded_for|$http_forwarded";'
SET_HEADERS = """proxy_set_header X-Real-IP $remote_addr;
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                 proxy_set_header Forwarded $proxy_add_forwarded;"""


def raw_http(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def test_http_listen_proxy_protocol_sets_the_client_headers(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up}; location / {{ {ECHO_ADDRESS} }} }}
        server {{ listen 127.0.0.1:{proxy} proxy_protocol;
                  set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;
                  location / {{ {SET_HEADERS} proxy_pass http://127.0.0.11:{up}; }} }}""")
    header = proxy_protocol.v1(("2001:db8::1", 4711), ("2001:db8::80", 80))
    request = (b"GET / HTTP/1.1\r\nHost: example.com:8080\r\nX-Forwarded-For: 10.0.0.1\r\n"
               b"Connection: close\r\n\r\n")
    assert body_of(raw_http(proxy, header + request)) == \
        b'2001:db8::1|10.0.0.1, 2001:db8::1|for="[2001:db8::1]:4711";host="example.com:8080";proto=http'


@pytest.mark.parametrize(("recursive", "expected"), [("off", b"127.0.0.5"), ("on", b"203.0.113.9")])
def test_http_real_ip_from_x_forwarded_for(harness: Harness, recursive: str, expected: bytes) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up}; location / {{ {ECHO_ADDRESS} }} }}
        server {{ listen 127.0.0.1:{proxy};
                  set_real_ip_from 127.0.0.0/8; real_ip_header X-Forwarded-For; real_ip_recursive {recursive};
                  location / {{ {SET_HEADERS} proxy_pass http://127.0.0.11:{up}; }} }}""")
    request = (b"GET / HTTP/1.0\r\nHost: a\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n"
               b"X-Forwarded-For: 127.0.0.5\r\n\r\n")
    real_ip, forwarded_for, forwarded = body_of(raw_http(proxy, request)).split(b"|")
    assert real_ip == expected
    assert forwarded_for == b"198.51.100.1, 203.0.113.9, 127.0.0.5, " + expected
    assert forwarded == b"for=" + expected + b";host=a;proto=http"


def test_http_malformed_proxy_header_closes(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f'server {{ listen 127.0.0.1:{port} proxy_protocol; location / {{ return 200 "x"; }} }}')
    assert raw_http(port, b"GET / HTTP/1.0\r\n\r\n") == b""
    wait_for(lambda: "broken header" in harness.error_log(), what="the broken header log line")
    broken = 'broken header: "GET / HTTP/1.0" while reading PROXY protocol, client: 127.0.0.1'
    assert broken in harness.error_log()
    ok = proxy_protocol.v2(("192.0.2.1", 1), ("192.0.2.2", 80)) + b"GET / HTTP/1.0\r\n\r\n"
    assert body_of(raw_http(port, ok)) == b"x"


@pytest.mark.parametrize("half_close", ["off", "on"])
def test_header_payload_and_eof_in_one_segment_reach_the_upstream(
        half_close: str, run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    """The PROXY header, the data after it and the client's EOF arrive together; the upstream
    connects at once: the data must still be sent, before the EOF is passed on."""
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    run_sheer(stream(port, f"proxy_half_close {half_close};", echo.port, listen=" proxy_protocol"))
    for n in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"PROXY TCP4 203.0.113.7 127.0.0.1 4242 {port}\r\n".encode() + b"payload %d" % n)
            sock.shutdown(socket.SHUT_WR)
            got = b"".join(iter(lambda: sock.recv(65536), b""))
        if half_close == "on":
            assert got == b"payload %d" % n       # echoed back: the session waited for both EOFs
    # each connection's own bytes: the echo's threads may record two connections out of order
    expected = [b"payload 0", b"payload 1", b"payload 2"]
    wait_for(lambda: [bytes(s) for s in echo.streams] == expected, what="every payload upstream")
