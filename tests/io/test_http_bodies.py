"""Request and response bodies through the proxy: chunked both ways, large streamed bodies, keepalive."""

from __future__ import annotations

import http.client
import os
import socket

import pytest
from test_http_harness import Harness, ScriptedUpstream, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io


def proxy_to(h: Harness, upstream: ScriptedUpstream, extra: str = "") -> int:
    port = h.listen("127.0.0.1")
    h.serve(f"""upstream origin {{ server 127.0.0.11:{upstream.port}; keepalive 4; }}
        server {{ listen 127.0.0.1:{port}; location / {{ {extra} proxy_pass http://origin; }} }}""")
    return port


def chunks(data: bytes, size: int = 7000):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_chunked_request_to_http11_upstream_stays_chunked(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = proxy_to(harness, upstream, 'proxy_http_version 1.1; proxy_set_header Connection "";')
    data = os.urandom(300_000)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    conn.request("POST", "/chunked", body=chunks(data), encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == data
    head, body = upstream.requests[-1]
    assert b"Transfer-Encoding: chunked" in head and body == data


def test_chunked_request_to_http10_upstream_gets_a_length(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = proxy_to(harness, upstream)
    data = b"x" * 1000
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    conn.request("POST", "/length", body=chunks(data, 100), encode_chunked=True)
    response = conn.getresponse()
    assert response.read() == data and response.getheader("Content-Length") == "1000"
    head, _ = upstream.requests[-1]
    assert head.startswith(b"POST /length HTTP/1.0\r\n") and b"Content-Length: 1000\r\n" in head
    assert b"Connection: close\r\n" in head


def test_large_bodies_stream_intact(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = proxy_to(harness, upstream, "client_max_body_size 0;")
    data = os.urandom(5 * 1024 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("PUT", "/length", body=data)
    response = conn.getresponse()
    assert response.getheader("Content-Length") == str(len(data))
    assert response.read() == data
    conn.request("GET", "/big/4194304")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == bytes(range(256)) * (4194304 // 256)


def test_close_delimited_response_to_http10_and_http11_clients(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = proxy_to(harness, upstream)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    conn.request("POST", "/close", body=b"hello")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked" and response.read() == b"hello"
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(b"POST /close HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 X\r\n") and b"Connection: close\r\n" in reply
    assert reply.endswith(b"\r\n\r\nabc")


def test_head_and_no_body_statuses(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = proxy_to(harness, upstream)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    conn.request("HEAD", "/length")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    conn.request("GET", "/status/204")
    response = conn.getresponse()
    assert response.status == 204 and response.read() == b""
    conn.request("GET", "/length")   # the connection is still in sync
    assert conn.getresponse().status == 200


def test_keepalive_client_many_requests_one_connection(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = proxy_to(harness, upstream)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    for i in range(5):
        conn.request("POST", "/length", body=b"n%d" % i)
        response = conn.getresponse()
        assert response.getheader("Connection") == "keep-alive"
        assert response.read() == b"n%d" % i
    conn.request("GET", "/chunked")
    assert conn.getresponse().read() == b""
    sock = conn.sock
    assert sock is not None
    with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
        raw.sendall(b"GET /length HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                    b"GET /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    assert reply.count(b"HTTP/1.1 200 X") == 2
    assert b"Connection: keep-alive" in reply and reply.endswith(b"Connection: close\r\n\r\n")
