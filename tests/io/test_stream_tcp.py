"""TCP through a real sheer master: EOF handling (proxy_half_close), next upstream on connect refused,
`return`."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sheer_process import Sheer, TcpEcho, free_port, wait_for

pytestmark = pytest.mark.io


def connect(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def echo_through(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send `payload`, shut down the write side, read until the proxy closes."""
    with connect(port, timeout=timeout) as sock:
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(read_all(sock)))
        reader.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        reader.join(timeout)
        assert not reader.is_alive(), "the proxy never closed the connection"
        return received[0]


def proxy_config(port: int, servers: str, extra: str = "", half_close: bool = True) -> str:
    """The echo tests half-close their side and read the rest: they need `proxy_half_close on`."""
    half = "\n        proxy_half_close on;" if half_close else ""
    return f"""stream {{
    upstream backend {{{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_connect_timeout 2s;{half}{extra}
        proxy_pass backend;
    }}
}}
"""


def test_one_megabyte_echo_with_half_close(run_sheer: Callable[..., Sheer],
                                           closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{echo.port};"))
    payload = os.urandom(1 << 20)
    assert echo_through(port, payload) == payload
    assert echo.peers[0][0] == "127.0.0.1"  # the upstream sees the proxy


def test_client_half_close_still_receives_the_rest(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    """The client sends everything and shuts down writing before reading a single byte."""
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{echo.port};"))
    payload = os.urandom(200_000)
    with connect(port) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == payload


def test_client_eof_ends_the_session_by_default(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Any) -> None:
    """nginx's default (`proxy_half_close off`): the client's EOF closes both connections once what
    it sent has reached the upstream; the answer the echo sends afterwards is not waited for."""
    echo = closing(TcpEcho("127.0.0.11", delay=0.3))
    port = free_port()
    proxy = run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{echo.port};", half_close=False,
                                   extra=f"\n        error_log {tmp_path / 'error.log'} info;"))
    with connect(port) as sock:
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b""
    wait_for(lambda: echo.received == [b"hello"], what="the upstream to receive the client's bytes")
    wait_for(lambda: "client disconnected" in (tmp_path / "error.log").read_text(), what="the info line")
    assert ("client disconnected, bytes from/to client:5/0, bytes from/to upstream:0/5"
            in (tmp_path / "error.log").read_text())
    proxy.check_running()


def test_upstream_eof_ends_the_session_by_default(run_sheer: Callable[..., Sheer]) -> None:
    """The upstream's EOF closes the client's connection once everything before it was delivered."""
    upstream = socket.create_server(("127.0.0.11", 0))
    closing_upstream = threading.Thread(target=lambda: _answer_and_close(upstream, b"x" * 300_000),
                                        daemon=True)
    closing_upstream.start()
    port = free_port()
    run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{upstream.getsockname()[1]};",
                           half_close=False))
    with connect(port) as sock:
        sock.sendall(b"GET")
        assert read_all(sock) == b"x" * 300_000   # never shut down by the client: the proxy closed
    closing_upstream.join(5)
    upstream.close()


def _answer_and_close(listener: socket.socket, answer: bytes) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.recv(100)
        conn.sendall(answer)


def test_connect_refused_goes_to_the_next_upstream(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.12"))
    refused = free_port(("127.0.0.11",), (socket.SOCK_STREAM,))
    port = free_port()
    proxy = run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{refused};\n"
                                         f"        server 127.0.0.12:{echo.port};"))
    for _ in range(3):
        assert echo_through(port, b"ping\n", timeout=1.0) == b"ping\n"
    assert echo.connections == 3
    log = proxy.error_log()
    assert "connect() failed (111: Connection refused) while connecting to upstream" in log
    assert f'upstream: "127.0.0.11:{refused}"' in log
    assert "upstream server temporarily disabled while connecting to upstream" in log


