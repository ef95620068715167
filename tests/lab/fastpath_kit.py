"""Helpers for the fast path's lab tests: configurations, a client that asks from many ip:port pairs,
checksums computed in software everywhere, the user-space model of the choice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sheer.config import load
from sheer.core.balancers import make_balancer, request_key
from sheer.core.variables import MappingSource
from sheer.lab import configs
from sheer.lab.testing import Lab

VIP = "192.168.99.10"
CLIENTS = ("192.168.99.1", "192.168.99.2", "192.168.99.3", "192.168.99.4")
API = "127.0.0.1:8091"
DNS_QUERY = (r"\x00\x2a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"      # header: id 42, one question
             r"\x03\x73\x74\x6c\x04\x75\x6d\x73\x6c\x03\x65\x64\x75\x00"  # stl.umsl.edu
             r"\x00\x01\x00\x01")                                          # A, IN
DNS_MATCH = f"""
    match dns {{
        send {DNS_QUERY};
        expect ~* "health.is.good";
    }}
"""
INTERVAL, FAILS, PASSES, TIMEOUT = 1.0, 1, 2, 0.5
WINDOW = INTERVAL * FAILS + TIMEOUT


def config(method: str = "hash $remote_addr$remote_port maglev;", listen: str = "53", port: int = 53,
           workers: int = 2) -> str:
    servers = "".join(f"\n        server 172.16.0.1{n}:{port};" for n in range(1, 5))
    head = configs.HEADER.replace("worker_processes 1;", f"worker_processes {workers};")
    return head + "error_log stderr info;\n\n" + f"""stream {{
    upstream dns_upstreams {{
        zone dns 64k;
        {method}{servers}
    }}
{DNS_MATCH}
    server {{
        listen {listen} udp;
        proxy_responses 0;
        proxy_timeout 1s;
        proxy_bind $remote_addr:$remote_port transparent;
        proxy_pass dns_upstreams;
        health_check interval=1s fails={FAILS} passes={PASSES} match=dns udp;
        health_check_timeout 500ms;
    }}
}}
http {{
    server {{
        listen {API};
        location /api/ {{ api write=on; }}
        location = /metrics {{ prometheus; }}
    }}
}}
"""


ASK = r"""
import json, select, socket, sys, time
pairs, target, port = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
query = bytes.fromhex("abcd01000001000000000000") + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
out = {}
for start in range(0, len(pairs), 100):
    waiting = {}
    for addr, sport in pairs[start:start + 100]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, sport))
        s.setblocking(False)
        s.sendto(query, (target, port))
        waiting[s] = f"{addr}:{sport}"
    deadline = time.monotonic() + 3
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], 0.2)
        for s in ready:
            data = s.recv(512)
            out[waiting.pop(s)] = socket.inet_ntoa(data[-4:]) if len(data) > 16 else ""
            s.close()
    for s in waiting:
        s.close()
print(json.dumps(out))
"""


def ask(lab: Lab, pairs: list[tuple[str, int]], port: int = 53) -> dict[str, str]:
    """Send one DNS query from each client ip:port to the VIP; the answer names the upstream that
    answered (the lab's dnsmasq answers www.example.com with its own address)."""
    res = lab.run("client", "python3", "-c", ASK, json.dumps(pairs), VIP, str(port), timeout=60)
    assert res.returncode == 0, res.stderr
    answers: dict[str, str] = json.loads(res.stdout)
    return answers


def pairs(count: int, first_port: int = 20000) -> list[tuple[str, int]]:
    per = count // len(CLIENTS)
    return [(addr, first_port + i * 37) for addr in CLIENTS for i in range(per)]


@contextmanager
def client_addresses(lab: Lab) -> Iterator[None]:
    """More client addresses on the client's interface (the proxy and upstreams reach them on the
    public /24 already), removed after."""
    added = [a for a in CLIENTS[1:]
             if lab.run("client", "ip", "addr", "add", f"{a}/24", "dev", "sheer-pub").returncode == 0]
    try:
        yield
    finally:
        for a in added:
            lab.run("client", "ip", "addr", "del", f"{a}/24", "dev", "sheer-pub")


NODES_DEVS = (("client", "sheer-pub"), ("proxy", "sheer-pub"), ("proxy", "sheer-int"),
              ("up1", "sheer-int"), ("up2", "sheer-int"), ("up3", "sheer-int"), ("up4", "sheer-int"))


@contextmanager
def checksums_in_software(lab: Lab) -> Iterator[None]:
    """Transmit checksum offload off on every interface on the way: each datagram carries its full
    checksum and each receiver verifies it (veth trusts a partial checksum, which would hide a
    rewrite that gets it wrong)."""
    for node, dev in NODES_DEVS:
        lab.run(node, "ethtool", "-K", dev, "tx", "off", check=True)
    try:
        yield
    finally:
        for node, dev in NODES_DEVS:
            lab.run(node, "ethtool", "-K", dev, "tx", "on")


def model(conf_text: str, tmp: Path, pairs_: list[tuple[str, int]],
          down: tuple[str, ...] = ()) -> dict[str, str]:
    """What sheer's user-space balancer picks for each pair (its own code, no kernel involved)."""
    path = tmp / "model.conf"
    path.write_text(conf_text)
    cfg = load(str(path))
    assert cfg.stream is not None
    upstream = cfg.stream.upstreams[0]
    balancer = make_balancer(upstream)
    for peer in balancer.peers:
        peer.health_down = peer.server.host in down
    out = {}
    for addr, port in pairs_:
        key = request_key(upstream, MappingSource({"remote_addr": addr, "remote_port": str(port)}))
        peer = balancer.get(balancer.start(1, key), time.monotonic())
        assert peer is not None
        balancer.free(peer, failed=False, now=time.monotonic())
        out[f"{addr}:{port}"] = peer.server.host
    return out


def udp_in(lab: Lab, node: str) -> int:
    return lab.counters(node)["Udp.InDatagrams"]


def metrics(lab: Lab) -> str:
    return lab.run("proxy", "curl", "-s", f"http://{API}/metrics", check=True).stdout


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")))


def wait_log(running: object, needle: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    log = ""
    while time.monotonic() < deadline:
        log = running.log()  # type: ignore[attr-defined]
        if needle in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the log:\n{log[-3000:]}")
