"""Servers the benchmarks need on the upstreams, beside the lab's witnesses (which log every
request: fine for tests, a cost for benchmarks that would then measure the witnesses): a quiet
nginx answering HTTP on 8080 with keepalive (the HTTP and TCP stream workloads), a quiet dnsmasq
on a second address of each upstream, 172.16.0.2N:53 (the DNS workloads), and iperf3 on up1.

They live in the lab's state directory, so `lab down` ends them with the rest; `ensure` starts
whatever is missing, so a lab rebuilt by someone else's test session is repaired before each run."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path

from sheer.lab import dualstack
from sheer.lab.inspect import listeners
from sheer.lab.procs import alive, cmdline, read_pid, signal_and_wait, wait_for
from sheer.lab.testing import Lab
from sheer.lab.topology import HEALTH_TEXT, Node
from sheer.lab.witness import DNSMASQ, NGINX

HTTP_PORT = 8080
BULK_FILE = "256m"                # served by the quiet nginx under /bulk/ (the tls-bulk workload)
BULK_SIZE = 256 * 1024 * 1024
IPERF_PORT = 5201
UDP_SINK_PORT = 8000  # the witnesses' UDP echo: the memory workload's sessions
IPERF_NODE = "up1"
DNS_NAME = "www.example.com"


ANYCAST = "172.16.1.53"   # every upstream's quiet dnsmasq answers here too: the ceiling's ECMP route


def dns_address(node: Node) -> str:
    """The quiet DNS server's address on an upstream: up1 172.16.0.21, ..., up4 172.16.0.24."""
    return f"172.16.0.{int(node.name.removeprefix('up')) + 20}"


def dns_address6(node: Node) -> str:
    """Its IPv6 twin in the dual-stack lab: up1 fd00:16::21, ..., up4 fd00:16::24."""
    return f"fd00:16::{int(node.name.removeprefix('up')) + 20}"


def _dir(lab: Lab, node: Node) -> Path:
    return Path(lab.state_dir) / "bench" / node.name


def nginx_conf(d: Path) -> str:
    temp = "".join(f"\n    {k}_temp_path {d}/tmp/{k};"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
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
        location /bulk/ {{ root {d}; sendfile on; }}
    }}
}}
"""


def _start_nginx(lab: Lab, node: Node) -> None:
    d = _dir(lab, node)
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    (d / "nginx.conf").write_text(nginx_conf(d))
    (d / "bulk").mkdir(exist_ok=True)
    with (d / "bulk" / BULK_FILE).open("wb") as bulk:
        bulk.truncate(BULK_SIZE)       # sparse: zeros read from the page cache, no disk
    lab.run(node.name, NGINX, "-e", str(d / "nginx-error.log"), "-p", str(d), "-c", str(d / "nginx.conf"),
            check=True)


def _start_iperf(lab: Lab, node: Node) -> None:
    d = _dir(lab, node)
    d.mkdir(parents=True, exist_ok=True)
    log = (d / "iperf3.log").open("ab")
    proc = subprocess.Popen(["ip", "netns", "exec", node.netns, "iperf3", "-s", "-p", str(IPERF_PORT)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    (d / "iperf3.pid").write_text(f"{proc.pid}\n")


def _start_dns(lab: Lab, node: Node) -> None:
    """dnsmasq without query logging on a /32 beside the witness's address (both use port 53)."""
    d = _dir(lab, node)
    d.mkdir(parents=True, exist_ok=True)
    addr = dns_address(node)
    pid = read_pid(d / "dnsmasq.pid")
    if pid is not None and alive(pid) and str(d) in cmdline(pid):
        signal_and_wait(pid)        # an older one (without the anycast address)
    lab.run(node.name, "ip", "addr", "replace", f"{addr}/32", "dev", node.ifaces[0].name, check=True)
    lab.run(node.name, "ip", "addr", "replace", f"{ANYCAST}/32", "dev", "lo", check=True)
    six: list[str] = []
    if dualstack.enabled(lab.state_dir):
        # the IPv6 DSR workloads' servers (`nodad`: usable at once)
        lab.run(node.name, "ip", "-6", "addr", "replace", f"{dns_address6(node)}/128", "dev",
                node.ifaces[0].name, "nodad", check=True)
        six = [f"--listen-address={dns_address6(node)}"]
    lab.run(node.name, DNSMASQ, "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
            f"--listen-address={addr}", f"--listen-address={ANYCAST}", *six, "--port=53", "--user=root",
            f"--host-record={DNS_NAME},{addr}", "--cache-size=0", f"--pid-file={d / 'dnsmasq.pid'}",
            # what the fleet's health check asks (the NGINX guide's DNS match), as the witnesses answer it
            f"--host-record={HEALTH_TEXT},{addr}", f"--cname=stl.umsl.edu,{HEALTH_TEXT}", check=True)


def _dns_up(lab: Lab, node: Node) -> bool:
    pid = read_pid(_dir(lab, node) / "dnsmasq.pid")
    line = cmdline(pid) if pid is not None and alive(pid) else ""
    six = not dualstack.enabled(lab.state_dir) or dns_address6(node) in line
    return dns_address(node) in line and ANYCAST in line and HEALTH_TEXT in line and six


def ensure(lab: Lab) -> None:
    """The lab up and the bench servers listening (idempotent; repairs what another session removed)."""
    lab.up()
    for node in lab.topo.upstreams:
        have = listeners(node.netns)
        if ("tcp", HTTP_PORT) not in have:
            _start_nginx(lab, node)
        if not _dns_up(lab, node):
            _start_dns(lab, node)
        if node.name == IPERF_NODE and ("tcp", IPERF_PORT) not in have:
            _start_iperf(lab, node)
        wanted = {("tcp", HTTP_PORT)} | ({("tcp", IPERF_PORT)} if node.name == IPERF_NODE else set())
        wait_for(partial(_listening, node.netns, wanted), 5, f"bench servers on {node.name}")


def _listening(netns: str, wanted: set[tuple[str, int]]) -> bool:
    return wanted <= listeners(netns)


def stop(lab: Lab) -> None:
    for node in lab.topo.upstreams:
        d = _dir(lab, node)
        # each PID only if its command line is still ours (PIDs get reused)
        for name, marker in (("nginx.pid", str(d)), ("iperf3.pid", "iperf3 -s"), ("dnsmasq.pid", str(d))):
            pid = read_pid(d / name)
            if pid is not None and alive(pid) and marker in cmdline(pid):
                signal_and_wait(pid)
        lab.run(node.name, "ip", "addr", "del", f"{dns_address(node)}/32", "dev", node.ifaces[0].name)
        lab.run(node.name, "ip", "addr", "del", f"{ANYCAST}/32", "dev", "lo")
        lab.run(node.name, "ip", "-6", "addr", "del", f"{dns_address6(node)}/128", "dev", node.ifaces[0].name)
