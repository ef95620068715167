"""The master/worker runtime: SIGHUP reload, SIGQUIT drain, SIGTERM, pid file, -s, worker_processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer, TcpEcho, alive, children_of, free_port, wait_for

pytestmark = pytest.mark.io


def config(tmp_path: Path, text: str, ret_port: int, echo_port: int, upstream: int, workers: int = 1) -> str:
    return f"""pid {tmp_path}/sheer.pid;
worker_processes {workers};
stream {{
    server {{
        listen 127.0.0.1:{ret_port};
        return "{text}\\n";
    }}
    server {{
        listen 127.0.0.1:{echo_port};
        proxy_pass 127.0.0.11:{upstream};
    }}
}}
"""


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def echo_once(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


class Hammer:
    """Connects to `port` back to back in a thread, recording every answer and every failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[bytes] = []
        self.failures: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while self.running:
            try:
                self.answers.append(fetch(self.port))
            except OSError as exc:
                self.failures.append(repr(exc))

    def close(self) -> None:
        self.running = False
        self.thread.join(5)


@pytest.fixture(name="setup")
def setup_fixture(tmp_path: Path, closing: Callable[[Any], Any]) -> tuple[int, int, int]:
    echo = closing(TcpEcho("127.0.0.11"))
    return free_port(), free_port(), echo.port


def test_reload_keeps_held_connection_and_drops_nothing(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Path,
        setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))
    assert (tmp_path / "sheer.pid").read_text() == f"{proxy.pid}\n"
    [old_worker] = proxy.workers()
    assert fetch(ret) == b"v1\n"

    held = closing(socket.create_connection(("127.0.0.1", proxied), timeout=3))
    assert echo_once(held, b"before\n") == b"before\n"
    hammer = closing(Hammer(ret))
    wait_for(lambda: len(hammer.answers) > 20, what="the client loop")

    proxy.write(config(tmp_path, "v2", ret, proxied, upstream))
    proxy.signal(signal.SIGHUP)
    wait_for(lambda: hammer.answers and hammer.answers[-1] == b"v2\n", what="the new configuration")
    count = len(hammer.answers)
    wait_for(lambda: len(hammer.answers) > count + 20, what="more connections after the reload")
    hammer.close()

    assert hammer.failures == []
    assert set(hammer.answers) == {b"v1\n", b"v2\n"}
    assert hammer.answers[-20:] == [b"v2\n"] * 20

    # the old worker keeps serving its connection until the client ends it
    assert alive(old_worker)
    assert old_worker in proxy.workers()
    assert echo_once(held, b"after reload\n") == b"after reload\n"
    held.close()
    wait_for(lambda: old_worker not in proxy.workers(), what="the old worker to exit and be reaped")
    assert not alive(old_worker) and len(proxy.workers()) == 1
    assert fetch(ret) == b"v2\n"
    log = proxy.error_log()
    assert "reconfiguring" in log and "gracefully shutting down" in log


def test_bad_config_on_reload_is_refused(
        run_sheer: Callable[..., Sheer], tmp_path: Path, setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))
    [worker] = proxy.workers()
    proxy.write(config(tmp_path, "v2", ret, proxied, upstream).replace("return", "retrun"))
    proxy.signal(signal.SIGHUP)
    proxy.wait_log("the new configuration is refused, the old one keeps serving")
    assert f'{proxy.conf}:7: unknown directive "retrun"' in proxy.error_log()
    assert fetch(ret) == b"v1\n"
    assert proxy.workers() == [worker]
    # a good config after the bad one is taken
    proxy.write(config(tmp_path, "v3", ret, proxied, upstream))
    proxy.signal(signal.SIGHUP)
    wait_for(lambda: fetch(ret) == b"v3\n", what="v3")


def test_sigquit_drains_then_exits_zero(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Path,
        setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))
    held = closing(socket.create_connection(("127.0.0.1", proxied), timeout=3))
    assert echo_once(held, b"one\n") == b"one\n"
    proxy.signal(signal.SIGQUIT)
    proxy.wait_log("gracefully shutting down")
    # stopped accepting: new clients are refused, not left hanging
    wait_for(lambda: _refused(ret), what="new connections to be refused")
    assert proxy.proc is not None and proxy.proc.poll() is None
    assert echo_once(held, b"still here\n") == b"still here\n"
    held.close()
    assert proxy.wait(5) == 0
    assert not (tmp_path / "sheer.pid").exists()


def test_worker_shutdown_timeout_closes_what_is_left(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Path,
        setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer("worker_shutdown_timeout 1s;\n" + config(tmp_path, "v1", ret, proxied, upstream))
    held = closing(socket.create_connection(("127.0.0.1", proxied), timeout=5))
    assert echo_once(held, b"one\n") == b"one\n"
    began = time.monotonic()
    proxy.signal(signal.SIGQUIT)
    proxy.wait_log("gracefully shutting down")
    assert held.recv(100) == b""            # closed by the timeout, not by the client
    assert 0.5 < time.monotonic() - began < 4.5
    assert proxy.wait(5) == 0
    assert "shutdown timeout: closing the connections left" in proxy.error_log()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.recv(16)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def test_sigterm_stops_fast(
        run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any], tmp_path: Path,
        setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream, workers=2))
    workers = proxy.workers()
    held = closing(socket.create_connection(("127.0.0.1", proxied), timeout=3))
    assert echo_once(held, b"one\n") == b"one\n"
    started = time.monotonic()
    proxy.signal(signal.SIGTERM)
    assert proxy.wait(5) == 0
    assert time.monotonic() - started < 3.0  # a drain would wait for the held connection
    assert held.recv(16) == b""  # the held connection was closed, not drained
    assert not any(alive(pid) for pid in workers)
    assert not (tmp_path / "sheer.pid").exists()


