"""Request bodies as nginx reads them before proxying: proxy_request_buffering, client_body_buffer_size
($request_body), client_body_in_file_only and $request_body_file, client_max_body_size."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from test_http_harness import Harness, ScriptedUpstream, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def post(path: str, body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        return (b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"%x\r\n%s\r\n0\r\n\r\n" % (path.encode(), len(body), body))
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), len(body), body))


def header(reply: bytes, name: bytes) -> bytes | None:
    head = reply.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.lower() == name.lower():
            return value.strip()
    return None


def test_unbuffered_chunked_body_reaches_the_upstream_as_it_comes(harness: Harness) -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.11", 0))
    upstream.listen(1)
    upstream.settimeout(3)
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; proxy_request_buffering off; proxy_http_version 1.1;
        location / {{ proxy_pass http://127.0.0.11:{upstream.getsockname()[1]}; }} }}""")
    with socket.create_connection(("127.0.0.1", port), timeout=3) as client, upstream:
        client.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n")
        conn, _ = upstream.accept()       # before the body is complete: nothing waited for it
        with conn:
            conn.settimeout(3)
            seen = b""
            while not seen.endswith(b"01234\r\n"):
                seen += conn.recv(4096)
            head, _, first = seen.partition(b"\r\n\r\n")
            assert b"Transfer-Encoding: chunked" in head and first == b"5\r\n01234\r\n"
            client.sendall(b"5\r\n56789\r\n4\r\nmany\r\n0\r\n\r\n")
            rest = conn.recv(4096)        # one read's data one chunk, and the last chunk with it
            assert rest == b"9\r\n56789many\r\n0\r\n\r\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"\r\n\r\nok")


def test_too_large_chunked_body_is_413(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; client_max_body_size 1k;
        location / {{ proxy_pass http://127.0.0.11:{upstream.port}; }}
        location /off {{ proxy_request_buffering off; proxy_http_version 1.1;
                         proxy_pass http://127.0.0.11:{upstream.port}; }} }}""")
    assert exchange(port, post("/", b"x" * 1024, chunked=True)).startswith(b"HTTP/1.1 200 ")
    assert exchange(port, post("/", b"x" * 1025, chunked=True)).startswith(b"HTTP/1.1 413 ")
    assert exchange(port, post("/off", b"x" * 1025, chunked=True)).startswith(b"HTTP/1.1 413 ")
    assert exchange(port, post("/", b"x" * 1025)).startswith(b"HTTP/1.1 413 ")
    assert len(upstream.requests) == 1


def test_request_body_variables(harness: Harness, tmp_path: Path) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    port = harness.listen("127.0.0.1")
    temp = tmp_path / "bodies"
    show = 'add_header X-Body "$request_body"; add_header X-File "$request_body_file";'
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; client_body_buffer_size 100;
        client_body_temp_path {temp} 1 2; {show}
        location / {{ proxy_pass http://127.0.0.11:{upstream.port}; }}
        location /only {{ client_body_in_file_only on; proxy_pass http://127.0.0.11:{upstream.port}; }}
        location /clean {{ client_body_in_file_only clean; proxy_pass http://127.0.0.11:{upstream.port}; }}
        location /off {{ proxy_request_buffering off; proxy_pass http://127.0.0.11:{upstream.port}; }} }}""")
    small = exchange(port, post("/", b"0123456789"))
    assert header(small, b"X-Body") == b"0123456789" and header(small, b"X-File") is None
    large = exchange(port, post("/", b"a" * 101))      # past client_body_buffer_size: nginx's file
    assert header(large, b"X-Body") is None
    name = header(large, b"X-File")
    assert name is not None and name.startswith(str(temp).encode())
    assert not os.path.exists(name)                    # removed with the request
    only = exchange(port, post("/only", b"kept"))
    assert header(only, b"X-Body") is None and only.endswith(b"kept")
    kept = header(only, b"X-File")
    assert kept is not None and Path(kept.decode()).read_bytes() == b"kept"
    empty = header(exchange(port, post("/only", b"")), b"X-File")      # declared empty: an empty file
    assert empty is not None and Path(empty.decode()).read_bytes() == b""
    assert header(exchange(port, b"GET /only HTTP/1.0\r\n\r\n"), b"X-File") is None    # none declared
    clean = header(exchange(port, post("/clean", b"gone")), b"X-File")
    assert clean is not None and not os.path.exists(clean)
    unbuffered = exchange(port, post("/off", b"0123456789", chunked=True))
    assert header(unbuffered, b"X-Body") == b"0123456789" and header(unbuffered, b"X-File") is None
    assert upstream.requests[-1][1] == b"0123456789"
    # chunked to an HTTP/1.0 upstream: read whole whatever proxy_request_buffering says, as nginx
    assert header(exchange(port, post("/off", b"b" * 101, chunked=True)), b"X-File") is not None
