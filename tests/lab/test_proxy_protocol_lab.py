"""The PROXY protocol through sheer in the lab, witnessed by Debian's nginx on an upstream.

An nginx instance of this test's own (own prefix, own port, stopped by its PID) listens with
`proxy_protocol` in up1's namespace and answers what the header told it: the client's address,
though the TCP connection comes from the proxy."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheer.lab import configs
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP as _VIP
from sheer.lab.witness import NGINX, STREAM_MODULE, WITNESS_PORT

pytestmark = pytest.mark.lab

CLIENT = "192.168.99.1"
VIP = str(_VIP)
UP1 = "172.16.0.11"
PP_PORT = 9901            # the test nginx's `listen ... proxy_protocol`


@pytest.fixture
def pp_nginx(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    """nginx in up1 that answers `$proxy_protocol_addr:$proxy_protocol_port $remote_addr`."""
    prefix = Path(lab.state_dir) / f"pp-nginx-{os.getpid()}"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""load_module {STREAM_MODULE};
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 64; }}
stream {{
    server {{
        listen {UP1}:{PP_PORT} proxy_protocol;
        return "pp $proxy_protocol_addr:$proxy_protocol_port remote $remote_addr\\n";
    }}
}}
""")
    lab.run("up1", NGINX, "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf), check=True)
    pid_path = prefix / "nginx.pid"
    deadline = time.monotonic() + 5
    while not pid_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_path.read_text())
    try:
        yield prefix
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def ask(lab: Lab, port: int, send: str = "") -> tuple[str, int]:
    """Connect from the client to the VIP; the reply line and the client's own source port."""
    probe = ("import socket\n"
             f"s = socket.create_connection(('{VIP}', {port}), 3)\n"
             f"s.sendall({send!r}.encode())\n"
             "print(s.getsockname()[1]); print(s.makefile().readline().strip())\n")
    result = lab.python("client", probe)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, (result.stdout, result.stderr)
    return lines[1], int(lines[0])


def test_upstream_behind_sheer_sees_the_client_through_proxy_protocol(lab: Lab, pp_nginx: Path) -> None:
    config = configs.HEADER + f"""stream {{
    server {{
        listen {PP_PORT};
        proxy_protocol on;
        proxy_pass {UP1}:{PP_PORT};
    }}
    server {{
        listen {PP_PORT + 1};
        proxy_protocol on;
        proxy_protocol_version 2;
        proxy_pass {UP1}:{PP_PORT};
    }}
}}
"""
    with lab.proxy(config):
        for port in (PP_PORT, PP_PORT + 1):
            line, client_port = ask(lab, port)
            pp, remote = line.split(" remote ")
            # The header carries the client's address and port; the TCP peer is the proxy.
            assert pp == f"pp {CLIENT}:{client_port}", (port, line)
            assert remote != CLIENT, line


def test_go_mmproxy_style_transparency_spoofs_the_carried_address(lab: Lab) -> None:
    """A load balancer in front speaks PROXY; sheer trusts it and binds the address it carried."""
    carried = "192.168.99.77"
    config = configs.HEADER + f"""stream {{
    server {{
        listen 9904 proxy_protocol;
        set_real_ip_from 192.168.99.0/24;
        proxy_bind $remote_addr transparent;
        proxy_pass {UP1}:{WITNESS_PORT};
    }}
}}
"""
    with lab.applied("transparency", config), lab.proxy(config):
        mark = lab.mark()
        line, _ = ask(lab, 9904, f"PROXY TCP4 {carried} {VIP} 5555 9904\r\n")
        assert line.startswith(f"You connected from {carried}:"), line
        seen = [s for s in lab.seen(mark, node="up1") if s.protocol == "tcp"]
        assert [s.src for s in seen] == [carried]