def test_connect_refused_everywhere_closes_the_client(run_sheer: Callable[..., Sheer]) -> None:
    refused = free_port(("127.0.0.11",), (socket.SOCK_STREAM,))
    port = free_port()
    proxy = run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{refused};"))
    with connect(port) as sock:
        sock.sendall(b"hello")
        try:
            assert read_all(sock) == b""
        except ConnectionResetError:
            # closed before "hello" was read (the refusal came first): the kernel resets, as for nginx
            pass
    proxy.wait_log("connect() failed (111: Connection refused) while connecting to upstream")


def test_stream_return(run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    run_sheer(f"""stream {{
    server {{
        listen 127.0.0.1:{port};
        return "hello $remote_addr from $server_addr:$server_port\\n";
    }}
}}
""")
    with connect(port) as sock:
        local = sock.getsockname()
        assert read_all(sock) == f"hello {local[0]} from 127.0.0.1:{port}\n".encode()


def test_connection_is_the_worker_s_connection_counter(run_sheer: Callable[..., Sheer]) -> None:
    """$connection counts the worker's client connections, TCP and UDP, as nginx's serial number."""
    port, udp = free_port(), free_port(kinds=(socket.SOCK_DGRAM,))
    run_sheer(f"""worker_processes 1;
stream {{
    server {{ listen 127.0.0.1:{port}; return "$connection\n"; }}
    server {{ listen 127.0.0.1:{udp} udp; return "$connection\n"; }}
}}
""")
    numbers = []
    for _ in range(2):
        with connect(port) as sock:
            numbers.append(int(read_all(sock)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(b"x", ("127.0.0.1", udp))
        numbers.append(int(sock.recv(100)))
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2] and numbers[0] < 10, numbers


def test_access_log(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Any) -> None:
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    log = tmp_path / "access.log"
    proxy = run_sheer(f"""stream {{
    log_format basic '$remote_addr $protocol $status $bytes_sent $bytes_received $upstream_addr '
                     '$server_addr:$server_port';
    server {{
        listen 127.0.0.1:{port};
        access_log {log} basic;
        proxy_half_close on;
        proxy_pass 127.0.0.11:{echo.port};
    }}
}}
""")
    assert echo_through(port, b"x" * 1000) == b"x" * 1000
    wait_for(lambda: log.exists() and log.read_text().endswith("\n"), what="the access log line")
    assert log.read_text() == f"127.0.0.1 TCP 200 1000 1000 127.0.0.11:{echo.port} 127.0.0.1:{port}\n"
    proxy.check_running()


def test_upstream_first_byte_time(run_sheer: Callable[..., Sheer], tmp_path: Any) -> None:
    """An upstream that answers 0.4 s after the client spoke: $upstream_first_byte_time says so (nginx's
    stream_access_log.t); an access_log file no server writes to exists all the same, as nginx's."""
    port = free_port()
    listener = socket.create_server(("127.0.0.11", 0))
    upstream = listener.getsockname()[1]

    def slow() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(100)
            time.sleep(0.4)
            conn.sendall(b"ack")

    server = threading.Thread(target=slow, daemon=True)
    server.start()
    log, unused = tmp_path / "time.log", tmp_path / "unused.log"
    run_sheer(f"""stream {{
    log_format time $upstream_connect_time:$upstream_first_byte_time:$upstream_session_time;
    access_log {unused} time;
    server {{ listen 127.0.0.1:{port}; access_log {log} time; proxy_pass 127.0.0.11:{upstream}; }}
}}
""")
    with connect(port) as client:
        client.sendall(b"hello")
        assert client.recv(100) == b"ack"
    assert unused.exists() and unused.read_text() == ""
    listener.close()
    wait_for(lambda: log.exists() and log.read_text().endswith("\n"), what="the access log line")
    connect_time, first_byte, session = (float(value) for value in log.read_text().strip().split(":"))
    assert connect_time < 0.2 and 0.35 < first_byte < 2 and session >= first_byte
def test_per_try_variables_list_every_try(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any],
                                         tmp_path: Any) -> None:
    """nginx's u->state per try: a refused connect is `-` and 0 bytes before the try that worked."""
    echo = closing(TcpEcho("127.0.0.12"))
    refused = free_port(("127.0.0.11",), (socket.SOCK_STREAM,))
    port = free_port()
    log = tmp_path / "access.log"
    run_sheer(f"""stream {{
    log_format tries '$upstream_addr!$upstream_bytes_sent!$upstream_bytes_received!$upstream_connect_time';
    upstream u {{ server 127.0.0.11:{refused}; server 127.0.0.12:{echo.port}; }}
    server {{ listen 127.0.0.1:{port}; access_log {log} tries; proxy_half_close on; proxy_pass u; }}
}}
""")
    assert echo_through(port, b"ping") == b"ping"
    wait_for(lambda: log.exists() and log.read_text().endswith("\n"), what="the access log line")
    addrs, sent, received, connect = log.read_text().strip().split("!")
    assert addrs == f"127.0.0.11:{refused}, 127.0.0.12:{echo.port}"
    assert (sent, received) == ("0, 4", "0, 4")
    assert connect.startswith("-, 0.0"), connect


def test_proxy_timeout_closes_an_idle_session_but_not_a_busy_one(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Any) -> None:
    """proxy_timeout: no byte either way for that long ends the session; traffic keeps it alive."""
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    error_log = tmp_path / "error.log"
    run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{echo.port};",
                           extra=f"\n        proxy_timeout 1s;\n        error_log {error_log} info;"))
    with connect(port) as busy, connect(port) as idle:
        idle.sendall(b"x")
        assert idle.recv(10) == b"x"
        started = time.monotonic()
        for n in range(6):                  # 2.4 s of traffic every 0.4 s: longer than the timeout
            busy.sendall(b"%d" % n)
            assert busy.recv(10) == b"%d" % n
            time.sleep(0.4)
        assert idle.recv(10) == b""         # the idle one was closed meanwhile
        assert time.monotonic() - started >= 0.9
        busy.sendall(b"still")
        assert busy.recv(10) == b"still"
    assert "connection timed out, client: 127.0.0.1" in error_log.read_text()