def test_signals_through_the_pid_file(
        run_sheer: Callable[..., Sheer], tmp_path: Path, setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))

    def cli(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sheer", "-c", str(proxy.conf), "-s", name],
                              capture_output=True, text=True, timeout=10, check=False)

    proxy.write(config(tmp_path, "v2", ret, proxied, upstream))
    result = cli("reload")
    assert (result.returncode, result.stderr) == (0, "")
    wait_for(lambda: fetch(ret) == b"v2\n", what="the reload")
    assert cli("stop").returncode == 0
    assert proxy.wait(5) == 0
    assert not (tmp_path / "sheer.pid").exists()
    stale = cli("stop")
    assert stale.returncode == 1 and "Traceback" not in stale.stderr


def test_worker_processes_2_gives_two_workers(
        run_sheer: Callable[..., Sheer], tmp_path: Path, setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream, workers=2))
    workers = proxy.workers()
    assert len(workers) == 2 and proxy.pid not in workers
    for pid in workers:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[1]) == proxy.pid  # ppid: children of the master
    assert children_of(workers[0]) == [] and children_of(workers[1]) == []
    assert fetch(ret) == b"v1\n"
    # a reload replaces both
    proxy.signal(signal.SIGHUP)
    wait_for(lambda: not set(workers) & set(proxy.workers()) and len(proxy.workers()) == 2,
             what="two new workers")


def test_reload_with_unopenable_access_log_is_refused(
        run_sheer: Callable[..., Sheer], tmp_path: Path, setup: tuple[int, int, int]) -> None:
    """What `sheer -t` checks (log files can be opened) is checked on reload too, before new workers start."""
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))
    [worker] = proxy.workers()
    bad = config(tmp_path, "v2", ret, proxied, upstream).replace(
        "        return", f"        access_log {tmp_path}/missing/access.log basic;\n        return").replace(
        "stream {", "stream {\n    log_format basic '$remote_addr';")
    proxy.write(bad)
    proxy.signal(signal.SIGHUP)
    proxy.wait_log("the new configuration is refused, the old one keeps serving")
    assert f'open() "{tmp_path}/missing/access.log" failed' in proxy.error_log()
    assert fetch(ret) == b"v1\n"
    proxy.check_running()
    assert proxy.workers() == [worker]


def test_address_in_use_is_a_clean_startup_error(tmp_path: Path, closing: Callable[[Any], Any]) -> None:
    busy = closing(socket.socket())
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    conf = tmp_path / "sheer.conf"
    conf.write_text(f'stream {{ server {{ listen 127.0.0.1:{port}; return "x"; }} }}\n')
    result = subprocess.run([sys.executable, "-m", "sheer", "-c", str(conf)], capture_output=True, text=True,
                            timeout=10, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert f"bind() to 127.0.0.1:{port} failed (98: Address already in use)" in result.stderr
    assert "Traceback" not in result.stderr


def test_reload_changes_listeners_and_worker_count(
        run_sheer: Callable[..., Sheer], tmp_path: Path, setup: tuple[int, int, int]) -> None:
    ret, proxied, upstream = setup
    extra = free_port()
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))
    added = config(tmp_path, "v2", ret, proxied, upstream, workers=2).replace(
        "stream {", f'stream {{\n    server {{ listen 127.0.0.1:{extra}; return "extra\\n"; }}')
    proxy.write(added)
    proxy.signal(signal.SIGHUP)
    wait_for(lambda: len(proxy.workers()) == 2 and fetch(ret) == b"v2\n", what="two v2 workers")
    assert fetch(extra) == b"extra\n"
    proxy.write(config(tmp_path, "v3", ret, proxied, upstream))
    proxy.signal(signal.SIGHUP)
    wait_for(lambda: len(proxy.workers()) == 1 and fetch(ret) == b"v3\n", what="one v3 worker")
    wait_for(lambda: _refused(extra), what="the removed listener to be closed")


def test_a_worker_killed_right_after_start_is_respawned(
        run_sheer: Callable[..., Sheer], tmp_path: Path, setup: tuple[int, int, int]) -> None:
    # Only a worker that *fails to start* (exit code 2, its log says why) stops the server; one
    # killed by a signal, even at once (the OOM killer, kill -9), is replaced, as nginx does.
    ret, proxied, upstream = setup
    proxy = run_sheer(config(tmp_path, "v1", ret, proxied, upstream))
    [worker] = proxy.workers()
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: proxy.workers() and proxy.workers() != [worker], what="a new worker")
    assert alive(proxy.pid)
    assert fetch(ret) == b"v1\n"
    assert "exited on signal 9" in proxy.error_log()
