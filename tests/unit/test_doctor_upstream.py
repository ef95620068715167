"""doctor --role upstream: the route back to clients, the origin-NAT rewrite, rp_filter there and on
the return router."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from doctor_recorded import UP1, need, state

from sheer.doctor.checks import origin_nat, return_route
from sheer.doctor.state import NextHop, RouteGet
from sheer.lab import configs
from sheer.net.plan import Options

HOST = "172.16.0.11"
ORIGIN = Options(role="upstream", host=HOST, dsr="origin", vip="192.168.99.10", via="172.16.0.254")
# `ip -j route get 198.51.100.1 from 172.16.0.11 ipproto udp sport 53` with the origin plumbing applied
UDP_VIA_RR = RouteGet("198.51.100.1", HOST, "udp", 53, "172.16.0.254", "sheer-int")
RR = NextHop("172.16.0.254", "sheer-rr", "sheer-int",
             {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "2",
              "net.ipv4.conf.sheer-int.rp_filter": "2"})


def test_route_back_through_the_proxy(tmp_path: Path) -> None:
    opts = Options(role="upstream", host=HOST, gateway="172.16.0.1")
    n = need(tmp_path, configs.TRANSPARENT, UP1, opts)
    back = (RouteGet("198.51.100.1", HOST, "tcp", 80, "172.16.0.1", "sheer-int"),)
    [f] = return_route(n, state(UP1, None, routes_back=back))
    assert f.status == "ok"
    assert f.summary == f"replies from {HOST} tcp sport 80 to 198.51.100.1 go via 172.16.0.1"
    wrong = (replace(back[0], gateway="172.16.0.254"),)
    [f] = return_route(n, state(UP1, None, routes_back=wrong))
    assert f.status == "problem" and "not the proxy 172.16.0.1" in f.summary
    assert f.fix == (f"sheer net apply -c {n.conf} --role upstream --host {HOST} --gateway 172.16.0.1",)


def test_clients_directly_connected_is_the_overlap_trap(tmp_path: Path) -> None:
    n = need(tmp_path, configs.TRANSPARENT, UP1, Options(role="upstream", host=HOST))
    direct = (RouteGet("172.16.0.99", HOST, "tcp", 80, None, "sheer-int"),)
    [f] = return_route(n, state(UP1, None, routes_back=direct))
    assert f.status == "problem" and "No Overlapping IP Ranges" in f.summary


def test_origin_nat_rewrite_present_and_return_router_fine(tmp_path: Path) -> None:
    n = need(tmp_path, configs.DSR, UP1, ORIGIN)
    found = origin_nat(n, state(UP1, "origin", routes_back=(UDP_VIA_RR,), next_hop=RR))
    assert [(f.check, f.status) for f in found] == [("origin NAT", "ok"), ("rp_filter", "ok"),
                                                    ("return router", "ok")]
    rewrite = "ip daddr != 172.16.0.0/24 udp sport 53 ip saddr set 192.168.99.10 counter packets"
    assert rewrite in found[0].evidence[0]
    [f] = return_route(n, state(UP1, "origin", routes_back=(UDP_VIA_RR,)))
    assert f.status == "ok"


def test_origin_nat_rewrite_missing(tmp_path: Path) -> None:
    n = need(tmp_path, configs.DSR, UP1, ORIGIN)
    [f, *_] = origin_nat(n, state(UP1, None, routes_back=(UDP_VIA_RR,), next_hop=RR))
    assert f.status == "problem" and "no rewrite of this upstream's replies to 192.168.99.10" in f.summary
    assert f.fix == (f"sheer net apply -c {n.conf} --role upstream --host {HOST} --dsr origin",)


def test_strict_rp_filter_on_the_return_router(tmp_path: Path) -> None:
    n = need(tmp_path, configs.DSR, UP1, ORIGIN)
    strict = replace(RR, sysctls={**RR.sysctls, "net.ipv4.conf.all.rp_filter": "1",
                                  "net.ipv4.conf.sheer-int.rp_filter": "1"})
    [f] = [f for f in origin_nat(n, state(UP1, "origin", routes_back=(UDP_VIA_RR,), next_hop=strict))
           if f.check == "return router"]
    assert f.status == "problem" and "filters reverse paths strictly on sheer-int" in f.summary
    assert f.fix == (("ip netns exec sheer-rr sysctl -w net.ipv4.conf.all.rp_filter=2 "
                      "net.ipv4.conf.sheer-int.rp_filter=2"),)
    # elsewhere than the lab: named, not verified
    [f] = [f for f in origin_nat(n, state(UP1, "origin", routes_back=(UDP_VIA_RR,)))
           if f.check == "return router"]
    assert f.status == "warning" and "172.16.0.254" in f.summary


def test_strict_rp_filter_on_the_upstream_is_a_warning(tmp_path: Path) -> None:
    facts = replace(UP1, sysctls={"net.ipv4.conf.all.rp_filter": "1"})
    n = need(tmp_path, configs.DSR, facts, ORIGIN)
    [f] = [f for f in origin_nat(n, state(facts, "origin", next_hop=RR)) if f.check == "rp_filter"]
    assert f.status == "warning" and f.fix == (("sysctl -w net.ipv4.conf.all.rp_filter=2 "
                                                "net.ipv4.conf.sheer-int.rp_filter=2"),)


def test_an_ipv6_return_router_forwarding_and_its_neighbour_state(tmp_path: Path) -> None:
    """IPv6: the return router's net.ipv6.conf.all.forwarding (IPv6 has no rp_filter), and this
    upstream's neighbour discovery entry for it: FAILED means it never answered a solicitation."""
    from test_doctor_ipv6 import PROXY6

    host6 = "fd00:16::11"
    up6 = replace(PROXY6, addresses=(*UP1.addresses,))
    opts = Options(role="upstream", host=host6, dsr="origin", vip="fd00:99::10", via="fd00:16::254")
    n = need(tmp_path, configs.DSR6, up6, opts)
    back = (RouteGet("2001:db8::c1", host6, "udp", 53, "fd00:16::254", "sheer-int"),)
    rr6 = NextHop("fd00:16::254", "sheer-rr", "sheer-int", {"net.ipv4.ip_forward": "1",
                                                            "net.ipv6.conf.all.forwarding": "0"},
                  (), "REACHABLE")
    found = [f for f in origin_nat(n, state(up6, None, routes_back=back, next_hop=rr6))
             if f.check == "return router"]
    assert [(f.status, f.summary) for f in found] == [
        ("problem", "fd00:16::254 (network namespace sheer-rr) does not forward")]
    assert found[0].fix == ("ip netns exec sheer-rr sysctl -w net.ipv6.conf.all.forwarding=1",)
    silent = replace(rr6, sysctls={"net.ipv6.conf.all.forwarding": "1"}, neighbour="FAILED")
    found = [f for f in origin_nat(n, state(up6, None, routes_back=back, next_hop=silent))
             if f.check == "return router"]
    assert [f.status for f in found] == ["ok", "problem"]
    assert found[1].summary.startswith("the return router fd00:16::254 does not answer neighbour "
                                       "solicitation")
    assert found[1].evidence == ("ip -6 neigh show fd00:16::254: FAILED",)
    assert not any(f.check == "rp_filter" for f in origin_nat(n, state(up6, None, routes_back=back,
                                                                       next_hop=silent)))
