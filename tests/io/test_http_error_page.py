"""error_page at run time: internal redirects (URI and named), `=`/`=CODE`, redirects for the client,
for sheer's own errors (404, 403, 502) and `return CODE`; once per request."""

from __future__ import annotations

import pytest
from test_http_harness import Harness, harness_fixture, hello_upstreams  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


def test_error_pages(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    dead = harness.listen("127.0.0.12")
    harness.sockets.pop(("127.0.0.12", dead)).close()    # nothing listens there: 502
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.1:{proxy};
            error_page 404 /missing.html;
            error_page 502 504 =503 /50x.html;
            location = /missing.html {{ return 200 "not here: $uri $request_uri\\n"; }}
            location = /50x.html {{ return 200 "down\\n"; }}
            location /dead {{ proxy_pass http://127.0.0.12:{dead}; }}
            location /denied {{ deny all; error_page 403 = @up; proxy_pass http://127.0.0.12:{dead}; }}
            location /gone {{ error_page 410 =301 http://example.com/new; add_header X-Gone 1; return 410; }}
            location /loop {{ error_page 404 /loop2; return 404; }}
            location /loop2 {{ return 404; }}
            location /text {{ return 404 "own text"; }}
            location @up {{ proxy_pass http://127.0.0.11:{port}; }} }}""")
    status, _, body = get(proxy, "/nothing?x=1")           # no location: 404, answered by the page
    assert (status, body) == (404, b"not here: /missing.html /nothing?x=1\n")
    status, _, body = get(proxy, "/dead")                  # 502 from sheer: =503 with the page
    assert (status, body) == (503, b"down\n")
    status, _, body = get(proxy, "/denied")                # 403 to a named location, its own status
    assert status == 200 and body.startswith(b"Hello from ")
    status, headers, _ = get(proxy, "/gone")
    assert status == 301 and headers["location"] == "http://example.com/new"
    assert headers["x-gone"] == "1"                        # the headers filter runs on the redirect
    status, _, body = get(proxy, "/loop")                  # recursive_error_pages off: plain 404
    assert status == 404 and b"404 Not Found" in body
    assert get(proxy, "/text")[2] == b"own text"          # return with text: no error page


def test_head_stays_head_and_post_becomes_get(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy};
            location / {{ error_page 404 = /page; return 404; }}
            location /page {{ return 200 "$request_method\\n"; }} }}""")
    status, _, body = get(proxy, "/x", method="POST", body=b"abc")
    assert (status, body) == (200, b"GET\n")
    status, _, body = get(proxy, "/x", method="HEAD")
    assert status == 200 and body == b""


def test_internal_locations_serve_only_internal_redirects(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy};
            error_page 404 /errors/404;
            location /errors/ {{ internal; return 200 "page for $request_uri\\n"; }}
            location /old {{ rewrite ^ /errors/x last; }}
            location /page {{ error_page 418 = /errors/teapot; return 418; }} }}""")
    status, _, body = get(proxy, "/errors/404")           # asked by the client: 404, then its own error page
    assert (status, body) == (404, b"page for /errors/404\n")
    status, _, body = get(proxy, "/nothing")              # an error page is an internal redirect
    assert (status, body) == (404, b"page for /nothing\n")
    status, _, body = get(proxy, "/page")
    assert (status, body) == (200, b"page for /page\n")
    status, _, body = get(proxy, "/old")                  # `rewrite ... last` reaches it too (nginx 1.22)
    assert (status, body) == (200, b"page for /old\n")
def test_a_redirect_for_the_client_gets_the_add_header_lines(harness: Harness) -> None:
    """nginx's headers filter runs on error_page's redirect: add_header's lines (302 is among its codes)
    come with it, rendered after the upstream was tried ($upstream_addr)."""
    proxy = harness.listen("127.0.0.1")
    dead = harness.listen("127.0.0.12")
    harness.sockets.pop(("127.0.0.12", dead)).close()
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy};
            location / {{ proxy_pass http://127.0.0.12:{dead}; error_page 502 redirect;
                          add_header X-IP $upstream_addr; }} }}""")
    status, headers, _ = get(proxy, "/")
    assert status == 302 and headers["location"] == "redirect"
    assert headers["x-ip"] == f"127.0.0.12:{dead}"
