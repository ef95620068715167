"""sheer trace over IPv6 on the dual-stack lab (`sheer lab up --ipv6`): one IPv6 flow followed hop by
hop through every method's stages (Method 1, DSR router NAT in user space and on the kernel's fast
path, DSR origin NAT through the return router), and why a reply stopped at the proxy when its `ip6`
mark rule or its `ip -6 rule` is gone. A client address of its own (fd00:99::201) keeps the flow apart
from anything else using the lab."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from test_trace import conf_file, trace

from sheer.lab import configs, dualstack
from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab

TRACED6 = "fd00:99::201"
VIP6 = "fd00:99::10"
UPSTREAMS6 = {f"fd00:16::1{n}": f"up{n}" for n in range(1, 5)}


@pytest.fixture
def traced6(lab6: Lab, sheer_ready: None) -> Iterator[Lab]:
    lab6.run("client", "ip", "-6", "addr", "add", f"{TRACED6}/64", "dev", "sheer-pub", "nodad", check=True)
    try:
        yield lab6
    finally:
        lab6.run("client", "ip", "-6", "addr", "del", f"{TRACED6}/64", "dev", "sheer-pub")


def hops(flow: dict[str, Any]) -> list[tuple[str, str, str, str, int, str, int]]:
    return [(h["node"], h["dev"], h["dir"], h["src"], h["sport"], h["dst"], h["dport"]) for h in flow["hops"]]


def dig6(lab: Lab, answers: list[str]) -> None:
    dig = ["dig", f"-b{TRACED6}", "+time=2", "+tries=1", f"@{VIP6}", "www.example.com"]
    answers.append(lab.run("client", *dig).stdout)


def upstream_of(flow: dict[str, Any]) -> tuple[str, str]:
    """(address, node) of the upstream the flow went to: where the proxy sent the client's datagram."""
    address = next(h["dst"] for h in flow["hops"] if h["node"] == "proxy" and h["dir"] == "out"
                   and h["dst"] in UPSTREAMS6)
    return address, UPSTREAMS6[address]


@pytest.mark.parametrize("fastpath", ["off", "on"])
def test_dsr_router_nat_over_ipv6(traced6: Lab, fastpath: str) -> None:
    lab = traced6
    conf = conf_file(lab, f"router6-{fastpath}", configs.DSR6)
    with lab.applied("dsr-router", configs.DSR6, "--fastpath", fastpath), lab.proxy(configs.DSR6):
        answers: list[str] = []
        flow = trace(lab, conf, lambda: dig6(lab, answers), client=TRACED6)
    assert answers and f"SERVER: {VIP6}#53" in answers[0], answers
    seen = hops(flow)
    port = flow["client"][1]
    up, node = upstream_of(flow)
    assert flow["client"] == [TRACED6, port] and flow["front"] == [VIP6, 53]
    assert seen[0] == ("client", "sheer-pub", "out", TRACED6, port, VIP6, 53)
    assert ("proxy", "sheer-pub", "in", TRACED6, port, VIP6, 53) in seen
    # the client's address and port as the source, towards the upstream
    assert ("proxy", "sheer-int", "out", TRACED6, port, up, 53) in seen
    assert (node, "sheer-int", "in", TRACED6, port, up, 53) in seen
    assert (node, "sheer-int", "out", up, 53, TRACED6, port) in seen
    # router NAT: forwarded by the proxy, its source rewritten to the IPv6 VIP on the way out
    assert ("proxy", "sheer-int", "in", up, 53, TRACED6, port) in seen
    assert ("proxy", "sheer-pub", "out", VIP6, 53, TRACED6, port) in seen
    assert ("client", "sheer-pub", "in", VIP6, 53, TRACED6, port) in seen
    assert flow["reached"] is True and flow["reply_path"] == ["proxy"]
    steered = [n for n in flow["notes"]
               if n.startswith("proxy: the kernel's DSR fast path steers on sheer-pub")]
    assert bool(steered) == (fastpath == "on"), flow["notes"]


def test_dsr_origin_nat_over_ipv6_leaves_the_return_router(traced6: Lab) -> None:
    lab = traced6
    conf = conf_file(lab, "origin6", configs.DSR6)
    role = ("--dsr", "origin", "--vip", VIP6, "--via", str(dualstack.RR_INTERNAL6))

    def net(node: str, *args: str) -> None:
        res = lab.run(node, sys.executable, "-m", "sheer", "net", *args, "-c", str(conf), timeout=30)
        assert res.returncode == 0, res.stdout + res.stderr

    hosts = {n.name: str(dualstack.address6(n)) for n in lab.topo.upstreams}
    try:
        net("proxy", "apply", "--dsr", "origin")
        for name, host in hosts.items():
            net(name, "apply", "--role", "upstream", "--host", host, *role)
        with lab.proxy(configs.DSR6):
            answers: list[str] = []
            flow = trace(lab, conf, lambda: dig6(lab, answers), client=TRACED6)
    finally:
        for name, host in hosts.items():
            lab.run(name, sys.executable, "-m", "sheer", "net", "revert", "-c", str(conf),
                    "--role", "upstream", "--host", host, timeout=30)
        lab.run("proxy", sys.executable, "-m", "sheer", "net", "revert", "-c", str(conf), timeout=30)
    assert answers and f"SERVER: {VIP6}#53" in answers[0], answers
    seen = hops(flow)
    port = flow["client"][1]
    up, node = upstream_of(flow)
    assert ("proxy", "sheer-int", "out", TRACED6, port, up, 53) in seen
    # rewritten at the origin, handed to the return router, out to the client
    assert (node, "sheer-int", "out", VIP6, 53, TRACED6, port) in seen
    assert ("rr", "sheer-int", "in", VIP6, 53, TRACED6, port) in seen
    assert ("rr", "sheer-pub", "out", VIP6, 53, TRACED6, port) in seen
    assert ("client", "sheer-pub", "in", VIP6, 53, TRACED6, port) in seen
    assert flow["reached"] is True and flow["reply_path"] == [node, "rr"]
    assert not any(h["node"] == "proxy" and h["dst"] == TRACED6 for h in flow["hops"])


