"""The HTTP proxy end to end on loopback: the article's demo, bodies, keepalive."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import time

import pytest
from test_http_harness import Harness, harness_fixture, hello_upstreams  # noqa: F401

pytestmark = pytest.mark.io

HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]


def get(port: int, path: str = "/", host: str = "127.0.0.1", headers: dict[str, str] | None = None,
        method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=3)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_article_demo_round_robin_through_the_proxy(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, HOSTS)
    proxy = harness.listen("127.0.0.1")
    upstream = "".join(f"server {host}:{port};" for host in HOSTS)
    harness.serve(f"""{servers}
        upstream http_upstreams {{ {upstream} }}
        server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://http_upstreams; }} }}""")
    seen = []
    for _ in range(8):
        out = subprocess.run(["curl", "-sS", "--max-time", "3", f"http://127.0.0.1:{proxy}/"],
                             capture_output=True, text=True, check=True).stdout
        match = re.fullmatch(r"Hello from (\S+)\. You connected from ([\d.]+):(\d+) to ([\d.]+):(\d+)\n", out)
        assert match, out
        assert match.group(1) == socket.gethostname()
        assert match.group(2) == "127.0.0.1"            # the proxy's own source address
        assert match.group(5) == str(port)
        seen.append(match.group(4))
    assert seen == HOSTS + HOSTS


