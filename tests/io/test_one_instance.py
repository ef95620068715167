"""One instance per address: a listener already bound by another process is nginx's
`bind() to ... failed (98: Address already in use)` at start-up, even when that process set
SO_REUSEPORT too (a second sheer on the same configuration); a reload's new address likewise.
The master's own workers and generations keep sharing their sockets."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer, free_port, wait_for

pytestmark = pytest.mark.io


def _run(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sheer", "-c", str(conf)], capture_output=True, text=True,
                          timeout=10, check=False, stdin=subprocess.DEVNULL)


def _conf(tmp_path: Path, port: int, udp: bool = False, name: str = "b.conf") -> Path:
    conf = tmp_path / name
    conf.write_text(f'pid {tmp_path}/{name}.pid;\nworker_processes 2;\n'
                    f'stream {{ server {{ listen 127.0.0.1:{port}{" udp" if udp else ""}; return "x"; }} }}'
                    "\n")
    return conf


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_a_second_sheer_on_the_same_address_is_refused(tmp_path: Path, run_sheer: Callable[..., Sheer],
                                                       udp: bool) -> None:
    port = free_port()
    first = run_sheer(f'pid {tmp_path}/a.pid;\nworker_processes 2;\n'
                      'stream '
                      f'{{ server {{ listen 127.0.0.1:{port}{" udp" if udp else ""}; return "x"; }} }}\n')
    result = _run(_conf(tmp_path, port, udp))
    assert result.returncode == 1
    where = f"127.0.0.1:{port}"
    assert f"bind() to {where} failed (98: Address already in use)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    # The first keeps its pid file and keeps serving alone.
    assert (tmp_path / "a.pid").read_text().strip() == str(first.pid)
    assert not (tmp_path / "b.conf.pid").exists()
    first.check_running()


def test_a_reuseport_socket_of_another_process_is_refused(tmp_path: Path,
                                                          closing: Callable[[Any], Any]) -> None:
    """SO_REUSEPORT by the same user would let bind() succeed: the probe must see it anyway."""
    port = free_port()
    other = closing(socket.socket())
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", port))
    other.listen(8)
    result = _run(_conf(tmp_path, port))
    assert result.returncode == 1
    assert f"bind() to 127.0.0.1:{port} failed (98: Address already in use)" in result.stderr


def test_a_wildcard_listener_of_another_process_blocks_a_specific_address(
        tmp_path: Path, closing: Callable[[Any], Any]) -> None:
    port = free_port(("0.0.0.0",))
    other = closing(socket.socket())
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("0.0.0.0", port))
    other.listen(8)
    result = _run(_conf(tmp_path, port))
    assert f"bind() to 127.0.0.1:{port} failed (98: Address already in use)" in result.stderr


def test_restart_after_stop_and_reload_share_the_sockets(tmp_path: Path, run_sheer: Callable[..., Sheer],
                                                        closing: Callable[[Any], Any]) -> None:
    """Connections left in TIME_WAIT are no conflict; a reload keeps the addresses it has and refuses
    a new one that another process holds, the old configuration serving on."""
    port, taken = free_port(), free_port()
    text = f'worker_processes 2;\nstream {{ server {{ listen 127.0.0.1:{port}; return "x"; }} }}\n'
    first = run_sheer(text)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            assert conn.recv(10) == b"x"
    first.signal(signal.SIGHUP)
    first.wait_log("reconfiguring")
    wait_for(lambda: len(first.workers()) == 2, 5.0, "the new generation")
    holder = closing(socket.socket())
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", taken))
    holder.listen(8)
    first.write(text.replace('return "x"; }',
                             f'return "x"; }} server {{ listen 127.0.0.1:{taken}; return "y"; }}'))
    first.signal(signal.SIGHUP)
    first.wait_log(f"bind() to 127.0.0.1:{taken} failed (98: Address already in use)")
    first.wait_log("the old one keeps serving")
    with socket.create_connection(("127.0.0.1", port)) as conn:
        assert conn.recv(10) == b"x"
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    second = run_sheer(text)                 # at once, with the first's connections in TIME_WAIT
    with socket.create_connection(("127.0.0.1", port)) as conn:
        assert conn.recv(10) == b"x"
    second.check_running()
