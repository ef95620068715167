"""The article's UDP DNS config in front of four DNS servers on 127.0.0.11-14, queried with the real `dig`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from sheer_process import UPSTREAM_HOSTS, Sheer, UdpServer, dns_server, free_port

pytestmark = [pytest.mark.io, pytest.mark.skipif(shutil.which("dig") is None, reason="needs dig (dnsutils)")]


def dig(port: int, timeout: int = 1, tries: int = 2) -> str:
    """The answer (dig's `;; communications error ... timed out` line of a retried query dropped)."""
    result = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+short", f"+timeout={timeout}", f"+tries={tries}",
         "www.example.com"],
        check=False, capture_output=True, text=True, timeout=10)
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith(";;"))


def article_dns_config(listen_port: int, upstream_port: int) -> str:
    servers = "".join(f"\n        server {host}:{upstream_port};" for host in UPSTREAM_HOSTS)
    return f"""worker_processes 1;

stream {{
    upstream dns_upstreams {{{servers}
    }}

    server {{
        listen {listen_port} udp;
        proxy_responses 1;
        proxy_timeout 1s;
        proxy_pass dns_upstreams;
    }}
}}
"""


def test_dig_answers_cycle_and_a_stopped_upstream_is_skipped(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    upstream_port = free_port(UPSTREAM_HOSTS, (2,))  # SOCK_DGRAM
    servers: list[UdpServer] = [closing(dns_server(host, upstream_port)) for host in UPSTREAM_HOSTS]
    listen_port = free_port()
    proxy = run_sheer(article_dns_config(listen_port, upstream_port))

    answers = [dig(listen_port) for _ in range(8)]
    assert answers == list(UPSTREAM_HOSTS) * 2
    # every upstream saw the proxy, not the client, as the sender
    assert all(peer[0] == "127.0.0.1" for server in servers for peer in server.peers)

    servers[1].close()  # 127.0.0.12 stops: its ICMP port-unreachable is a failure, max_fails=1
    after = [dig(listen_port) for _ in range(6)]
    assert "" not in after, after                      # every query answered (the one sent to .12 on retry)
    assert "127.0.0.12" not in after
    assert set(after) == {"127.0.0.11", "127.0.0.13", "127.0.0.14"}
    log = proxy.error_log()
    assert "recv() failed (111: Connection refused)" in log
    assert 'upstream: "127.0.0.12:' in log
    # the session ends with the one response: nothing times out
    assert "upstream timed out" not in log
