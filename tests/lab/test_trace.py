"""sheer trace in the lab: every node watched, one flow followed hop by hop. A client address of its own
(192.168.99.201) keeps the flow apart from anything else using the lab at the same time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_transparency import VIP, answer

from sheer.lab import configs
from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab

TRACED = "192.168.99.201"


@pytest.fixture
def traced_client(lab: Lab) -> Iterator[str]:
    lab.run("client", "ip", "addr", "add", f"{TRACED}/24", "dev", "sheer-pub", check=True)
    try:
        yield TRACED
    finally:
        lab.run("client", "ip", "addr", "del", f"{TRACED}/24", "dev", "sheer-pub")


def trace(lab: Lab, conf: Path, action: Callable[[], object], seconds: float = 3,
          client: str = TRACED) -> dict[str, Any]:
    """Run `sheer trace` (from the root namespace: it finds the lab), do `action` once it watches."""
    proc = subprocess.Popen([sys.executable, "-m", "sheer", "trace", "-c", str(conf), "--client", client,
                             "--seconds", str(seconds), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        ready = proc.stderr.readline()
        assert "sheer trace: watching client, proxy, up1" in ready, ready
        action()
        out, _ = proc.communicate(timeout=seconds + 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return json.loads(out)


def conf_file(lab: Lab, name: str, text: str) -> Path:
    path = Path(lab.state_dir) / f"trace-{name}.conf"
    path.write_text(text)
    return path


def test_origin_nat_reply_leaves_the_return_router(lab: Lab, sheer_ready: None, traced_client: str) -> None:
    conf = conf_file(lab, "origin", configs.DSR)
    with lab.applied("dsr-origin", configs.DSR), lab.proxy(configs.DSR):
        answers: list[str] = []
        dig = ["dig", f"-b{traced_client}", "+time=2", "+tries=1", f"@{VIP}", "www.example.com"]
        flow = trace(lab, conf, lambda: answers.append(answer(lab.run("client", *dig).stdout)))
    assert answers and answers[0].startswith("172.16.0.")
    upstream = f"up{int(answers[0].rsplit('.', 1)[1]) - 10}"
    hops = [(h["node"], h["dev"], h["dir"], h["src"], h["sport"], h["dst"]) for h in flow["hops"]]
    client_port = flow["client"][1]
    assert hops[0] == ("client", "sheer-pub", "out", traced_client, client_port, VIP)
    # the fast path (on by default): tcpdump on the proxy's ingress sees the datagram before the rewrite
    assert ("proxy", "sheer-pub", "in", traced_client, client_port, VIP) in hops
    # spoofed ip:port
    assert ("proxy", "sheer-int", "out", traced_client, client_port, answers[0]) in hops
    assert any(n.startswith("proxy: the kernel's DSR fast path steers on sheer-pub")
               and "before the rewrite" in n for n in flow["notes"]), flow["notes"]
    # rewritten at origin
    assert (upstream, "sheer-int", "out", VIP, 53, traced_client) in hops
    assert ("rr", "sheer-int", "in", VIP, 53, traced_client) in hops
    # leaves the router
    assert ("rr", "sheer-pub", "out", VIP, 53, traced_client) in hops
    assert ("client", "sheer-pub", "in", VIP, 53, traced_client) in hops
    assert flow["reached"] is True
    assert flow["reply_path"] == [upstream, "rr"]
    assert not any(h["node"] == "proxy" and h["dst"] == traced_client for h in flow["hops"])


# a TCP stream to the witness on 8000: no other user of the lab marks replies from that port
STREAM = configs.HEADER + """stream {
    upstream witness { server 172.16.0.11:8000; }
    server { listen 8000; proxy_bind $remote_addr transparent; proxy_pass witness; }
}
"""


def test_missing_mark_rule_stops_at_the_proxy(lab: Lab, sheer_ready: None, traced_client: str) -> None:
    conf = conf_file(lab, "stream", STREAM)
    connect = ("import socket\n"
               f"s = socket.create_connection(('{VIP}', 8000), 2, ('{traced_client}', 0))\n"
               "s.settimeout(1.5)\n"
               "try: print(s.recv(200))\n"
               "except OSError as e: print(e)\n")
    with lab.applied("transparency", STREAM), lab.proxy(STREAM):
        lab.run("proxy", "nft", "flush", "chain", "ip", "sheer", "prerouting", check=True)
        flow = trace(lab, conf, lambda: lab.python("client", connect), seconds=2.5)
    assert flow["reached"] is False
    stopped = flow["stopped_at"]
    # the upstream's SYN-ACK to the client's address arrives at the proxy and goes nowhere
    assert (stopped["node"], stopped["dev"], stopped["dir"]) == ("proxy", "sheer-int", "in")
    assert (stopped["src"], stopped["sport"], stopped["dst"]) == ("172.16.0.11", 8000, traced_client)
    assert "S" in stopped["flags"] and "A" in stopped["flags"]
    assert ("up1", "sheer-int", "in") in {(h["node"], h["dev"], h["dir"]) for h in flow["hops"]}
    # and why: read from the proxy's namespace
    assert any(n.startswith("proxy: no prerouting rule of an `ip` or `inet` table sets a mark")
               for n in flow["notes"]), flow["notes"]
