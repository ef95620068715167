"""Servers the benchmarks need on the upstreams, beside the lab's witnesses (which log every
request: fine for tests, a cost for benchmarks): a quiet nginx answering HTTP on 8080 with
keepalive (the target of the HTTP and TCP stream workloads), and an iperf3 server on up1.

They live in the lab's state directory, so `lab down` ends them with the rest; `ensure` starts
whatever is missing, so a lab rebuilt by someone else's test session is repaired before each run."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path

from sheer.lab.inspect import listeners
from sheer.lab.procs import alive, read_pid, signal_and_wait, wait_for
from sheer.lab.testing import Lab
from sheer.lab.topology import Node
from sheer.lab.witness import NGINX

HTTP_PORT = 8080
IPERF_PORT = 5201
IPERF_NODE = "up1"


def _dir(lab: Lab, node: Node) -> Path:
    return Path(lab.state_dir) / "bench" / node.name


def nginx_conf(d: Path) -> str:
    temp = "".join(f"\n    {k}_temp_path {d}/tmp/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""user root;
worker_processes 1;
worker_rlimit_nofile 70000;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log error;
events {{ worker_connections 65536; }}
http {{
    access_log off;{temp}
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server {{
        listen {HTTP_PORT} reuseport backlog=4096;
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def _start_nginx(lab: Lab, node: Node) -> None:
    d = _dir(lab, node)
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    (d / "nginx.conf").write_text(nginx_conf(d))
    lab.run(node.name, NGINX, "-e", str(d / "nginx-error.log"), "-p", str(d), "-c", str(d / "nginx.conf"),
            check=True)


def _start_iperf(lab: Lab, node: Node) -> None:
    d = _dir(lab, node)
    d.mkdir(parents=True, exist_ok=True)
    log = (d / "iperf3.log").open("ab")
    proc = subprocess.Popen(["ip", "netns", "exec", node.netns, "iperf3", "-s", "-p", str(IPERF_PORT)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (d / "iperf3.pid").write_text(f"{proc.pid}\n")


def ensure(lab: Lab) -> None:
    """The lab up and the bench servers listening (idempotent; repairs what another session removed)."""
    lab.up()
    for node in lab.topo.upstreams:
        have = listeners(node.netns)
        if ("tcp", HTTP_PORT) not in have:
            _start_nginx(lab, node)
        if node.name == IPERF_NODE and ("tcp", IPERF_PORT) not in have:
            _start_iperf(lab, node)
        wanted = {("tcp", HTTP_PORT)} | ({("tcp", IPERF_PORT)} if node.name == IPERF_NODE else set())
        wait_for(partial(_listening, node.netns, wanted), 5, f"bench servers on {node.name}")


def _listening(netns: str, wanted: set[tuple[str, int]]) -> bool:
    return wanted <= listeners(netns)


def stop(lab: Lab) -> None:
    for node in lab.topo.upstreams:
        for name in ("nginx.pid", "iperf3.pid"):
            pid = read_pid(_dir(lab, node) / name)
            if pid is not None and alive(pid):
                signal_and_wait(pid)
