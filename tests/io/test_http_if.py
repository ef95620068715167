"""`if` in a location with other directives than the rewrite module's, with real requests: its
configuration serves the request when the condition holds (nginx's nameless location), the rest is the
location's; "if is evil" as nginx: add_header lines not inherited, try_files lost, the last `if` wins."""

from __future__ import annotations

import time

import pytest
from test_http_framing import exchange
from test_http_harness import Harness, harness_fixture  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


def _upstreams(harness: Harness) -> tuple[str, int]:
    writers = harness.listen("127.0.0.11")
    readers = harness.listen("127.0.0.12")
    servers = f"""
        server {{ listen 127.0.0.11:{writers};
            location / {{ return 200 "writers $request_method $request_uri"; }} }}
        server {{ listen 127.0.0.12:{readers}; location / {{ add_header X-Up 1;
            return 200 "readers $request_method $request_uri"; }} }}
        upstream writers {{ server 127.0.0.11:{writers}; }}
        upstream readers {{ server 127.0.0.12:{readers}; }}"""
    return servers, readers


def test_proxy_pass_and_headers_in_if(harness: Harness) -> None:
    servers, _ = _upstreams(harness)
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.1:{proxy};
            location /api/ {{
                add_header X-Loc loc;
                proxy_pass http://readers;
                if ($request_method = POST) {{ proxy_pass http://writers; }}
                if ($http_origin ~ ^https://(.+)\\.example$) {{
                    add_header Access-Control-Allow-Origin $http_origin always;
                }}
                if ($arg_nocache) {{ expires -1; }}
            }}
            location /files/ {{
                root {harness.tmp};
                try_files $uri @fallback;
                if ($arg_proxy) {{ proxy_pass http://writers; }}
            }}
            location @fallback {{ return 200 "fallback $uri"; }}
            location /evil/ {{
                root {harness.tmp};
                try_files /files/a.txt @fallback;
                set $true 1;
                if ($true) {{ }}
            }}
            location /two {{
                set $true 1;
                add_header X-Loc loc;
                if ($true) {{ add_header X-First 1; }}
                if ($true) {{ add_header X-Second 2; }}
                return 204;
            }}
            location /none {{ add_header X-Loc loc; if ($arg_no) {{ add_header X-If 1; }} return 204; }}
            location /deny {{ if ($arg_bad) {{ add_header X-Why bad always; return 403; }} return 204; }}
        }}""")
    (harness.tmp / "files").mkdir()
    (harness.tmp / "files" / "a.txt").write_text("file a\n")
    status, headers, body = get(proxy, "/api/x?a=1", method="POST", body=b"")
    assert status == 200 and body == b"writers POST /api/x?a=1"
    assert headers["x-loc"] == "loc"       # no add_header in that if: the location's lines
    status, headers, body = get(proxy, "/api/x")
    assert body == b"readers GET /api/x" and headers["x-loc"] == "loc" and headers["x-up"] == "1"
    status, headers, body = get(proxy, "/api/x", headers={"Origin": "https://a.example"})
    assert body == b"readers GET /api/x"
    assert headers["access-control-allow-origin"] == "https://a.example" and "x-loc" not in headers
    status, headers, _ = get(proxy, "/api/x?nocache=1")
    assert headers["cache-control"] == "no-cache" and "expires" in headers and headers["x-loc"] == "loc"
    assert "cache-control" not in get(proxy, "/api/x")[1]
    assert get(proxy, "/files/a.txt")[2] == b"file a\n"
    assert get(proxy, "/files/missing")[2] == b"fallback /files/missing"
    assert get(proxy, "/files/missing?proxy=1")[2] == b"writers GET /files/missing?proxy=1"
    assert get(proxy, "/evil/x")[0] == 404            # the if's configuration has no try_files
    status, headers, _ = get(proxy, "/two")
    assert status == 204 and headers.get("x-second") == "2" and "x-first" not in headers
    assert "x-loc" not in headers
    status, headers, _ = get(proxy, "/none")
    assert headers["x-loc"] == "loc" and "x-if" not in headers
    status, headers, _ = get(proxy, "/none?no=1")
    assert headers["x-if"] == "1" and "x-loc" not in headers
    status, headers, _ = get(proxy, "/deny?bad=1")
    assert status == 403 and headers["x-why"] == "bad"
    assert get(proxy, "/deny")[0] == 204


def test_limit_rate_access_log_and_root_in_if(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    # nginx's limit_rate counts whole seconds from the request's (4k in its first, 8k by the second's
    # end): 12000 bytes take more than one second
    (harness.tmp / "big").write_bytes(b"x" * 12000)
    (harness.tmp / "other").mkdir()
    (harness.tmp / "other" / "big").write_bytes(b"other\n")
    harness.serve(f"""
        log_format plain '$request_uri $status';
        server {{ listen 127.0.0.1:{proxy};
            location / {{
                root {harness.tmp};
                access_log {harness.tmp}/access.log plain;
                if ($arg_slow) {{ limit_rate 4k; }}
                if ($arg_quiet) {{ access_log off; }}
                if ($arg_other) {{ root {harness.tmp}/other; }}
            }}
        }}""")
    started = time.monotonic()
    assert get(proxy, "/big")[2] == b"x" * 12000
    fast = time.monotonic() - started
    started = time.monotonic()
    assert get(proxy, "/big?slow=1")[2] == b"x" * 12000
    slow = time.monotonic() - started
    assert slow > 0.9 and fast < 0.5
    assert get(proxy, "/big?quiet=1")[0] == 200
    assert get(proxy, "/big?other=1")[2] == b"other\n"
    deadline = time.monotonic() + 3          # the last line is written once the response is sent
    log = harness.tmp / "access.log"
    while len(lines := log.read_text().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/big 200" in lines and "/big?slow=1 200" in lines and "/big?other=1 200" in lines
    assert not any("quiet" in line for line in lines)


def test_proxy_pass_of_an_earlier_if_without_configuration_is_a_500(harness: Harness) -> None:
    """nginx's proxy_if.t "proxy_pass inside if": the first `if` sets the proxy handler, the second
    one's configuration has no proxy_pass: 500 "no upstream configuration"."""
    servers, readers = _upstreams(harness)
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.1:{proxy};
            location /crash {{ set $true 1; if ($true) {{ proxy_pass http://readers; }} if ($arg_b) {{ }} }}
            location /uri {{ proxy_pass http://127.0.0.12:{readers}/replacement; if ($arg_if) {{ }} }}
        }}""")
    assert get(proxy, "/crash")[2] == b"readers GET /crash"
    assert get(proxy, "/crash?b=1")[0] == 500
    assert "no upstream configuration" in harness.error_log()
    assert get(proxy, "/uri?if=1")[2] == b"readers GET /replacement?if=1"   # the location's URI part


def test_limit_except(harness: Harness) -> None:
    servers, _ = _upstreams(harness)
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        server {{ listen 127.0.0.1:{proxy};
            location /ro/ {{ proxy_pass http://readers; limit_except GET {{ deny all; }} }}
            location /rw/ {{ proxy_pass http://readers; limit_except GET {{ proxy_pass http://writers; }} }}
        }}""")
    assert get(proxy, "/ro/a")[2] == b"readers GET /ro/a"
    assert get(proxy, "/ro/a", method="HEAD")[0] == 200
    assert get(proxy, "/ro/a", method="POST", body=b"x")[0] == 403
    assert get(proxy, "/ro/a", method="DELETE")[0] == 403
    assert get(proxy, "/rw/a")[2] == b"readers GET /rw/a"
    assert get(proxy, "/rw/a", method="PUT", body=b"x")[2] == b"writers PUT /rw/a"


def test_add_trailer_and_error_page_in_if(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy}; server_name localhost;
            location /tr {{ add_trailer X-Loc 1; if ($arg_t) {{ add_trailer X-If $arg_t; }}
                            return 200 "hi"; }}
            location /ep {{ root {harness.tmp}/none; if ($arg_e) {{ error_page 404 =200 /alt; }} }}
            location = /alt {{ return 200 "alt $uri"; }}
        }}""")

    def ask(path: str) -> bytes:
        head = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        return exchange(proxy, head.encode())

    assert ask("/tr").endswith(b"2\r\nhi\r\n0\r\nX-Loc: 1\r\n\r\n")
    assert ask("/tr?t=2").endswith(b"2\r\nhi\r\n0\r\nX-If: 2\r\n\r\n")
    assert get(proxy, "/ep/x")[0] == 404
    assert get(proxy, "/ep/x?e=1")[:3:2] == (200, b"alt /alt")
