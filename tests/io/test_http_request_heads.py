"""How a head is read, per the default server of its address: ignore_invalid_headers,
underscores_in_headers, max_headers, merge_slashes; and a server-level `return` with add_header."""

from __future__ import annotations

import pytest
from test_http_harness import Harness, ScriptedUpstream, harness_fixture  # noqa: F401
from test_http_request_buffering import exchange

pytestmark = pytest.mark.io




def test_header_names_nginx_ignores_or_passes(harness: Harness) -> None:
    upstream = ScriptedUpstream(harness, "127.0.0.11")
    default, off, underscores = (harness.listen("127.0.0.1") for _ in range(3))
    to = f"location / {{ proxy_pass http://127.0.0.11:{upstream.port}; }}"
    harness.serve(f"""server {{ listen 127.0.0.1:{default}; {to} }}
        server {{ listen 127.0.0.1:{off}; ignore_invalid_headers off; {to} }}
        server {{ listen 127.0.0.1:{underscores}; underscores_in_headers on; {to} }}""")
    request = b"GET / HTTP/1.0\r\nx_foo: 1\r\nx.bar: 2\r\n\r\n"
    seen = []
    for port in (default, off, underscores):
        assert exchange(port, request).startswith(b"HTTP/1.1 200 ")
        seen.append(upstream.requests[-1][0])
    assert b"x_foo" not in seen[0] and b"x.bar" not in seen[0]
    assert b"\r\nx_foo: 1\r\n" in seen[1] and b"\r\nx.bar: 2\r\n" in seen[1]
    assert b"\r\nx_foo: 1\r\n" in seen[2] and b"x.bar" not in seen[2]


def test_max_headers_merge_slashes_and_a_server_return_with_add_header(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; max_headers 3; merge_slashes off;
        add_header X-URI "$uri"; return 204; }}""")
    three = b"GET /a//b/../c HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    reply = exchange(port, three)
    assert reply.startswith(b"HTTP/1.1 204 ") and b"\r\nX-URI: /a//c\r\n" in reply
    assert exchange(port, three.replace(b"\r\n\r\n", b"\r\nD: 4\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
