"""What sheer's answers look like on the wire, as nginx's: add_trailer's trailers after the last chunk of
a file, a `return`, an error page and a proxied answer (and none for HTTP/1.0, HEAD or with
chunked_transfer_encoding off), $sent_http_* and $upstream_cookie_* in headers, the redirects' form
(absolute_redirect, server_name_in_redirect, port_in_redirect, the auto redirect of a proxy_pass
location), proxy_cookie_flags, an upstream's bad Transfer-Encoding (502 and nginx's error line), a
second Expires dropped, and keepalive_timeout's Keep-Alive line."""

from __future__ import annotations

import pytest
from test_http_framing import RawUpstream, exchange, wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io


def ask(port: int, path: str, version: str = "1.1", method: str = "GET", host: str = "localhost"
        ) -> bytes:
    head = f"{method} {path} HTTP/{version}\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    return exchange(port, head.encode())


def test_trailers_after_the_last_chunk(harness: Harness) -> None:
    (harness.tmp / "www").mkdir()
    (harness.tmp / "www" / "t1").write_text("SEE-THIS")
    port = harness.listen("127.0.0.1")
    backend = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port}; server_name localhost; root {harness.tmp}/www;
            add_trailer X-Var $host;
            add_trailer X-Always $host always;
            add_trailer X-Empty '';
            add_trailer X-Sent-HTTP $sent_http_accept_ranges;
            add_trailer X-Sent-Trailer $sent_trailer_x_var;
            location / {{ }}
            location /return {{ return 200 "hi"; }}
            location /not_chunked {{ chunked_transfer_encoding off; }}
            location /proxy {{ proxy_pass http://127.0.0.1:{backend}/t1;
                               add_trailer X-Length $upstream_response_length; }}
        }}
        server {{ listen 127.0.0.1:{backend}; root {harness.tmp}/www; location / {{ }} }}""")
    got = ask(port, "/t1")
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head and b"X-Var" not in head
    assert body == (b"8\r\nSEE-THIS\r\n0\r\nX-Var: localhost\r\nX-Always: localhost\r\n"
                    b"X-Sent-HTTP: bytes\r\nX-Sent-Trailer: localhost\r\n\r\n")
    assert ask(port, "/return").endswith(b"2\r\nhi\r\n0\r\nX-Var: localhost\r\nX-Always: localhost\r\n"
                                         b"X-Sent-Trailer: localhost\r\n\r\n")
    missing = ask(port, "/nx")                                  # an error page: only the `always` one
    assert missing.startswith(b"HTTP/1.1 404") and missing.endswith(b"\r\n0\r\nX-Always: localhost\r\n\r\n")
    assert ask(port, "/t1", version="1.0").endswith(b"\r\n\r\nSEE-THIS")     # no chunks in HTTP/1.0
    assert b"X-Always" not in ask(port, "/t1", method="HEAD")
    proxied = ask(port, "/proxy")
    assert b"SEE-THIS\r\n0\r\n" in proxied and b"X-Length: 8\r\n" in proxied and b"X-Var" not in proxied


def test_chunked_transfer_encoding_off(harness: Harness) -> None:
    (harness.tmp / "www").mkdir()
    (harness.tmp / "www" / "not_chunked").write_text("body")
    upstream = RawUpstream("127.0.0.1", lambda head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                     b"4\r\nbody\r\n0\r\n\r\n")
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; root {harness.tmp}/www;
        add_trailer X-A 1 always; chunked_transfer_encoding off;
        location / {{ }}
        location /proxy {{ proxy_pass http://127.0.0.1:{upstream.port}; }} }}""")
    try:
        got = ask(port, "/not_chunked")
        assert b"Content-Length: 4\r\n" in got and got.endswith(b"\r\n\r\nbody")
        got = exchange(port, b"GET /proxy HTTP/1.1\r\nHost: x\r\n\r\n")     # no length: the close ends it
        assert b"Transfer-Encoding" not in got and b"Connection: close\r\n" in got
        assert got.endswith(b"\r\n\r\nbody")
    finally:
        upstream.close()