# HTTP over IPv6 from the traced client's address, Method 1
CURL6 = ["curl", "-s", "-m", "2", "--interface", TRACED6, f"http://[{VIP6}]/"]


def test_transparency_over_ipv6(traced6: Lab) -> None:
    lab = traced6
    conf = conf_file(lab, "transparent6", configs.TRANSPARENT6)
    with lab.applied("transparency", configs.TRANSPARENT6), lab.proxy(configs.TRANSPARENT6):
        bodies: list[str] = []
        flow = trace(lab, conf, lambda: bodies.append(lab.run("client", *CURL6).stdout), client=TRACED6)
    assert bodies and f"You connected from {TRACED6}:" in bodies[0], bodies
    seen = hops(flow)
    port = flow["client"][1]
    assert seen[0] == ("client", "sheer-pub", "out", TRACED6, port, VIP6, 80)
    # the proxy's own connection to the upstream, from the client's IPv6 address
    inner = [h for h in seen if h[0] == "proxy" and h[2] == "out" and h[5] in UPSTREAMS6]
    assert inner and inner[0][3] == TRACED6, seen
    up, node, inner_port = inner[0][5], UPSTREAMS6[inner[0][5]], inner[0][4]
    assert (node, "sheer-int", "in", TRACED6, inner_port, up, 80) in seen
    # its replies come back to the proxy (marked, delivered to the transparent socket)...
    assert ("proxy", "sheer-int", "in", up, 80, TRACED6, inner_port) in seen
    # ... and the answer leaves the proxy from the VIP
    assert ("proxy", "sheer-pub", "out", VIP6, 80, TRACED6, port) in seen
    assert flow["reached"] is True and flow["reply_path"] == ["proxy"]


@pytest.mark.parametrize("broken", ["mark rule", "ip -6 rule"])
def test_a_reply_stops_at_the_proxy_and_trace_says_why(traced6: Lab, broken: str) -> None:
    lab = traced6
    conf = conf_file(lab, "stopped6", configs.TRANSPARENT6)
    with lab.applied("transparency", configs.TRANSPARENT6), lab.proxy(configs.TRANSPARENT6):
        if broken == "mark rule":
            lab.run("proxy", "nft", "flush", "chain", "ip6", "sheer", "prerouting", check=True)
        else:
            lab.run("proxy", "ip", "-6", "rule", "del", "fwmark", "1", "lookup", "100", check=True)
        flow = trace(lab, conf, lambda: lab.run("client", *CURL6), seconds=3, client=TRACED6)
    assert flow["reached"] is False
    stopped = flow["stopped_at"]
    # the upstream's SYN-ACK to the client's IPv6 address arrives at the proxy and goes nowhere
    assert (stopped["node"], stopped["dev"], stopped["dir"], stopped["dst"]) == ("proxy", "sheer-int", "in",
                                                                                  TRACED6)
    assert stopped["src"] in UPSTREAMS6 and stopped["sport"] == 80
    assert "S" in stopped["flags"] and "A" in stopped["flags"]
    notes = flow["notes"]
    if broken == "mark rule":
        assert any(n.startswith("proxy: no prerouting rule of an `ip6` or `inet` table sets a mark: IPv6 "
                                "replies") for n in notes), notes
    else:
        assert any(n.startswith("proxy: ip6 sheer prerouting #") and "sets mark 0x1 but no `ip -6 rule` "
                   "sends fwmark 0x1 to a table (fix: ip -6 rule add fwmark 1 lookup 100)" in n
                   for n in notes), notes
    assert any(n.startswith(f"proxy: `ip -6 route get {TRACED6}` (unmarked):") for n in notes), notes


def test_a_dsr_reply_stops_where_ipv6_forwarding_is_off(traced6: Lab) -> None:
    lab = traced6
    conf = conf_file(lab, "noforward6", configs.DSR6)
    with lab.applied("dsr-router", configs.DSR6, "--fastpath", "off"), lab.proxy(configs.DSR6):
        lab.run("proxy", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0", check=True)
        flow = trace(lab, conf, lambda: dig6(lab, []), client=TRACED6)
    stopped = flow["stopped_at"]
    up, _ = upstream_of(flow)
    assert flow["reached"] is False
    assert (stopped["node"], stopped["dev"], stopped["dir"]) == ("proxy", "sheer-int", "in")
    assert (stopped["src"], stopped["sport"], stopped["dst"], stopped["dport"]) == (up, 53, TRACED6,
                                                                                      flow["client"][1])
    assert ("proxy: net.ipv6.conf.all.forwarding is off: the reply is dropped here (fix: sysctl -w "
            "net.ipv6.conf.all.forwarding=1)") in flow["notes"], flow["notes"]
    assert any(n.startswith("proxy: ip6 sheer ") and n.endswith(f"rewrites the source to {VIP6}")
               for n in flow["notes"]), flow["notes"]
