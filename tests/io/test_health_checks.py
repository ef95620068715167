"""Active health checks on loopback: the probes alone, then a running sheer whose workers obey its checker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sheer_process import UPSTREAM_HOSTS, TcpEcho, UdpServer, free_port, wait_for

from sheer.config.errors import Source
from sheer.config.health import HealthCheck, HttpMatch, StatusRule, StreamMatch, body, expect
from sheer.io.probes import http_probe, tcp_probe, udp_probe

DNS_QUERY = bytes.fromhex("002a000000010000000000000373746c04756d736c036564750000010001")
SRC = Source("test", 1)
FAST = {"timeout": 0.3, "connect_timeout": 0.3}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def closed_port(host: str) -> int:
    return free_port((host,))


def test_tcp_probe_connect_and_send_expect(closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    assert run(tcp_probe("127.0.0.11", echo.port, HealthCheck(**FAST))).passed
    refused = run(tcp_probe("127.0.0.11", closed_port("127.0.0.11"), HealthCheck(**FAST)))
    assert refused.reason == "connect() failed (111: Connection refused)"
    match = StreamMatch("echo", b"PING\r\n", expect(["~", "^PI.G"], SRC))
    assert run(tcp_probe("127.0.0.11", echo.port, HealthCheck(match=match, **FAST))).passed
    wrong = StreamMatch("echo", b"PING\r\n", expect(["+PONG"], SRC))
    verdict = run(tcp_probe("127.0.0.11", echo.port, HealthCheck(match=wrong, **FAST)))
    assert not verdict.passed and "timed out" in verdict.reason   # the echo never closes: waits for more


def test_udp_probe_silence_passes_icmp_fails_and_dns_match(closing: Callable[[Any], Any]) -> None:
    silent = closing(UdpServer("127.0.0.12", 0, lambda data, peer: None))
    check = HealthCheck(udp=True, **FAST)
    started = time.monotonic()
    assert run(udp_probe("127.0.0.12", silent.port, check)).passed
    assert time.monotonic() - started >= 0.3          # healthy = no ICMP error within the timeout
    assert silent.peers and silent.peers[0][0] == "127.0.0.1"   # from the proxy's own address
    refused = run(udp_probe("127.0.0.12", closed_port("127.0.0.12"), check))
    assert refused.reason == "recv() failed (111: Connection refused)"

    def dns(data: bytes, peer: tuple[str, int]) -> list[bytes]:
        return [data[:2] + b"\x81\x80" + data[4:] + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x00\x00\x10"
                b"\x06health\x02is\x04good\x00"]
    server = closing(UdpServer("127.0.0.13", 0, dns))
    match = StreamMatch("dns", DNS_QUERY, expect(["~*", "health.is.good"], SRC))
    assert run(udp_probe("127.0.0.13", server.port, HealthCheck(udp=True, match=match, **FAST))).passed
    nothing = StreamMatch("dns", DNS_QUERY, expect(["~*", "not.there"], SRC))
    verdict = run(udp_probe("127.0.0.13", server.port, HealthCheck(udp=True, match=nothing, **FAST)))
    assert verdict.reason == 'the reply does not match "not.there" of match "dns"'
    verdict = run(udp_probe("127.0.0.12", silent.port, HealthCheck(udp=True, match=match, **FAST)))
    assert not verdict.passed and "no reply" in verdict.reason


class HttpOnce:
    """Answers every connection with one fixed response, then closes."""

    def __init__(self, host: str, response: bytes) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = int(self.sock.getsockname()[1])
        self.response = response
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(65536))
                conn.sendall(self.response)

    def close(self) -> None:
        self.sock.close()


def test_http_probe_default_and_match(closing: Callable[[Any], Any]) -> None:
    ok = closing(HttpOnce("127.0.0.14",
                          b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nWelcome to nginx!"))
    assert run(http_probe("127.0.0.14", ok.port, HealthCheck(uri="/health", **FAST), "backend")).passed
    assert ok.requests[0].startswith(b"GET /health HTTP/1.0\r\nHost: backend\r\n")
    welcome = HttpMatch("welcome", status=(StatusRule(((200, 200),)),),
                        body=body(["~", "Welcome to nginx!"], SRC))
    assert run(http_probe("127.0.0.14", ok.port, HealthCheck(match=welcome, **FAST), "b")).passed
    bad = closing(HttpOnce("127.0.0.14", b"HTTP/1.1 503 Busy\r\n\r\n"))
    assert run(http_probe("127.0.0.14", bad.port, HealthCheck(**FAST), "b")).reason == "status code 503"
    refused = run(http_probe("127.0.0.14", closed_port("127.0.0.14"), HealthCheck(**FAST), "b"))
    assert refused.reason == "connect() failed (111: Connection refused)"


def test_workers_share_the_checkers_verdict(run_sheer: Callable[..., Any],
                                            closing: Callable[[Any], Any]) -> None:
    port = free_port(UPSTREAM_HOSTS[:2], (socket.SOCK_DGRAM,))
    listen = free_port(("127.0.0.1",), (socket.SOCK_DGRAM,))
    queries: dict[str, int] = {host: 0 for host in UPSTREAM_HOSTS[:2]}

    def upstream(host: str) -> UdpServer:
        def answer(data: bytes, peer: tuple[str, int]) -> list[bytes] | None:
            if data == b"nginx health check":
                return None                      # the probe: silence is health
            queries[host] += 1
            return [b"ok " + data]
        return closing(UdpServer(host, port, answer))

    servers = [upstream(host) for host in UPSTREAM_HOSTS[:2]]
    sheer = run_sheer(f"""worker_processes 2;
