"""allow/deny through a running sheer: http answers 403 (after `return`, as nginx's phases), stream
TCP closes the session with 403 in its log, stream UDP drops the datagram; nginx's error line."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from sheer_process import Sheer, free_port, udp_echo, wait_for
from test_http_harness import Harness, harness_fixture, hello_upstreams  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


def test_http_deny_is_403_with_nginx_line_and_return_comes_first(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.1:{proxy};
            location / {{ allow 127.0.0.2; deny all; proxy_pass http://127.0.0.11:{port}; }}
            location /open {{ deny 10.0.0.0/8; proxy_pass http://127.0.0.11:{port}; }}
            location /r {{ deny all; return 200 "returned"; }}
            location /files {{ deny all; }}
            location /real {{ set_real_ip_from 127.0.0.1; deny 192.0.2.1;
                             proxy_pass http://127.0.0.11:{port}; }} }}""")
    status, _, body = get(proxy, "/")
    assert status == 403 and b"403 Forbidden" in body
    assert 'access forbidden by rule, client: 127.0.0.1, server: , request: "GET / HTTP/1.1"' \
        in harness.error_log()
    assert get(proxy, "/open")[0] == 200
    status, _, body = get(proxy, "/r")
    assert (status, body) == (200, b"returned")      # nginx's rewrite phase runs before access
    assert get(proxy, "/files")[0] == 403              # access before the content phase (its files)
    assert get(proxy, "/real", headers={"X-Real-IP": "192.0.2.1"})[0] == 403     # after realip
    assert get(proxy, "/real", headers={"X-Real-IP": "192.0.2.2"})[0] == 200



def test_limit_except_denies_the_other_methods(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.1:{proxy};
            location / {{ limit_except GET {{ deny all; }} proxy_pass http://127.0.0.11:{port}; }}
            location /mine {{ allow 127.0.0.1; deny all; limit_except GET {{ allow 127.0.0.2; deny all; }}
                              proxy_pass http://127.0.0.11:{port}; }} }}""")
    assert get(proxy, "/")[0] == 200 and get(proxy, "/", method="HEAD")[0] == 200     # GET brings HEAD
    assert get(proxy, "/", method="POST", body=b"x")[0] == 403
    assert get(proxy, "/", method="FOO")[0] == 403          # a method nginx does not know is limited too
    assert get(proxy, "/mine")[0] == 200
    assert get(proxy, "/mine", method="DELETE")[0] == 403

def test_stream_tcp_deny_closes_with_403_logged(run_sheer: Callable[..., Sheer], tmp_path: Any) -> None:
    port = free_port()
    log = tmp_path / "access.log"
    proxy = run_sheer(f"""stream {{
    log_format basic '$remote_addr $status';
    server {{
        listen 127.0.0.1:{port};
        access_log {log} basic;
        deny 127.0.0.1;
        return "hello";
    }}
}}
""")
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        assert sock.recv(100) == b""
    wait_for(lambda: log.exists() and log.read_text().endswith("\n"), what="the access log line")
    assert log.read_text() == "127.0.0.1 403\n"
    assert "access forbidden by rule, client: 127.0.0.1" in proxy.error_log()


def test_stream_udp_deny_drops_the_datagram(run_sheer: Callable[..., Sheer],
                                             closing: Callable[[Any], Any]) -> None:
    echo = closing(udp_echo("127.0.0.11"))
    port, open_port = free_port(), free_port()
    proxy = run_sheer(f"""stream {{
    server {{ listen 127.0.0.1:{port} udp; deny all; proxy_pass {echo.host}:{echo.port}; }}
    server {{ listen 127.0.0.1:{open_port} udp; allow 127.0.0.1; deny all;
              proxy_pass {echo.host}:{echo.port}; }}
}}
""")
    sock: socket.socket = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.settimeout(5)
    sock.sendto(b"in", ("127.0.0.1", open_port))
    assert sock.recv(100) == b"in"
    sock.settimeout(1)
    sock.sendto(b"no", ("127.0.0.1", port))
    with pytest.raises(TimeoutError):
        sock.recv(100)
    assert echo.peers and len(echo.peers) == 1
    proxy.wait_log("access forbidden by rule, udp client: 127.0.0.1")
