"""stream `listen ... ssl` (terminated, plain to the upstream) and `proxy_ssl on` (TLS to the upstream),
with a real master: the bytes, the $ssl_* variables in the access log, a verification failure, and
broken or stalled handshakes bounded by ssl_handshake_timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from sheer_process import Sheer, TcpEcho, free_port, wait_for
from tls_kit import client_context, connect, issue

pytestmark = pytest.mark.io


def test_stream_termination_and_origination(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    ca = trustme.CA()
    files = issue(ca, tmp_path, "a.test")
    other = issue(trustme.CA(), tmp_path, "other")
    echo = TcpEcho("127.0.0.1")
    terminated, originated, both, wrong_ca, tls_upstream = (free_port() for _ in range(5))
    log = tmp_path / "stream.log"
    pair = f"ssl_certificate {files.cert}; ssl_certificate_key {files.key};"
    sheer = run_sheer(f"""
events {{}}
stream {{
    log_format t '$ssl_protocol|$ssl_server_name|$upstream_addr|$status|$bytes_received|$bytes_sent';
    access_log {log} t;
    ssl_handshake_timeout 1s;
    server {{ listen 127.0.0.1:{terminated} ssl; {pair} proxy_pass 127.0.0.1:{echo.port}; }}
    server {{ listen 127.0.0.1:{tls_upstream} ssl; {pair} proxy_pass 127.0.0.1:{echo.port}; }}
    server {{ listen 127.0.0.1:{originated}; proxy_ssl on; proxy_ssl_verify on; proxy_ssl_name a.test;
             proxy_ssl_server_name on; proxy_ssl_trusted_certificate {files.ca};
             proxy_pass 127.0.0.1:{tls_upstream}; }}
    server {{ listen 127.0.0.1:{both} ssl; {pair} proxy_ssl on; proxy_pass 127.0.0.1:{tls_upstream}; }}
    server {{ listen 127.0.0.1:{wrong_ca}; proxy_ssl on; proxy_ssl_verify on;
             proxy_ssl_trusted_certificate {other.ca}; proxy_pass 127.0.0.1:{tls_upstream}; }}
}}
""")
    ctx = client_context(files.ca)
    with connect(terminated, "a.test", ctx) as tls:           # TLS in, plain to the echo
        tls.sendall(b"hello over TLS\n")
        assert tls.recv(100) == b"hello over TLS\n"
    with socket.create_connection(("127.0.0.1", originated), timeout=5) as sock:   # plain in, TLS out
        sock.sendall(b"plain in\n")
        assert sock.recv(100) == b"plain in\n"
    with connect(both, "a.test", ctx) as tls:                 # TLS on both sides
        tls.sendall(b"both\n")
        assert tls.recv(100) == b"both\n"
    with socket.create_connection(("127.0.0.1", wrong_ca), timeout=5) as sock:
        sock.sendall(b"refused\n")
        assert sock.recv(100) == b""
    # OpenSSL's 20 (unable to get local issuer certificate): the upstream's chain is its leaf only
    sheer.wait_log("upstream SSL certificate verify error: (20:unable to get local issuer certificate) while "
                   f'SSL handshaking to upstream, client: 127.0.0.1, server: 127.0.0.1:{wrong_ca}, '
                   f'upstream: "127.0.0.1:{tls_upstream}"')
    lines = lambda: log.read_text().splitlines() if log.exists() else []
    wait_for(lambda: len(lines()) >= 6, what="six sessions logged")
    logged = set(lines())
    assert f"TLSv1.3|a.test|127.0.0.1:{echo.port}|200|15|15" in logged
    assert f"||127.0.0.1:{tls_upstream}|502|8|0" in logged
    assert f"TLSv1.3|a.test|127.0.0.1:{tls_upstream}|200|5|5" in logged

    # garbage and silence: closed, logged as nginx does, within ssl_handshake_timeout
    with socket.create_connection(("127.0.0.1", terminated), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while sock.recv(100):           # an alert maybe, then the close
            pass
    sheer.wait_log("SSL_do_handshake() failed (SSL: error:SSL routines::http request) while SSL handshaking, "
                   "client: 127.0.0.1")
    with socket.create_connection(("127.0.0.1", terminated), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"\x16\x03\x01\x02\x00\x01")
        assert sock.recv(100) == b""
        assert 0.8 < time.monotonic() - started < 4
    sheer.wait_log("client timed out (110: Connection timed out) while SSL handshaking, client: 127.0.0.1")
    echo.close()
