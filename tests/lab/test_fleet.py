"""The fleet lab's contract (`sheer lab up --fleet N`): an edge router that learns the VIP over BGP from
every proxy and spreads flows over them with ECMP, each proxy running sheer. Witnesses: the edge's own
`ip -j route` and `birdc`, `dig` on the client, the upstreams' dnsmasq logs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sheer.lab import bird, fleet
from sheer.lab.inspect import listeners
from sheer.lab.procs import netns_list
from sheer.lab.testing import Lab
from sheer.lab.topology import FLEET_VIP, LAB, proxy_fabric

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def fleet2(lab: Lab) -> Iterator[Lab]:
    fleet.up(2, lab.state_dir)
    try:
        yield lab
    finally:
        fleet.remove(lab.state_dir)


def dig(lab: Lab, sport: int) -> str:
    res = lab.run("client", "dig", "+short", "+time=1", "+tries=1", "-b", f"192.168.99.1#{sport}",
                  f"@{FLEET_VIP}", "www.example.com")
    return res.stdout.strip()


def test_the_edge_learns_the_vip_over_bgp_from_every_proxy(fleet2: Lab) -> None:
    lab = fleet2
    names = netns_list()
    for node in ("client", "edge", "proxy1", "proxy2", "up1", "up4", "rr"):
        assert f"{LAB}-{node}" in names
    edge = lab.node("edge")
    assert bird.established(edge, lab.state_dir) == {"proxy1", "proxy2"}
    assert bird.nexthops(edge) == [str(proxy_fabric(1)), str(proxy_fabric(2))]
    route = lab.run("edge", "ip", "route", "show", "exact", f"{FLEET_VIP}/32").stdout
    assert "proto bird" in route, route
    assert lab.run("edge", "sysctl", "-n", "net.ipv4.fib_multipath_hash_policy").stdout.strip() == "1"


def test_the_client_is_answered_by_an_upstream_through_the_fleet(fleet2: Lab) -> None:
    lab = fleet2
    mark = lab.mark()
    answers = {sport: dig(lab, sport) for sport in range(40000, 40010)}
    assert all(a.startswith("172.16.0.1") for a in answers.values()), answers
    seen = {(s.src, s.sport): s.node for s in lab.seen(mark) if s.protocol == "dns"}
    for sport, answer in answers.items():
        # dnsmasq answers with its own address: the witness that logged the query answered it
        assert f"172.16.0.1{seen[('192.168.99.1', sport)].removeprefix('up')}" == answer


def test_fleet_stop_and_start_one_proxy(fleet2: Lab) -> None:
    lab = fleet2
    node = fleet.proxy(2, lab.state_dir)
    before = fleet.running(node, lab.state_dir)
    assert before is not None
    fleet.stop_sheer(node, lab.state_dir)
    assert fleet.running(node, lab.state_dir) is None
    assert ("udp", 53) not in listeners(node.netns)
    after = fleet.start_sheer(node, lab.state_dir)
    assert after != before and fleet.running(node, lab.state_dir) == after