stream {{
    upstream u {{ server {UPSTREAM_HOSTS[0]}:{port}; server {UPSTREAM_HOSTS[1]}:{port}; }}
    server {{
        listen 127.0.0.1:{listen} udp;
        proxy_pass u;
        proxy_responses 1;
        proxy_timeout 1s;
        health_check interval=200ms udp;
        health_check_timeout 200ms;
    }}
}}
""")

    def ask(count: int) -> dict[str, int]:
        before = dict(queries)
        for index in range(count):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:   # a new session each time
                client.settimeout(1)
                client.sendto(b"q%d" % index, ("127.0.0.1", listen))
                client.recvfrom(100)
        return {host: queries[host] - before[host] for host in queries}

    time.sleep(0.5)
    counts = ask(8)
    assert counts[UPSTREAM_HOSTS[1]] > 0
    servers[1].close()
    sheer.wait_log(f'peer {UPSTREAM_HOSTS[1]}:{port} in upstream "u" is unhealthy (up -> down): '
                   "recv() failed (111: Connection refused)", timeout=3)
    # every worker (sessions spread over both by SO_REUSEPORT) skips it at once: no timeout, no loss
    assert ask(20) == {UPSTREAM_HOSTS[0]: 20, UPSTREAM_HOSTS[1]: 0}
    servers[1] = upstream(UPSTREAM_HOSTS[1])
    sheer.wait_log(f'peer {UPSTREAM_HOSTS[1]}:{port} in upstream "u" is healthy (down -> up)', timeout=3)
    wait_for(lambda: ask(4)[UPSTREAM_HOSTS[1]] > 0, timeout=3, what="traffic to the peer again")
    assert "upstream timed out" not in sheer.error_log()


def test_checker_is_respawned_and_replaced_on_reload(run_sheer: Callable[..., Any],
                                                     closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    listen = free_port()
    text = f"""stream {{
    server {{ listen 127.0.0.1:{listen}; proxy_pass 127.0.0.11:{echo.port}; health_check interval=100ms; }}
}}
"""
    sheer = run_sheer(text)
    first = set(sheer.workers())
    assert len(first) == 2                       # one worker, one health checker
    wait_for(lambda: echo.connections >= 3, what="probes every 100ms")
    time.sleep(2.1)                              # past the early-death guard
    checker = min(first)                         # the master forks the checker before the workers
    os.kill(checker, signal.SIGKILL)
    sheer.wait_log(f"health checker process {checker} exited on signal 9")
    wait_for(lambda: len(sheer.workers()) == 2 and checker not in sheer.workers(), what="a respawned process")
    count = echo.connections
    wait_for(lambda: echo.connections > count + 2, what="probes again")
    sheer.signal(signal.SIGHUP)
    wait_for(lambda: not set(sheer.workers()) & first - {checker} and len(sheer.workers()) == 2, timeout=5,
             what="a new generation: worker and checker")