def _serve_once(handler: Callable[[socket.socket], None]) -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server(("127.0.0.11", 0))

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            handler(conn)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener, thread


def test_a_slow_client_gets_every_byte_before_the_upstreams_eof_ends_the_session(
        run_sheer: Callable[..., Sheer]) -> None:
    """The upstream sends 16 MB and closes at once; the client starts reading only later: sheer
    holds back reading the upstream, and ends the session only once everything reached the client."""
    payload = os.urandom(16 << 20)
    listener, thread = _serve_once(lambda conn: conn.sendall(payload))
    port = free_port()
    run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{listener.getsockname()[1]};",
                           half_close=False))
    with connect(port, timeout=10) as sock:
        time.sleep(0.5)
        assert hashlib.sha256(read_all(sock)).digest() == hashlib.sha256(payload).digest()
    thread.join(5)
    listener.close()


def test_a_slow_upstream_gets_every_byte_of_a_large_upload(run_sheer: Callable[..., Sheer]) -> None:
    """The client sends 16 MB and half-closes; the upstream reads only later, then answers the digest."""
    payload = os.urandom(16 << 20)

    def digest_after_a_while(conn: socket.socket) -> None:
        time.sleep(0.5)
        digest = hashlib.sha256()
        while chunk := conn.recv(1 << 20):
            digest.update(chunk)
        conn.sendall(digest.hexdigest().encode())

    listener, thread = _serve_once(digest_after_a_while)
    port = free_port()
    run_sheer(proxy_config(port, f"\n        server 127.0.0.11:{listener.getsockname()[1]};"))
    with connect(port, timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == hashlib.sha256(payload).hexdigest().encode()
    thread.join(5)
    listener.close()


def test_connect_timeout_goes_to_the_next_upstream(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any]) -> None:
    """A peer whose accept queue is full drops SYNs: after proxy_connect_timeout (2s) the next one serves."""
    stuck = closing(socket.create_server(("127.0.0.13", 0), backlog=0))
    fillers = []
    for _ in range(3):                   # fill the accept queue; later SYNs are dropped
        filler = closing(socket.socket())
        filler.setblocking(False)
        filler.connect_ex(stuck.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    echo = closing(TcpEcho("127.0.0.12"))
    port = free_port()
    proxy = run_sheer(proxy_config(port, "\n        server "
                                         f"{stuck.getsockname()[0]}:{stuck.getsockname()[1]};\n        "
                                         f"server 127.0.0.12:{echo.port};"))
    started = time.monotonic()
    assert echo_through(port, b"ping\n", timeout=5.0) == b"ping\n"
    assert echo.connections == 1
    log = proxy.error_log()
    if "upstream timed out (110: Connection timed out) while connecting to upstream" in log:
        assert time.monotonic() - started >= 1.9
        assert f'upstream: "127.0.0.13:{stuck.getsockname()[1]}"' in log
    else:   # round robin went to the good peer first: ask again, the stuck one is next
        assert echo_through(port, b"pong\n", timeout=5.0) == b"pong\n"
        proxy.wait_log("upstream timed out (110: Connection timed out) while connecting to upstream")


def test_a_connect_that_completes_later_relays_and_ends_as_usual(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Any) -> None:
    """The upstream's accept queue is full when sheer connects: the SYN is dropped, connect() is under
    way, and its retransmission (after ~1 s) is accepted once the queue drained, within
    proxy_connect_timeout: the session goes on from the writable edge (the path a connect() that does
    not complete inside the call takes), relays, and ends as usual."""
    listener = closing(socket.create_server(("127.0.0.13", 0), backlog=0))
    fillers = []
    for _ in range(3):                   # fill the accept queue; later SYNs are dropped
        filler = closing(socket.socket())
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    port = free_port()
    log = tmp_path / "error.log"
    run_sheer(f"""stream {{
    server {{
        listen 127.0.0.1:{port};
        proxy_connect_timeout 10s;
        proxy_half_close on;
        error_log {log} info;
        proxy_pass 127.0.0.13:{listener.getsockname()[1]};
    }}
}}
""")

    filler_ends = {f.getsockname() for f in fillers}

    def drain_then_echo() -> None:
        time.sleep(0.5)                  # sheer's SYN was dropped meanwhile
        accepted = []
        conn = None
        while conn is None:              # the fillers' connections, in whatever order, and sheer's
            candidate, peer = listener.accept()
            if peer in filler_ends:
                accepted.append(candidate)
            else:
                conn = candidate
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
        for other in accepted:
            other.close()

    server = threading.Thread(target=drain_then_echo, daemon=True)
    started = time.monotonic()
    server.start()
    assert echo_through(port, b"late but there\n", timeout=10.0) == b"late but there\n"
    assert time.monotonic() - started >= 0.5      # nothing was accepted before: connect() was under way
    server.join(5)
    assert "timed out" not in log.read_text()


def test_listen_buffers_are_inherited_by_accepted_connections() -> None:
    """`listen ... sndbuf=32k rcvbuf=64k`: set on the listener, every accepted connection has them (the
    kernel reports twice what was asked: its bookkeeping)."""
    from sheer.config.model import Listen
    from sheer.io.sockets import listener

    sock = listener(Listen("127.0.0.1", 0, sndbuf=32768, rcvbuf=65536))
    try:
        sock.setblocking(True)
        with socket.create_connection(sock.getsockname(), timeout=5):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 32768
                assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 65536
    finally:
        sock.close()