def test_proxy_pass_with_uri_replaces_the_location_prefix(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
                  location / {{ return 200 "$request_uri|$http_host|$http_connection"; }} }}
        server {{ listen 127.0.0.1:{proxy};
                  location /app/ {{ proxy_pass http://127.0.0.11:{up}/v2/; }}
                  location / {{ proxy_pass http://127.0.0.11:{up}; }} }}""")
    assert get(proxy, "/app/a/b?x=1")[2] == f"/v2/a/b?x=1|127.0.0.11:{up}|close".encode()
    assert get(proxy, "/other?y")[2] == f"/other?y|127.0.0.11:{up}|close".encode()


def test_x_forwarded_for_and_hop_by_hop_headers(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
                  location / {{
                      return 200 "$http_x_forwarded_for|$http_x_custom|$http_keep_alive|$http_te|$host"; }} }}
        server {{ listen 127.0.0.1:{proxy}; location / {{
                  proxy_set_header Host $host;
                  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                  proxy_pass http://127.0.0.11:{up}; }} }}""")
    status, _, body = get(proxy, headers={"X-Custom": "yes", "Keep-Alive": "300", "TE": "trailers",
                                          "Host": "Example.COM:8080"})
    assert (status, body) == (200, b"127.0.0.1|yes|||example.com")
    _, _, body = get(proxy, headers={"X-Forwarded-For": "10.1.1.1"})
    assert body.startswith(b"10.1.1.1, 127.0.0.1|")


def test_server_by_host_and_location_exact_before_prefix(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port}; location / {{ return 200 "default"; }} }}
        server {{ listen 127.0.0.1:{port}; server_name www.example.com;
                  location = /exact {{ return 200 "exact"; }}
                  location /exact {{ return 200 "prefix"; }}
                  location /redirect {{ return 301 http://elsewhere/; }} }}""")
    assert get(port, "/exact")[2] == b"default"
    assert get(port, "/exact", headers={"Host": "www.example.com"})[2] == b"exact"
    assert get(port, "/exactly", headers={"Host": "WWW.example.com"})[2] == b"prefix"
    status, headers, _ = get(port, "/redirect", headers={"Host": "www.example.com"})
    assert (status, headers["location"]) == (301, "http://elsewhere/")
    assert get(port, "/none", headers={"Host": "www.example.com"})[0] == 404


def test_bad_request_and_large_header(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f'server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}')
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
    status, _, body = get(port, headers={"X-Big": "a" * 9000})
    assert status == 400 and b"Too Large" in body


def read_all(sock: socket.socket) -> bytes:
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    return reply


def test_pipelined_requests_with_bodies_on_a_return_server(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve('server '
                  f'{{ listen 127.0.0.1:{port}; location / {{ return 200 "$request_method $uri\\n"; }} }}')
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                     b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                     b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_all(sock)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in reply.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert bodies == [b"GET /a\n", b"POST /b\n", b"PUT /c\n", b"GET /d\n"]


def test_http11_request_without_host_is_400(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f'server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}')
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert read_all(sock).endswith(b"\r\n\r\nok")


def test_access_log_after_each_request(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    log = harness.tmp / "access.log"
    harness.serve(f"""{servers}
        log_format up '$remote_addr "$request" $status $upstream_addr $upstream_status $body_bytes_sent';
        server {{ listen 127.0.0.1:{proxy};
                  location / {{ access_log {log} up; proxy_pass http://127.0.0.11:{port}; }} }}""")
    status, _, body = get(proxy, "/x?y=1")
    assert status == 200
    for _ in range(100):   # written just after the last byte went out
        if log.exists() and log.read_text():
            break
        time.sleep(0.01)
    assert log.read_text() == f'127.0.0.1 "GET /x?y=1 HTTP/1.1" 200 127.0.0.11:{port} 200 {len(body)}\n'


def test_add_header_on_proxied_returned_and_error_responses(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    dead = harness.listen("127.0.0.12")
    harness.sockets.pop(("127.0.0.12", dead)).close()    # nothing listens there: 502
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
                  location / {{ add_header ETag '"up"' always; add_header X-Up 1; return 200 "up"; }}
                  location /missing {{ return 404; }} }}
        server {{ listen 127.0.0.1:{proxy};
                  add_header X-URI $uri;
                  add_header X-Always $remote_addr always;
                  add_header ETag replaced;
                  location / {{ proxy_pass http://127.0.0.11:{up}; }}
                  location /missing {{ proxy_pass http://127.0.0.11:{up}; }}
                  location /dead {{ proxy_pass http://127.0.0.12:{dead}; }}
                  location /own {{ add_header X-Own yes; return 201 "own"; }} }}""")
    status, headers, body = get(proxy, "/page")
    assert (status, body) == (200, b"up")
    assert headers["x-uri"] == "/page" and headers["x-always"] == "127.0.0.1" and headers["x-up"] == "1"
    assert headers["etag"] == "replaced"                 # the upstream's own ETag is replaced
    status, headers, _ = get(proxy, "/missing")
    assert status == 404 and "x-uri" not in headers and headers["x-always"] == "127.0.0.1"
    status, headers, _ = get(proxy, "/dead")
    assert status == 502 and "x-uri" not in headers and headers["x-always"] == "127.0.0.1"
    status, headers, body = get(proxy, "/own")
    assert (status, body, headers["x-own"]) == (201, b"own", "yes") and "x-uri" not in headers


def test_a_url_made_of_variables_uses_the_implicit_upstream_of_its_host_and_port(harness: Harness) -> None:
    """ngx_http_upstream_init_request looks for HOST:PORT among the upstreams first: one that another
    location's `proxy_pass http://localhost:PORT` made is used, without a resolver."""
    port, servers = hello_upstreams(harness, ["127.0.0.1"])
    proxy = harness.listen("127.0.0.2")
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.2:{proxy};
            location / {{ proxy_pass http://localhost:{port}; }}
            location /var {{ proxy_pass http://$arg_b; }} }}""")
    assert get(proxy, "/", host="127.0.0.2")[0] == 200
    status, _, body = get(proxy, f"/var?b=localhost:{port}", host="127.0.0.2")
    assert status == 200 and body.startswith(b"Hello from ")
    assert get(proxy, "/var?b=otherhost:1", host="127.0.0.2")[0] == 502      # no resolver for that


def test_timing_variables_while_the_head_goes_out_hold_this_try_s_connect_and_header_times(
        harness: Harness) -> None:
    """nginx's u->state: each time `-` until known; add_header renders while the head goes out, when
    this try has its connect and header times but no response time yet (the failed try before it has
    its response time and no header time)."""
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        upstream two {{ server 127.0.0.12:{port}; server 127.0.0.11:{port}; }}
        server {{ listen 127.0.0.1:{proxy};
            add_header X-Connect $upstream_connect_time; add_header X-Header $upstream_header_time;
            add_header X-Response $upstream_response_time;
            location / {{ proxy_pass http://two; }} }}""")
    status, headers, _ = get(proxy, "/")
    assert status == 200
    time = r"\d+\.\d{3}"
    assert re.fullmatch(rf"-, {time}", headers["x-connect"]), headers      # 127.0.0.12 refused the connect
    assert re.fullmatch(rf"-, {time}", headers["x-header"]), headers
    assert re.fullmatch(rf"{time}, -", headers["x-response"]), headers
