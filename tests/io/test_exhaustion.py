"""Exhaustion handled, not hidden: worker_connections bounds HTTP and stream; idle connections make
room first (nginx's "worker_connections are not enough, reusing connections"); with no descriptor
left, accept errors are said once a second with their count, no client is accepted and dropped
unanswered, and accepting resumes as soon as descriptors free up."""

from __future__ import annotations

import contextlib
import re
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sheer_process import Sheer, TcpEcho, free_port, wait_for

from sheer.lab.witness import NGINX

pytestmark = pytest.mark.io


def http_config(port: int, connections: int, extra: str = "") -> str:
    return f"""worker_processes 1;
{extra}
events {{ worker_connections {connections}; }}
http {{ server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }} }}
"""


@contextlib.contextmanager
def idle_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """Connections that never send a request (nginx's reusable connections, as keepalive ones)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def probe(port: int, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        return got


def lines(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


@contextlib.contextmanager
def nginx(tmp: Path, config: str, nofile: int | None = None) -> Iterator[Path]:
    """Debian's nginx with `config` (the reference), stopped by its PID; its error log's path."""
    log = tmp / "nginx-error.log"
    conf = tmp / "nginx.conf"
    conf.write_text(f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {log} info;\n{config}")

    def limits() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=limits)  # noqa: PLW1509 -- setrlimit only
    try:
        started = "start worker process"
        wait_for(lambda: proc.poll() is not None or (log.exists() and started in log.read_text()), 10,
                 "nginx")
        time.sleep(0.3)
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def flood_then_probe(port: int, idle: int, probes: int) -> int:
    """`idle` connections that never send a request, then `probes` requests: how many were served."""
    served = 0
    with idle_clients(port, idle):
        time.sleep(1.0)
        for _ in range(probes):
            with contextlib.suppress(OSError):
                served += probe(port, timeout=1.5).startswith(b"HTTP/1.1 200 OK\r\n")
    return served


@pytest.mark.parametrize(("connections", "nofile"), [(64, None), (512, 64)])
def test_as_many_probes_served_as_nginx(run_sheer: Callable[..., Sheer], tmp_path: Path, connections: int,
                                        nofile: int | None) -> None:
    """The issue's figure: under an idle flood, at worker_connections or out of descriptors."""
    port = free_port()
    with nginx(tmp_path, http_config(port, connections), nofile):
        by_nginx = flood_then_probe(port, 300, 10)
    run_sheer(http_config(port, connections), nofile=nofile)
    by_sheer = flood_then_probe(port, 300, 10)
    print(f"probes served: nginx {by_nginx}/10, sheer {by_sheer}/10 "
          f"(worker_connections {connections}, RLIMIT_NOFILE {nofile or 'unchanged'})")
    assert by_sheer >= by_nginx and by_sheer == 10


def test_idle_http_connections_make_room_for_new_ones(run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    proxy = run_sheer(http_config(port, 64))
    began = time.monotonic()
    with idle_clients(port, 200):
        time.sleep(0.5)
        served = [probe(port) for _ in range(30)]
    elapsed = time.monotonic() - began
    assert all(answer.startswith(b"HTTP/1.1 200 OK\r\n") for answer in served)    # every probe served
    proxy.wait_log("64 worker_connections are not enough, reusing connections")
    said = lines(proxy.error_log(), "worker_connections are not enough, reusing connections")
    assert 1 <= len(said) <= elapsed + 2                                          # once a second at most
    assert all("[warn]" in line for line in said)


def test_out_of_descriptors_http_keeps_serving(run_sheer: Callable[..., Sheer]) -> None:
    """worker_connections above RLIMIT_NOFILE: descriptors run out first; idle connections give
    theirs back, the probes are served, and the accept errors come once a second with a count."""
    port = free_port()
    proxy = run_sheer(http_config(port, 512), nofile=64)
    began = time.monotonic()
    with idle_clients(port, 300):
        time.sleep(1.0)
        served = [probe(port) for _ in range(20)]
        time.sleep(1.5)
    elapsed = time.monotonic() - began
    assert all(answer.startswith(b"HTTP/1.1 200 OK\r\n") for answer in served)
    log = proxy.error_log()
    assert "512 worker_connections exceed open file resource limit: 64" in log
    failed = lines(log, "accept4() failed (24: Too many open files)")
    assert failed and len(failed) <= elapsed + 2
    assert all("[crit]" in line for line in failed)
    assert any(re.search(r"\(\d+ more in the last second\)", line) for line in failed)


def test_worker_rlimit_nofile_sets_the_workers_limit(run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    proxy = run_sheer(http_config(port, 1024, "worker_rlimit_nofile 100;"))
    worker = proxy.wait_workers(1)[0]
    limits = Path(f"/proc/{worker}/limits").read_text()
    assert re.search(r"Max open files\s+100\s+100\s+files", limits)
    assert "1024 worker_connections exceed open file resource limit: 100" in proxy.error_log()


def test_stream_out_of_descriptors_waits_then_resumes(run_sheer: Callable[..., Sheer]) -> None:
    """No idle connection to reuse in stream: a new client waits in the listen queue (never
    accepted and dropped) and is served as soon as descriptors free up."""
    echo = TcpEcho("127.0.0.11")
    port = free_port()
    try:
        proxy = run_sheer(f"""worker_processes 1;
events {{ worker_connections 512; }}
stream {{ server {{ listen 127.0.0.1:{port}; proxy_pass 127.0.0.11:{echo.port}; }} }}
""", nofile=64)
        held = []
        for _ in range(60):                      # each holds two descriptors in sheer
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(sock)
        try:
            wait_for(lambda: "(24: Too many open files)" in proxy.error_log(), 5, "running out")
            waiting = socket.create_connection(("127.0.0.1", port), timeout=5)
            waiting.sendall(b"hello")
            waiting.settimeout(1.0)
            with pytest.raises(TimeoutError):
                waiting.recv(100)                # not answered yet, but not dropped either
            for sock in held:
                sock.close()
            held = []
            waiting.settimeout(5.0)
            assert waiting.recv(100) == b"hello"  # accepted and served once descriptors came back
            waiting.close()
        finally:
            for sock in held:
                sock.close()
        log = proxy.error_log()
        failed = lines(log, "(24: Too many open files)")
        assert failed and len(failed) <= 6           # a few lines a second, not one per client
        assert all("[crit]" in line or "[alert]" in line for line in failed)
    finally:
        echo.close()
