"""Upstream failures (next upstream, max_fails, 502/504) and the upstream keepalive pool."""

from __future__ import annotations

import asyncio
import http.client

import pytest
from test_http_harness import Harness, ScriptedUpstream, free_port, harness_fixture, hello_upstreams  # noqa: F401

from sheer.core.bind import BindTo
from sheer.io.http.upstream_pool import UpstreamPool, open_upstream

pytestmark = pytest.mark.io


def get(port: int, path: str = "/", method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_dead_upstream_next_used_then_skipped_by_max_fails(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    dead = free_port("127.0.0.13")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""{servers}
        upstream group {{ server 127.0.0.13:{dead} max_fails=1 fail_timeout=10s; server 127.0.0.11:{port}; }}
        server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://group; }} }}""")
    for _ in range(4):
        status, body = get(proxy)
        assert status == 200 and f"to 127.0.0.11:{port}".encode() in body
    log = harness.error_log()
    assert log.count("connect() failed (111: Connection refused) while connecting to upstream") == 1
    assert (f'client: 127.0.0.1, server: , request: "GET / HTTP/1.1", '
            f'upstream: "http://127.0.0.13:{dead}/", host: "127.0.0.1:{proxy}"') in log
    assert "upstream server temporarily disabled while connecting to upstream" in log


def test_all_dead_is_502_and_then_no_live_upstreams(harness: Harness) -> None:
    dead1, dead2 = free_port("127.0.0.13"), free_port("127.0.0.14")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        upstream group {{ server 127.0.0.13:{dead1}; server 127.0.0.14:{dead2}; }}
        server {{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://group; }} }}""")
    status, body = get(proxy)
    assert status == 502 and b"502 Bad Gateway" in body
    assert get(proxy)[0] == 502
    assert "no live upstreams while connecting to upstream" in harness.error_log()


def test_upstream_read_timeout_is_504(harness: Harness) -> None:
    silent = ScriptedUpstream(harness, "127.0.0.12")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy}; location / {{
            proxy_read_timeout 300ms; proxy_pass http://127.0.0.12:{silent.port}; }} }}""")
    status, body = get(proxy, "/silent")
    assert status == 504 and b"504 Gateway Time-out" in body
    assert "upstream timed out (110: Connection timed out) while reading response header from upstream" \
        in harness.error_log()


def test_http_status_next_upstream_and_non_idempotent(harness: Harness) -> None:
    first = ScriptedUpstream(harness, "127.0.0.11")
    second = ScriptedUpstream(harness, "127.0.0.12")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        upstream group {{ server 127.0.0.11:{first.port}; server 127.0.0.12:{second.port}; }}
        server {{ listen 127.0.0.1:{proxy}; location / {{
            proxy_next_upstream error timeout http_503; proxy_pass http://group; }} }}""")
    # Both answer 503: the first try goes to .11, the retry to .12, whose 503 is passed on.
    assert get(proxy, "/status/503")[0] == 503
    assert (len(first.requests), len(second.requests)) == (1, 1)
    # POST is not retried without non_idempotent.
    assert get(proxy, "/status/503", "POST", b"x")[0] == 503
    assert len(first.requests) + len(second.requests) == 3


def test_upstream_keepalive_pool_reuses_connections(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    pooled, plain = harness.listen("127.0.0.1"), harness.listen("127.0.0.2")
    services = harness.serve(f"""{servers}
        upstream pooled {{ server 127.0.0.11:{port}; keepalive 2; }}
        upstream plain {{ server 127.0.0.11:{port}; }}
        server {{ listen 127.0.0.1:{pooled}; location / {{
            proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://pooled; }} }}
        server {{ listen 127.0.0.2:{plain}; location / {{ proxy_pass http://plain; }} }}""")
    upstream = services[("127.0.0.11", port)]
    for _ in range(5):
        assert get(pooled)[0] == 200
    assert upstream.connected == 1
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.2", plain, timeout=3)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
    assert upstream.connected == 4


def test_pool_key_includes_the_source_address(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    harness.serve(servers)
    peer = ("127.0.0.11", port)

    async def scenario() -> tuple[bool, bool, bool]:
        pool = UpstreamPool(4)
        conn = await open_upstream(peer, 1.0)
        pool.put(conn)
        other_source = pool.take((peer, ("127.0.0.5", 0)))
        same = pool.take((peer, None))
        sourced = await open_upstream(peer, 1.0, source=BindTo("127.0.0.5", 0, transparent=False))
        pool.put(sourced)
        plain_key = pool.take((peer, None))
        pool.close()
        if same is not None:
            same.close()
        keys = plain_key is None and sourced.key == (peer, ("127.0.0.5", 0))
        return other_source is None, same is conn, keys

    assert harness.call(scenario()) == (True, True, True)


def test_pool_keeps_no_connection_past_its_requests_or_keepalive_time(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    harness.serve(servers)
    peer = ("127.0.0.11", port)

    async def scenario() -> tuple[bool, bool, bool]:
        pool = UpstreamPool(4, max_requests=2, max_age=0.2)
        young = await open_upstream(peer, 1.0)
        young.requests = 1
        pool.put(young)
        kept = pool.take((peer, None)) is young
        young.requests = 2                        # keepalive_requests reached: closed, not kept
        pool.put(young)
        spent = young.closed and pool.take((peer, None)) is None
        old = await open_upstream(peer, 1.0)
        await asyncio.sleep(0.3)                  # older than keepalive_time
        pool.put(old)
        aged = old.closed and len(pool) == 0
        pool.close()
        return kept, spent, aged

    assert harness.call(scenario()) == (True, True, True)


def test_drain_waits_for_in_flight_and_closes_idle(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    services = harness.serve(servers)
    service = services[("127.0.0.11", port)]
    idle = http.client.HTTPConnection("127.0.0.11", port, timeout=3)
    idle.request("GET", "/")
    idle.getresponse().read()

    async def drain() -> int:
        await asyncio.wait_for(service.drain(), 2)
        return len(service.connections)

    assert harness.call(drain()) == 0


def test_invalid_upstream_header_is_502(harness: Harness) -> None:
    garbage = harness.listen("127.0.0.12")
    proxy = harness.listen("127.0.0.1")
    harness.serve("server "
                  f"{{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://127.0.0.12:{garbage}; }} }}")
    sock = harness.sockets[("127.0.0.12", garbage)]

    async def answer_garbage() -> None:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(sock)
        await loop.sock_recv(conn, 65536)
        await loop.sock_sendall(conn, b"NOT HTTP AT ALL\r\n\r\n")
        conn.close()

    future = asyncio.run_coroutine_threadsafe(answer_garbage(), harness.loop)
    assert get(proxy)[0] == 502
    future.result(2)
    assert "upstream sent invalid header while reading response header from upstream" in harness.error_log()


def test_drain_finishes_in_flight_requests_and_keeps_the_socket(harness: Harness) -> None:
    slow = ScriptedUpstream(harness, "127.0.0.12")
    proxy = harness.listen("127.0.0.1")
    services = harness.serve(f"""server {{ listen 127.0.0.1:{proxy}; location / {{
        proxy_read_timeout 200ms; proxy_pass http://127.0.0.12:{slow.port}; }} }}""")
    service = services[("127.0.0.1", proxy)]
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=3)
    conn.request("GET", "/silent")   # in flight until the read timeout answers 504

    async def drain() -> None:
        await asyncio.sleep(0.05)
        service.stop_accepting()
        await asyncio.wait_for(service.drain(), 2)

    future = asyncio.run_coroutine_threadsafe(drain(), harness.loop)
    response = conn.getresponse()
    assert (response.status, response.getheader("Connection")) == (504, "close")
    future.result(2)
    assert harness.sockets[("127.0.0.1", proxy)].fileno() != -1   # the master's socket stays open


def test_an_upstream_ending_lines_with_a_bare_lf_is_read_as_nginx_reads_it(harness: Harness) -> None:
    up = harness.listen("127.0.0.12")
    proxy = harness.listen("127.0.0.1")
    harness.serve("server "
                  f"{{ listen 127.0.0.1:{proxy}; location / {{ proxy_pass http://127.0.0.12:{up}; }} }}")
    sock = harness.sockets[("127.0.0.12", up)]

    async def answer_with_lf() -> None:     # what nginx's own test daemons write (a Perl heredoc)
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(sock)
        await loop.sock_recv(conn, 65536)
        await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\nConnection: close\nX-Port: 8081\n\nOK\n")
        conn.close()

    future = asyncio.run_coroutine_threadsafe(answer_with_lf(), harness.loop)
    assert get(proxy) == (200, b"OK\n")
    future.result(2)
