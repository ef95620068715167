"""stream `ssl_preread on` with `proxy_pass $ssl_preread_server_name`: passthrough TLS routed by name (the
client verifies the certificate of the upstream chosen, so nothing was terminated on the way), the
ClientHello's variables logged, and nginx's behaviour on plain bytes, silence and an endless hello."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from sheer_process import Sheer, TcpEcho, free_port, wait_for
from tls_kit import client_context, https, issue

pytestmark = pytest.mark.io


def test_routing_by_name_passes_tls_through(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    ca = trustme.CA()
    a, b = issue(ca, tmp_path, "a.test"), issue(ca, tmp_path, "b.test")
    port_a, port_b, front, plain = free_port(), free_port(), free_port(), free_port()
    echo = TcpEcho("127.0.0.1")
    log = tmp_path / "stream.log"
    sheer = run_sheer(f"""
events {{}}
stream {{
    log_format preread '$ssl_preread_server_name|$ssl_preread_protocol|$ssl_preread_alpn_protocols|'
                       '$upstream_addr|$status';
    access_log {log} preread;
    upstream a.test {{ server 127.0.0.1:{port_a}; }}
    upstream b.test {{ server 127.0.0.1:{port_b}; }}
    server {{ listen 127.0.0.1:{front}; ssl_preread on; proxy_pass $ssl_preread_server_name; }}
    server {{ listen 127.0.0.1:{plain}; ssl_preread on; preread_timeout 1s; preread_buffer_size 100;
             proxy_pass 127.0.0.1:{echo.port}; }}
}}
http {{
    server {{ listen 127.0.0.1:{port_a} ssl; ssl_certificate {a.cert}; ssl_certificate_key {a.key};
             location / {{ return 200 "A $ssl_server_name\\n"; }} }}
    server {{ listen 127.0.0.1:{port_b} ssl; ssl_certificate {b.cert}; ssl_certificate_key {b.key};
             location / {{ return 200 "B $ssl_server_name\\n"; }} }}
}}
""")
    ctx = client_context(a.ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    assert https(front, "a.test", ctx)[0] == "A a.test\n"
    assert https(front, "b.test", ctx)[0] == "B b.test\n"
    with pytest.raises(OSError):          # no upstream of that name: closed before any byte
        https(front, "c.test", ctx)
    wait_for(lambda: len(log.read_text().splitlines()) == 3 if log.exists() else False, what="3 sessions")
    assert log.read_text().splitlines() == [
        f"a.test|TLSv1.3|h2,http/1.1|127.0.0.1:{port_a}|200",
        f"b.test|TLSv1.3|h2,http/1.1|127.0.0.1:{port_b}|200",
        "c.test|TLSv1.3|h2,http/1.1||500",
    ]
    assert '[error]' in sheer.error_log() and 'no port in upstream "c.test", client: 127.0.0.1' \
        in sheer.error_log()

    # plain bytes: declined, passed on as they came
    with socket.create_connection(("127.0.0.1", plain), timeout=5) as sock:
        sock.sendall(b"hello, not TLS\n")
        assert sock.recv(100) == b"hello, not TLS\n"
    # silence: after preread_timeout the session goes on to the upstream
    before = echo.connections
    with socket.create_connection(("127.0.0.1", plain), timeout=5) as sock:
        started = time.monotonic()
        wait_for(lambda: echo.connections > before, 5, "the upstream connection after preread_timeout")
        assert time.monotonic() - started > 0.8
        sock.sendall(b"late\n")
        assert sock.recv(100) == b"late\n"
    # a record bigger than preread_buffer_size: nginx's "preread buffer full", closed
    with socket.create_connection(("127.0.0.1", plain), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x40\x00" + b"\x01" * 200)
        assert sock.recv(100) == b""
    sheer.wait_log("preread buffer full, client: 127.0.0.1")
    echo.close()
