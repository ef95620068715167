"""UDP through a real sheer master: sessions by client ip:port, proxy_timeout, proxy_requests, failures."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer, UdpServer, free_port, udp_echo, wait_for

pytestmark = pytest.mark.io


def client(closing: Callable[[Any], Any]) -> socket.socket:
    sock: socket.socket = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    return sock


def stream_udp(port: int, upstreams: list[UdpServer], extra: str = "") -> str:
    servers = "".join(f"\n        server {u.host}:{u.port};" for u in upstreams)
    return f"""stream {{
    upstream backend {{{servers}
    }}
    server {{
        listen 127.0.0.1:{port} udp;{extra}
        proxy_pass backend;
    }}
}}
"""


def test_two_datagrams_from_one_client_in_quick_succession(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    def slow_echo(data: bytes, _peer: tuple[str, int]) -> list[bytes]:
        time.sleep(0.05)  # the second datagram reaches sheer before the first answer does
        return [data]

    echo = closing(UdpServer("127.0.0.11", 0, slow_echo))
    port = free_port()
    run_sheer(stream_udp(port, [echo], "\n        proxy_responses 1;\n        proxy_timeout 1s;"))
    sock = client(closing)
    sock.sendto(b"first", ("127.0.0.1", port))
    sock.sendto(b"second", ("127.0.0.1", port))
    answers = {sock.recv(100), sock.recv(100)}
    assert answers == {b"first", b"second"}
    # one session: both went out of the same upstream socket
    assert len(echo.peers) == 2 and echo.peers[0] == echo.peers[1]


def test_proxy_timeout_ends_a_session(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    echo = closing(udp_echo("127.0.0.11"))
    port = free_port()
    proxy = run_sheer(stream_udp(port, [echo], "\n        proxy_timeout 300ms;"))  # proxy_responses unlimited
    sock = client(closing)
    sock.sendto(b"one", ("127.0.0.1", port))
    assert sock.recv(100) == b"one"
    sock.sendto(b"two", ("127.0.0.1", port))
    assert sock.recv(100) == b"two"
    assert echo.peers[0] == echo.peers[1]  # still the same session
    proxy.wait_log("udp timed out, packets from/to client:2/2")
    sock.sendto(b"three", ("127.0.0.1", port))
    assert sock.recv(100) == b"three"
    assert echo.peers[2] != echo.peers[0]  # a new session, a new upstream socket
    # unlimited responses: ending by timeout is not a failure
    assert "upstream timed out" not in proxy.error_log()


def test_missing_response_is_an_upstream_failure(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    silent = closing(UdpServer("127.0.0.11", 0, lambda _data, _peer: None))
    echo = closing(udp_echo("127.0.0.12"))
    port = free_port()
    proxy = run_sheer(stream_udp(port, [silent, echo],
                                 "\n        proxy_responses 1;\n        proxy_timeout 200ms;"))
    first = client(closing)
    first.sendto(b"lost", ("127.0.0.1", port))
    with pytest.raises(TimeoutError):
        first.settimeout(0.5)
        first.recv(100)
    proxy.wait_log("upstream timed out (110: Connection timed out) while proxying connection")
    proxy.wait_log("upstream server temporarily disabled while proxying connection")
    for i in range(4):  # the silent peer is out for fail_timeout: every new session goes to the echo
        sock = client(closing)
        sock.sendto(b"q%d" % i, ("127.0.0.1", port))
        assert sock.recv(100) == b"q%d" % i
    assert len(silent.peers) == 1 and len(echo.peers) == 4


def test_proxy_requests_unbinds_the_client(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    echo = closing(udp_echo("127.0.0.11"))
    port = free_port()
    run_sheer(stream_udp(port, [echo], "\n        proxy_requests 1;\n        proxy_timeout 2s;"))
    sock = client(closing)
    for data in (b"a", b"b", b"c"):
        sock.sendto(data, ("127.0.0.1", port))
        assert sock.recv(100) == data
    assert len(set(echo.peers)) == 3  # each datagram opened its own session


def test_proxy_requests_2_responses_1_keeps_two_datagrams_on_one_upstream(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    # the case: each datagram answered before the next is sent; nginx keeps the first two
    # on one session (one upstream socket, one upstream) and opens a new one for the third
    first = closing(udp_echo("127.0.0.11"))
    second = closing(udp_echo("127.0.0.12"))
    port = free_port()
    extra = "\n        proxy_requests 2;\n        proxy_responses 1;\n        proxy_timeout 2s;"
    proxy = run_sheer(stream_udp(port, [first, second], extra))
    sock = client(closing)
    for data in (b"a", b"b", b"c"):
        sock.sendto(data, ("127.0.0.1", port))
        assert sock.recv(100) == data
    peers = first.peers + second.peers
    assert len(peers) == 3
    by_upstream = [len(first.peers), len(second.peers)]
    assert sorted(by_upstream) == [1, 2]           # round robin: a session per upstream
    two = first if len(first.peers) == 2 else second
    assert two.peers[0] == two.peers[1]             # the first two: one session's socket
    proxy.wait_log("udp done, packets from/to client:2/2")


def test_udp_return_and_access_log(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Path) -> None:
    echo = closing(udp_echo("127.0.0.11"))
    ret, port = free_port(), free_port()
    log = tmp_path / "udp.log"
    run_sheer(f"""stream {{
    log_format udp '$protocol $status $bytes_received $bytes_sent $upstream_addr';
    server {{
        listen 127.0.0.1:{ret} udp;
        return "hi $remote_port";
    }}
    server {{
        listen 127.0.0.1:{port} udp;
        proxy_responses 1;
        access_log {log} udp;
        proxy_pass 127.0.0.11:{echo.port};
    }}
}}
""")
    sock = client(closing)
    sock.sendto(b"x", ("127.0.0.1", ret))
    assert sock.recv(100) == f"hi {sock.getsockname()[1]}".encode()
    sock.sendto(b"12345", ("127.0.0.1", port))
    assert sock.recv(100) == b"12345"
    wait_for(lambda: log.exists() and log.read_text().endswith("\n"), what="the access log line")
    assert log.read_text() == f"UDP 200 5 5 127.0.0.11:{echo.port}\n"


def test_many_clients_many_sessions(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    echo = closing(udp_echo("127.0.0.11"))
    port = free_port()
    run_sheer(stream_udp(port, [echo], "\n        proxy_responses 1;\n        proxy_timeout 2s;"))
    sockets = [client(closing) for _ in range(50)]
    started = time.monotonic()
    for i, sock in enumerate(sockets):
        sock.sendto(b"%d" % i, ("127.0.0.1", port))
    for i, sock in enumerate(sockets):
        assert sock.recv(100) == b"%d" % i
    assert time.monotonic() - started < 5


def test_sigquit_waits_for_an_open_session_then_exits(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    """A graceful shutdown lets a session that still waits for an answer have it, then ends."""
    release = threading.Event()

    def two_answers(_data: bytes, peer: tuple[str, int]) -> list[bytes]:
        upstream.sock.sendto(b"one", peer)
        release.wait(10)              # the second answer comes after SIGQUIT
        return [b"two"]

    upstream = closing(UdpServer("127.0.0.11", 0, two_answers))
    port = free_port()
    extra = "\n        proxy_responses 2;\n        proxy_timeout 10s;"
    proxy = run_sheer(stream_udp(port, [upstream], extra))
    sock = client(closing)
    sock.sendto(b"q", ("127.0.0.1", port))
    assert sock.recv(100) == b"one"
    proxy.signal(signal.SIGQUIT)
    proxy.wait_log("gracefully shutting down")
    time.sleep(0.5)
    assert proxy.proc is not None and proxy.proc.poll() is None     # the session holds the worker
    release.set()
    assert sock.recv(100) == b"two"
    assert proxy.wait(5) == 0
