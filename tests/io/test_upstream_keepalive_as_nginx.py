"""nginx-tests' upstream_keepalive.t with a `return` for its backend (the file's backend serves a static
file, which sheer does not): keepalive_requests, keepalive_timeout and keepalive_time of an upstream's
cached connections, with `proxy_set_header Connection $args` (empty: the connection may be kept)."""

from __future__ import annotations

import re
import time

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401
from test_rate_limits import fetch

pytestmark = pytest.mark.io


def connection(port: int, path: str) -> str:
    _, headers, body = fetch(port, path)
    assert body == b"SEE-THIS"
    return headers["x-connection"]


def test_upstream_keepalive_as_nginx_tests(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        upstream backend {{ server 127.0.0.11:{up}; keepalive 1; keepalive_requests 3;
                            keepalive_timeout 2s; }}
        upstream time {{ server 127.0.0.11:{up}; keepalive 1; keepalive_time 2s; }}
        server {{ listen 127.0.0.1:{proxy};
                  proxy_http_version 1.1;
                  proxy_set_header Connection $args;
                  location / {{ proxy_pass http://backend; }}
                  location /time {{ proxy_pass http://time/; }} }}
        server {{ listen 127.0.0.11:{up};
                  location / {{ add_header X-Connection $connection; return 200 "SEE-THIS"; }} }}""")
    n = connection(proxy, "/")
    assert connection(proxy, "/") == n                          # 'keepalive'
    assert connection(proxy, "/") == n                          # 'keepalive again'
    assert connection(proxy, "/") != n                          # 'keepalive requests': 3 per connection
    connection(proxy, "/?close")                                # Connection: close, not kept
    n = connection(proxy, "/")
    m = connection(proxy, "/time")
    assert connection(proxy, "/") == n                          # 'keepalive timer'
    assert connection(proxy, "/time") == m                      # 'keepalive time'
    time.sleep(2.5)
    assert connection(proxy, "/") != n                          # 'keepalive timeout': idle 2.5 s > 2 s
    assert connection(proxy, "/time") == m                      # 'keepalive time last': old, still taken
    assert connection(proxy, "/time") != m                      # 'keepalive time new': not put back
    assert re.fullmatch(r"\d+", n) and re.fullmatch(r"\d+", m)
