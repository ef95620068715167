"""Balancing through http: `hash $remote_addr` and `ip_hash` keep a client on one upstream."""

from __future__ import annotations

import http.client
import re

import pytest
from test_http_harness import Harness, harness_fixture, hello_upstreams  # noqa: F401

pytestmark = pytest.mark.io


def upstream_of(proxy: int, client: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=3, source_address=(client, 0))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
    finally:
        conn.close()
    found = re.search(r"to (127\.0\.0\.\d+):", body)
    assert found is not None, body
    return found.group(1)


@pytest.mark.parametrize("method", ["hash $remote_addr", "hash $remote_addr consistent", "ip_hash"])
def test_a_client_stays_on_one_upstream(harness: Harness, method: str) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        upstream group {{ {method};
                          server 127.0.0.11:{port}; server 127.0.0.12:{port}; server 127.0.0.13:{port}; }}
        server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://group; }} }}""")
    # ip_hash looks at the first three octets: spread clients over several /24s of 127/8
    clients = [f"127.0.{n}.1" for n in range(1, 13)] if method == "ip_hash" else \
        [f"127.0.0.{n}" for n in range(101, 113)]
    chosen = {client: {upstream_of(proxy, client) for _ in range(3)} for client in clients}
    assert all(len(upstreams) == 1 for upstreams in chosen.values()), chosen
    assert len(set().union(*chosen.values())) >= 2, chosen
