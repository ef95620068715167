"""What a user sees when transparency cannot work: `-t`, start-up and the failing connection say
why, in nginx's words, with the fix. Nothing here sends a packet with a foreign source address:
each case fails before the SYN (setsockopt or bind)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sheer_process import TcpEcho, free_port, wait_for

pytestmark = pytest.mark.io


def without_capabilities() -> list[str]:
    """A command prefix that runs without CAP_NET_RAW/CAP_NET_ADMIN (root keeps other powers)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop capabilities as root")
    return ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-all"]


def config(tmp_path: Path, port: int, upstream: int, bind: str) -> Path:
    path = tmp_path / "t.conf"
    path.write_text(f"""error_log {tmp_path}/error.log info;
stream {{
    upstream u {{ server 127.0.0.11:{upstream}; }}
    server {{ listen 127.0.0.1:{port}; proxy_bind {bind}; proxy_pass u; proxy_connect_timeout 1s; }}
}}
""")
    return path


def run_one_connection(tmp_path: Path, conf: Path, port: int, prefix: list[str]) -> tuple[bytes, str]:
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "sheer", "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 5, "sheer's listener")
        with socket.create_connection(("127.0.0.1", port), timeout=3) as client:
            got = client.recv(100)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    log = (tmp_path / "error.log").read_text()
    return got, stderr.decode() + log


def test_without_the_capability_t_warns_and_connections_log_nginx_wording(tmp_path: Path) -> None:
    prefix = without_capabilities()
    echo = TcpEcho("127.0.0.11")
    port = free_port()
    conf = config(tmp_path, port, echo.port, "$remote_addr transparent")
    test = subprocess.run([*prefix, sys.executable, "-m", "sheer", "-t", "-c", str(conf)], check=False,
                          capture_output=True, text=True, timeout=30)
    assert test.returncode == 0
    assert "[warn] transparent upstream connections will fail" in test.stderr
    assert "CAP_NET_RAW" in test.stderr and "setcap" in test.stderr
    got, output = run_one_connection(tmp_path, conf, port, prefix)
    assert got == b""                      # closed: nothing reached the upstream
    assert echo.connections == 0
    assert ("[alert]" in output and "setsockopt(IP_TRANSPARENT) failed (1: Operation not permitted) "
            "while connecting to upstream, client: 127.0.0.1, server: 127.0.0.1:" in output), output
    assert f'upstream: "127.0.0.11:{echo.port}"' in output
    assert "AmbientCapabilities" in output
    assert "Traceback" not in output


def test_a_foreign_address_without_transparent_is_nginx_bind_error(tmp_path: Path) -> None:
    echo = TcpEcho("127.0.0.11")
    port = free_port()
    conf = config(tmp_path, port, echo.port, "192.0.2.1")
    got, output = run_one_connection(tmp_path, conf, port, [])
    assert got == b"" and echo.connections == 0
    assert "[crit]" in output and "bind(192.0.2.1) failed (99: Cannot assign requested address) " \
        "while connecting to upstream" in output, output
    assert "add the `transparent` parameter" in output
