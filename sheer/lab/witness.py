"""The upstreams' witnesses: Debian's nginx (the article's test page, TCP and UDP echoes of the
connection) and dnsmasq. Both are independent of sheer; they report what they saw."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sheer.lab.errors import LabError
from sheer.lab.procs import alive, read_pid, run, signal_and_wait
from sheer.lab.topology import (
    DNS_NAME,
    DNS_PORT,
    HEALTH_TEXT,
    HEALTH_TXT_NAME,
    HTTP_PORT,
    STATE_DIR,
    WITNESS_PORT,
    Node,
    v6_of,
)

NGINX = "/usr/sbin/nginx"
DNSMASQ = "/usr/sbin/dnsmasq"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
SERVICES = ("nginx", "dnsmasq")
CONNECTED = "You connected from $remote_addr:$remote_port to $server_addr:$server_port\\n"


@dataclass(frozen=True)
class Seen:
    """One connection or datagram as an upstream witness logged it."""

    node: str
    protocol: str  # http, tcp, udp, dns
    src: str
    sport: int
    dst: str
    dport: int


def node_dir(node: Node, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / node.name


def pid_file(node: Node, service: str, state_dir: Path = STATE_DIR) -> Path:
    return node_dir(node, state_dir) / f"{service}.pid"


def nginx_conf(node: Node, state_dir: Path = STATE_DIR, ipv6: str | None = None) -> str:
    """`ipv6`: the node's IPv6 address in a dual-stack lab: every witness listens there too."""
    d = node_dir(node, state_dir)
    six = f"[{ipv6}]:" if ipv6 else ""
    tcp6, udp6 = (f" listen {six}{WITNESS_PORT};", f" listen {six}{WITNESS_PORT} udp;") if six else ("", "")
    temp = "\n".join(
        f"    {kind}_temp_path {d}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""load_module {STREAM_MODULE};
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log notice;
events {{ worker_connections 1024; }}
http {{
    log_format witness 'http $remote_addr:$remote_port $server_addr:$server_port "$request" $status';
    access_log {d}/http.log witness;
{temp}
    server {{
        listen {HTTP_PORT};{f"{chr(10)}        listen {six}{HTTP_PORT};" if six else ""}
        location / {{
            default_type text/plain;
            return 200 "Hello from {node.name}. {CONNECTED}";
        }}
    }}
}}
stream {{
    log_format witness '$protocol $remote_addr:$remote_port $server_addr:$server_port';
    access_log {d}/stream.log witness;
    server {{ listen {WITNESS_PORT};{tcp6} return "{CONNECTED}"; }}
    server {{ listen {WITNESS_PORT} udp;{udp6} return "{CONNECTED}"; }}
}}
"""


def dnsmasq_args(node: Node, state_dir: Path = STATE_DIR, ipv6: str | None = None) -> list[str]:
    d = node_dir(node, state_dir)
    addr = node.address()
    # the A record stays the upstream's IPv4 address (which upstream answered); dual stack adds AAAA
    records = f"{addr},{ipv6}" if ipv6 else f"{addr}"
    return [
        DNSMASQ,
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={addr}",
        *([f"--listen-address={ipv6}"] if ipv6 else []),
        f"--port={DNS_PORT}",
        "--user=root",
        f"--host-record={DNS_NAME},{records}",
        f"--txt-record={HEALTH_TXT_NAME},{HEALTH_TEXT}",
        # the NGINX admin guide's DNS health check asks stl.umsl.edu and expects ~* "health.is.good":
        # the answer's labels health\x02is\x04good match that regex
        f"--host-record={HEALTH_TEXT},{addr}",
        f"--cname=stl.umsl.edu,{HEALTH_TEXT}",
        "--log-queries=extra",
        f"--log-facility={d}/dnsmasq.log",
        f"--pid-file={d}/dnsmasq.pid",
    ]


def start(node: Node, state_dir: Path = STATE_DIR, ipv6: str | None = None) -> None:
    """Start both witnesses of an upstream; each daemonizes and writes its own pid file."""
    d = node_dir(node, state_dir)
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    for name in ("http.log", "stream.log", "dnsmasq.log"):
        (d / name).touch()
    (d / "nginx.conf").write_text(nginx_conf(node, state_dir, ipv6))
    netns = ("ip", "netns", "exec", node.netns)
    run(*netns, NGINX, "-e", str(d / "nginx-error.log"), "-p", str(d), "-c", str(d / "nginx.conf"))
    run(*netns, *dnsmasq_args(node, state_dir, ipv6))


def stop(node: Node, state_dir: Path = STATE_DIR) -> None:
    for service in SERVICES:
        pid = read_pid(pid_file(node, service, state_dir))
        if pid is not None and alive(pid):
            signal_and_wait(pid)


def expected_listeners() -> set[tuple[str, int]]:
    return {("tcp", HTTP_PORT), ("tcp", WITNESS_PORT), ("udp", WITNESS_PORT), ("udp", DNS_PORT),
            ("tcp", DNS_PORT)}


LOGS = ("http.log", "stream.log", "dnsmasq.log")


def log_offsets(node: Node, state_dir: Path = STATE_DIR) -> dict[str, int]:
    """Where each witness log ends now: pass it to parse_seen to read only what comes after."""
    d = node_dir(node, state_dir)
    return {name: (d / name).stat().st_size if (d / name).exists() else 0 for name in LOGS}


def _read(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def parse_seen(node: Node, since: dict[str, int] | None = None, state_dir: Path = STATE_DIR) -> list[Seen]:
    """What the witnesses of an upstream logged (after `since`, from log_offsets)."""
    d = node_dir(node, state_dir)
    since = since or {}
    seen: list[Seen] = []
    for name in ("http.log", "stream.log"):
        for line in _read(d / name, since.get(name, 0)).splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            src, sport = fields[1].rsplit(":", 1)
            dst, dport = fields[2].rsplit(":", 1)
            seen.append(Seen(node.name, fields[0].lower(), src, int(sport), dst, int(dport)))
    # --log-queries=extra: "1 172.16.0.1/55240 query[A] www.example.com from 172.16.0.1" (or fd00:99::1/...)
    for m in re.finditer(r" ([\d.]+|[\da-f:]+)/(\d+) query\[\w+\] ",
                         _read(d / "dnsmasq.log", since.get("dnsmasq.log", 0))):
        seen.append(Seen(node.name, "dns", m.group(1), int(m.group(2)),
                         str(v6_of(node.address(), "internal") if ":" in m.group(1) else node.address()),
                         DNS_PORT))
    return seen


def check_binaries() -> None:
    for path in (NGINX, DNSMASQ, str(STREAM_MODULE)):
        if not Path(path).exists():
            raise LabError(f"{path} is missing: install Debian's nginx-light, libnginx-mod-stream, "
                           "dnsmasq-base")