def test_sent_and_upstream_variables(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    backend = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port};
            location /s {{ add_header Link foo; add_header Link bar; add_header X-Sent $sent_http_link;
                           return 204; }}
            location /u {{ proxy_pass http://127.0.0.1:{backend};
                           add_header X-Cookies $upstream_http_set_cookie;
                           add_header X-Bar $upstream_cookie_bar; }}
        }}
        server {{ listen 127.0.0.1:{backend};
            location / {{ add_header Set-Cookie foo=1; add_header Set-Cookie "bar=2; Path=/";
                          return 204; }} }}""")
    assert b"X-Sent: foo, bar\r\n" in ask(port, "/s")
    got = ask(port, "/u")
    assert b"X-Cookies: foo=1, bar=2; Path=/\r\n" in got and b"X-Bar: 2\r\n" in got


def test_redirects_as_nginx_makes_them(harness: Harness) -> None:
    (harness.tmp / "www" / "dir").mkdir(parents=True)
    port = harness.listen("127.0.0.1")
    harness.serve(f"""absolute_redirect off;
        server {{ listen 127.0.0.1:{port}; server_name on; root {harness.tmp}/www; absolute_redirect on;
            location / {{ }}
            location /auto/ {{ proxy_pass http://127.0.0.1:1; }}
            location /return301 {{ return 301 /redirect; }}
            location /return301/name {{ return 301 /redirect; server_name_in_redirect on; }}
            location /return301/port {{ return 301 /redirect; port_in_redirect off; }}
            location /off/ {{ absolute_redirect off; }}
        }}""")
    assert f"Location: http://on:{port}/dir/\r\n".encode() in ask(port, "/dir", host="on")
    assert f"Location: http://host:{port}/redirect\r\n".encode() in ask(port, "/return301", host="host")
    assert f"Location: http://on:{port}/redirect\r\n".encode() in ask(port, "/return301/name", host="host")
    assert b"Location: http://host/redirect\r\n" in ask(port, "/return301/port", host="host")
    auto = ask(port, "/auto?a=b", host="on")
    assert auto.startswith(b"HTTP/1.1 301") and f"Location: http://on:{port}/auto/?a=b\r\n".encode() in auto
    no_host = exchange(port, b"GET /return301 HTTP/1.0\r\n\r\n")     # no Host: the address it came to
    assert f"Location: http://127.0.0.1:{port}/redirect\r\n".encode() in no_host


def test_proxy_cookie_flags(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    backend = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port};
            location / {{ proxy_pass http://127.0.0.1:{backend};
                proxy_cookie_flags a secure httponly samesite=none;
                proxy_cookie_flags ~^b nosecure; }} }}
        server {{ listen 127.0.0.1:{backend};
            location / {{ add_header Set-Cookie "$arg_v=1;Path=/;Secure"; return 204; }} }}""")
    assert b"Set-Cookie: a=1; Path=/; Secure; HttpOnly; SameSite=None\r\n" in ask(port, "/?v=a")
    assert b"Set-Cookie: bee=1; Path=/\r\n" in ask(port, "/?v=bee")
    assert b"Set-Cookie: c=1;Path=/;Secure\r\n" in ask(port, "/?v=c")


@pytest.mark.parametrize(("answer", "line"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n",
     'upstream sent unknown "Transfer-Encoding": "foo"'),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     ('upstream sent duplicate header line: "Transfer-Encoding: chunked", previous value: '
      '"Transfer-Encoding: chunked"')),
])
def test_bad_transfer_encoding_from_upstream_is_502(harness: Harness, answer: bytes, line: str) -> None:
    upstream = RawUpstream("127.0.0.1", lambda head: answer)
    port = harness.listen("127.0.0.1")
    harness.serve(f"server {{ listen 127.0.0.1:{port}; "
                  f"location / {{ proxy_pass http://127.0.0.1:{upstream.port}; }} }}")
    try:
        assert ask(port, "/").startswith(b"HTTP/1.1 502")
        wait_for(lambda: line in harness.error_log())
        log = harness.error_log()
        assert f": {line} while reading response header from upstream, client: 127.0.0.1" in log
        assert "[error]" in log
    finally:
        upstream.close()


def test_second_expires_dropped_and_keepalive_header(harness: Harness) -> None:
    upstream = RawUpstream("127.0.0.1", lambda head: b"HTTP/1.1 200 OK\r\nExpires: foo\r\nExpires: bar\r\n"
                                                     b"Content-Length: 0\r\n\r\n")
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; keepalive_timeout 10 9;
        location / {{ proxy_pass http://127.0.0.1:{upstream.port}; }}
        location /r {{ return 204; }} }}""")
    try:
        got = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first, _, second = got.partition(b"HTTP/1.1 204")
        assert b"Expires: foo\r\n" in first and b"bar" not in first
        assert b"Connection: keep-alive\r\nKeep-Alive: timeout=9\r\n" in first
        assert b"Connection: close\r\n" in second and b"Keep-Alive" not in second
        assert ('[warn] ' in harness.error_log() and 'upstream sent duplicate header line: "Expires: bar", '
                'previous value: "Expires: foo", ignored while reading response header from upstream'
                in harness.error_log())
    finally:
        upstream.close()


def test_a_refused_request_takes_the_default_server_s_error_page(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port}; server_name on; error_page 400 /return301;
            location /return301 {{ return 301 /redirect; }} }}""")
    got = exchange(port, b"GET / HTTP/1.0\r\nHost: .\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 301 ") and got.count(b"HTTP/1.1") == 1        # then the close
    assert f"Location: http://127.0.0.1:{port}/redirect\r\n".encode() in got and b"Connection: close" in got
    assert "[info]" in harness.error_log() and "client sent invalid host header" in harness.error_log()
