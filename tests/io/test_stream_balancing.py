"""Balancing through a real sheer master: `hash $remote_addr` keeps a client on one upstream."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from sheer_process import Sheer, TcpEcho, free_port, udp_echo

pytestmark = pytest.mark.io


def echo_from(client: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(client, 0)) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("method", ["", " consistent", " maglev"])
def test_hash_remote_addr_sends_a_client_to_the_same_upstream(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], method: str) -> None:
    echoes = [closing(TcpEcho(f"127.0.0.{n}")) for n in (11, 12, 13)]
    port = free_port()
    servers = "".join(f"\n        server {echo.sock.getsockname()[0]}:{echo.port};" for echo in echoes)
    run_sheer(f"""stream {{
    upstream backend {{
        hash $remote_addr{method};{servers}
    }}
    server {{ listen 127.0.0.1:{port}; proxy_half_close on; proxy_pass backend; }}
}}
""")
    chosen: dict[str, set[int]] = {}
    for n in range(101, 113):
        client = f"127.0.0.{n}"
        for _ in range(3):
            before = [echo.connections for echo in echoes]
            assert echo_from(client, port, b"ping") == b"ping"
            after = [echo.connections for echo in echoes]
            chosen.setdefault(client, set()).update(i for i in range(3) if after[i] != before[i])
    assert all(len(upstreams) == 1 for upstreams in chosen.values()), chosen
    assert len(set().union(*chosen.values())) >= 2, chosen      # and clients are spread


def test_udp_hash_remote_addr_keeps_a_client_on_one_upstream(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    upstreams = [closing(udp_echo(f"127.0.0.{n}")) for n in (11, 12, 13)]
    port = free_port(kinds=(socket.SOCK_DGRAM,))
    servers = "".join(f"\n        server {up.host}:{up.port};" for up in upstreams)
    run_sheer(f"""stream {{
    upstream dns {{
        hash $remote_addr maglev;{servers}
    }}
    server {{ listen 127.0.0.1:{port} udp; proxy_responses 1; proxy_pass dns; }}
}}
""")
    chosen: dict[str, set[int]] = {}
    for n in range(101, 113):
        client = f"127.0.0.{n}"
        for _ in range(3):
            before = [len(up.peers) for up in upstreams]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((client, 0))
                sock.settimeout(3)
                sock.sendto(b"ping", ("127.0.0.1", port))
                assert sock.recv(100) == b"ping"
            after = [len(up.peers) for up in upstreams]
            chosen.setdefault(client, set()).update(i for i in range(3) if after[i] != before[i])
    assert all(len(upstreams) == 1 for upstreams in chosen.values()), chosen
    assert len(set().union(*chosen.values())) >= 2, chosen
