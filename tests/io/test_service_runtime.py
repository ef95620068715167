"""What systemd and `ps` see of a running sheer: sd_notify messages (READY, RELOADING, STOPPING)
on a NOTIFY_SOCKET the test listens on, and nginx's process titles."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sheer_process import Sheer, TcpEcho, free_port, wait_for

pytestmark = pytest.mark.io


class NotifySocket:
    """What systemd would receive: one datagram per sd_notify() call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []

    def collect(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(fields)

    def wait(self, key: str, count: int = 1) -> list[dict[str, str]]:
        wait_for(lambda: sum(key in m for m in self.collect()) >= count, 5.0, f"{count} x {key} from sheer")
        return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(name="notify")
def notify_fixture(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


def _config(port: int, upstream: int, extra: str = "") -> str:
    return (f"worker_processes 2;\nstream {{ upstream u {{ server 127.0.0.11:{upstream}; }}\n"
            f"  server {{ listen 127.0.0.1:{port}; proxy_pass u; {extra} }} }}\n")


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_ready_reloading_ready_stopping(tmp_path: Path, notify: NotifySocket, closing) -> None:  # type: ignore[no-untyped-def]
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    sheer = Sheer(tmp_path, _config(port, echo.port), env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        sheer.start()
        first = notify.wait("READY")[0]
        assert first["READY"] == "1" and first["MAINPID"] == str(sheer.pid)
        assert "2 worker(s)" in first["STATUS"]

        sheer.signal(signal.SIGHUP)
        messages = notify.wait("READY", 2)
        reloading = next(i for i, m in enumerate(messages) if "RELOADING" in m)
        assert int(messages[reloading]["MONOTONIC_USEC"]) > 0
        assert "READY" in messages[reloading + 1] and "generation 1" in messages[reloading + 1]["STATUS"]

        sheer.write(_config(port, echo.port, "no_such_directive;"))   # a refused reload ends with READY too
        sheer.signal(signal.SIGHUP)
        messages = notify.wait("READY", 3)
        assert "refused" in messages[-1]["STATUS"] and "generation 1" in messages[-1]["STATUS"]

        sheer.signal(signal.SIGQUIT)
        assert sheer.wait() == 0
        assert notify.collect()[-1]["STOPPING"] == "1"
    finally:
        sheer.stop()


def test_no_notify_socket_is_fine(run_sheer, closing) -> None:  # type: ignore[no-untyped-def]
    echo = closing(TcpEcho("127.0.0.11"))
    sheer = run_sheer(_config(free_port(), echo.port))
    sheer.signal(signal.SIGHUP)
    sheer.wait_log("reconfiguring")
    sheer.check_running()


def test_a_stop_right_after_a_reload_kills_no_worker(run_sheer, closing) -> None:  # type: ignore[no-untyped-def]
    """A SIGQUIT reaching a worker just forked (before its handlers) or one already draining: nginx's
    workers block signals until they handle them, and an exiting one ignores another quit. Neither may
    die of the signal ("worker process N exited on signal 3", an alert)."""
    echo = closing(TcpEcho("127.0.0.11"))
    for _ in range(3):
        sheer = run_sheer(_config(free_port(), echo.port))
        sheer.signal(signal.SIGHUP)
        sheer.wait_log("reconfiguring")
        sheer.signal(signal.SIGQUIT)
        assert sheer.wait(10) == 0
        assert "exited on signal" not in sheer.error_log(), sheer.error_log()


def test_process_titles_as_nginx(run_sheer, closing) -> None:  # type: ignore[no-untyped-def]
    echo = closing(TcpEcho("127.0.0.11"))
    port = free_port()
    sheer = run_sheer(_config(port, echo.port, "health_check interval=1s;"))
    master = cmdline(sheer.pid)
    assert master == f"sheer: master process sheer -c {sheer.conf}"
    titles = sorted(cmdline(pid) for pid in sheer.workers())
    assert titles == ["sheer: health checker", "sheer: worker process", "sheer: worker process"]
    # The workers are children of the master whose pid `ps` shows: their parent is it.
    for pid in sheer.workers():
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(sheer.pid)
