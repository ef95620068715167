"""Rate limits measured on loopback: stream proxy_download_rate/proxy_upload_rate (TCP and UDP) and http
limit_rate (with limit_rate_after, X-Accel-Limit-Rate, $limit_rate). Bounds are generous: a limit is
honoured when a transfer takes at least most of the time nginx's arithmetic gives it, and an unlimited
one is much faster."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sheer_process import Sheer, TcpEcho, free_port, udp_echo, wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io

PAYLOAD = b"x" * 61440       # three seconds' worth at 20k a second: sent within about 2 s by nginx's rule


def timed_echo(port: int, payload: bytes) -> tuple[bytes, float]:
    """Send `payload`, half-close, read until the proxy closes; the bytes and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        received: list[bytes] = []

        def read() -> None:
            while chunk := sock.recv(65536):
                received.append(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        reader.join(15)
        assert not reader.is_alive(), "the proxy never closed the connection"
    return b"".join(received), time.monotonic() - started


def stream_config(echo: int, servers: list[tuple[int, str]]) -> str:
    blocks = "".join(f"""
    server {{ listen 127.0.0.1:{port}; proxy_half_close on; proxy_pass 127.0.0.11:{echo}; {extra} }}"""
                     for port, extra in servers)
    return f"stream {{\n    map $server_port $up {{ default 20k; }}{blocks}\n}}\n"


def test_tcp_download_and_upload_rates(run_sheer: Callable[..., Sheer],
                                      closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    down, up, free = free_port(), free_port(), free_port()
    run_sheer(stream_config(echo.port, [(down, "proxy_download_rate 20k;"),
                                        (up, "proxy_upload_rate $up;"),          # a variable: map's 20k
                                        (free, "proxy_download_rate 0; proxy_upload_rate 0;")]))
    data, unlimited = timed_echo(free, PAYLOAD)
    assert data == PAYLOAD
    for port in (down, up):
        data, limited = timed_echo(port, PAYLOAD)
        assert data == PAYLOAD                       # nothing lost, nothing added
        assert limited >= 1.5, limited               # 20480 B/s for each second begun: ~2 s
        assert limited < 8
    assert unlimited < 1.0, unlimited


def test_tcp_one_byte_a_second(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    """nginx's 'download - one byte': a rate of 1 lets one byte through, then pauses a second."""
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    run_sheer(stream_config(echo.port, [(port, "proxy_download_rate 1;")]))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"1234567890")
        assert sock.recv(100) == b"1"
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)                           # the next byte comes a second later, not now
        sock.settimeout(3)
        assert sock.recv(100) == b"2"


def udp_config(echo: int, servers: list[tuple[int, str]]) -> str:
    blocks = "".join(f"""
    server {{ listen 127.0.0.1:{port} udp; proxy_pass 127.0.0.11:{echo}; proxy_timeout 5s; {extra} }}"""
                     for port, extra in servers)
    return f"stream {{{blocks}\n}}\n"


def test_udp_rates_as_nginx(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    """Datagrams are never split: one passes whole, then the direction pauses for its size. A paused
    download waits (the upstream's datagrams stay queued); a paused upload drops the client's."""
    echo = closing(udp_echo("127.0.0.11"))
    down, up = free_port(kinds=(socket.SOCK_DGRAM,)), free_port(kinds=(socket.SOCK_DGRAM,))
    run_sheer(udp_config(echo.port, [(down, "proxy_download_rate 500;"), (up, "proxy_upload_rate 500;")]))
    payload = b"1234567890" * 100
    client = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    client.settimeout(5)
    client.connect(("127.0.0.1", down))
    client.send(payload)
    assert client.recv(2000) == payload
    first = time.monotonic()
    client.send(payload)
    assert client.recv(2000) == payload              # delayed, not lost
    assert time.monotonic() - first >= 1.0           # 1000 bytes at 500 B/s: a 2 s pause

    client = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    client.connect(("127.0.0.1", up))
    client.settimeout(5)
    client.send(payload)
    assert client.recv(2000) == payload
    client.settimeout(0.5)
    client.send(payload)
    with pytest.raises(TimeoutError):
        client.recv(2000)                            # dropped while paused, as nginx does
    time.sleep(1.7)
    client.settimeout(5)
    client.send(payload)
    assert client.recv(2000) == payload
    assert len(echo.peers) == 4                      # 2 downloads, 2 of 3 uploads: the dropped one never came


BIG = "y" * 30000


def fetch(port: int, path: str) -> tuple[float, dict[str, str], bytes]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return time.monotonic() - started, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def test_http_limit_rate(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        log_format rates $uri:$limit_rate;
        server {{ listen 127.0.0.11:{up};
                  location / {{ return 200 "{BIG}"; }}
                  location /accel {{ add_header X-Accel-Limit-Rate 12288; return 200 "{BIG}"; }} }}
        server {{ listen 127.0.0.1:{proxy};
                  access_log {harness.tmp}/rates.log rates;
                  limit_rate 12k;
                  location / {{ proxy_pass http://127.0.0.11:{up}; }}
                  location /after {{ limit_rate_after 40k; proxy_pass http://127.0.0.11:{up}; }}
                  location /var {{ limit_rate $arg_l; proxy_pass http://127.0.0.11:{up}; }}
                  location /accel {{ limit_rate 0; proxy_pass http://127.0.0.11:{up}; }}
                  location /accel/ignored {{ limit_rate 0; proxy_ignore_headers X-Accel-Limit-Rate;
                                             proxy_pass http://127.0.0.11:{up}/accel; }} }}""")
    limited, _, body = fetch(proxy, "/")
    assert body == BIG.encode()
    assert limited >= 0.95, limited                   # 30000 B at 12288 B/s: at least one 1 s pause
    free, _, body = fetch(proxy, "/after")           # all within limit_rate_after
    assert body == BIG.encode() and free < 1.0, free
    free, _, _ = fetch(proxy, "/var")                # $arg_l empty: nginx logs "invalid size" and no limit
    assert free < 1.0, free
    by_var, _, _ = fetch(proxy, "/var?l=12k")
    assert by_var >= 0.95, by_var
    accel, headers, body = fetch(proxy, "/accel")    # the upstream sets the rate; the header stays with us
    assert body == BIG.encode() and accel >= 0.95, accel
    assert "x-accel-limit-rate" not in headers
    free, headers, body = fetch(proxy, "/accel/ignored")     # proxy_ignore_headers: not acted on, hidden
    assert body == BIG.encode() and free < 1.0 and "x-accel-limit-rate" not in headers, free
    log = harness.tmp / "rates.log"
    wait_for(lambda: len(log.read_text().splitlines()) == 6, 5, "the access log's lines")
    lines = log.read_text().splitlines()
    assert lines == ["/:12288", "/after:12288", "/var:0", "/var:12288", "/accel:12288", "/accel/ignored:0"]
    assert 'invalid size ""' in harness.error_log()


def test_http_limit_rate_of_static_files(harness: Harness) -> None:
    """A file is sent at limit_rate's pace too (it would go with sendfile at once), X-Accel-Limit-Rate
    holds across an X-Accel-Redirect to a file, and a client that leaves mid-way costs nothing."""
    (harness.tmp / "www").mkdir()
    (harness.tmp / "www" / "big").write_text(BIG)
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
                  location / {{ add_header X-Accel-Redirect /files/big; add_header X-Accel-Limit-Rate 12288;
                               return 204; }} }}
        server {{ listen 127.0.0.1:{proxy}; root {harness.tmp}/www;
                  location /limited/ {{ limit_rate 12k; alias {harness.tmp}/www/; }}
                  location /after/ {{ limit_rate 12k; limit_rate_after 40k; alias {harness.tmp}/www/; }}
                  location /files/ {{ internal; alias {harness.tmp}/www/; }}
                  location /accel {{ proxy_pass http://127.0.0.11:{up}; }} }}""")
    free, _, body = fetch(proxy, "/big")
    assert body == BIG.encode() and free < 1.0, free
    limited, headers, body = fetch(proxy, "/limited/big")
    assert body == BIG.encode() and headers["content-length"] == str(len(BIG))
    assert limited >= 0.95, limited                   # 30000 B at 12288 B/s: at least one 1 s pause
    after, _, body = fetch(proxy, "/after/big")      # all within limit_rate_after
    assert body == BIG.encode() and after < 1.0, after
    accel, _, body = fetch(proxy, "/accel")
    assert body == BIG.encode() and accel >= 0.95, accel
    with socket.create_connection(("127.0.0.1", proxy), timeout=5) as sock:   # leaves after the head
        sock.sendall(b"GET /limited/big HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    again, _, body = fetch(proxy, "/big")            # the worker is free for the next client
    assert body == BIG.encode() and again < 1.0, again


def test_http_set_limit_rate_on_files(harness: Harness) -> None:
    """A rate from `set $limit_rate` paces a file as limit_rate does."""
    files = harness.tmp / "files"
    files.mkdir()
    (files / "big").write_bytes(BIG.encode())
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy}; root {files};
                  location /set/ {{ alias {files}/; set $limit_rate $arg_l; }} }}""")
    by_set, _, body = fetch(proxy, "/set/big?l=12k")
    assert body == BIG.encode() and by_set >= 0.95, by_set
    free, _, _ = fetch(proxy, "/set/big")            # $arg_l empty: no change, no limit
    assert free < 1.0, free


def test_http_limit_rate_on_a_compressed_file(harness: Harness) -> None:
    """limit_rate paces what gzip makes of a file (incompressible bytes: as many as the file)."""
    import gzip
    import os
    files = harness.tmp / "files"
    files.mkdir()
    data = os.urandom(30000)
    (files / "noise.html").write_bytes(data)
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy}; root {files}; gzip on; location / {{ limit_rate 12k; }} }}""")
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
    conn.request("GET", "/noise.html", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    took = time.monotonic() - started
    assert response.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == data
    assert took >= 0.95, took
