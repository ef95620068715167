"""doctor's ICMPv6 check: packet-too-big (type 2) and neighbour discovery (133-137) must pass every hook
of the proxy (and, but for forwarding, of the return router). Rulesets recorded with `nft -j list
ruleset` from tests/unit/data/doctor/icmpv6.nft (one scratch namespace, one table per case), and the
lab's own tables (sheer's IPv6 Method 1, the return router's filter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from doctor_recorded import need, ruleset, state
from test_doctor_ipv6 import APPLIED6, PROXY6

from sheer.doctor.checks import icmpv6
from sheer.doctor.checks.icmpv6 import drops
from sheer.doctor.state import NextHop
from sheer.lab import configs

DEVS = ("sheer-pub", "sheer-int")


def tables(*names: str) -> tuple[Mapping[str, Any], ...]:
    """The recorded ruleset's entries of these tables only."""
    keep = []
    for entry in ruleset("icmpv6"):
        kind = next(iter(entry))
        if kind == "metainfo" or entry[kind].get("table", entry[kind].get("name")) in names:
            keep.append(entry)
    return tuple(keep)


def found(*names: str, forwarded: bool = True) -> set[tuple[int, str, str, bool]]:
    return {(d.icmp_type, d.hook, d.where, d.certain) for d in drops(tables(*names), DEVS, forwarded)}


def test_a_rule_that_drops_packet_too_big_is_named_with_its_fix(tmp_path: Path) -> None:
    [f] = icmpv6(need(tmp_path, configs.TRANSPARENT6, PROXY6),
                 replace(state(APPLIED6, None), ruleset=tables("sheer_icmp6drop")))
    assert f.status == "problem"
    assert f.summary.startswith("ip6 sheer_icmp6drop input #3 drops ICMPv6 packet-too-big (input): IPv6 "
                                "routers never fragment")
    assert f.evidence == ("ip6 sheer_icmp6drop input #3: icmpv6 type packet-too-big counter packets 0 drop",)
    assert f.fix == (("nft insert rule ip6 sheer_icmp6drop input position 3 icmpv6 type { packet-too-big } "
                      "accept"), "# or: nft delete rule ip6 sheer_icmp6drop input handle 3")


def test_udp_rules_leave_icmpv6_alone() -> None:
    # `udp dport 53 drop` comes first in that chain: not an ICMPv6 packet's concern
    assert {w for _, _, w, _ in found("sheer_icmp6drop")} == {"ip6 sheer_icmp6drop input #3"}


def test_a_default_drop_firewall_drops_neighbour_discovery_and_perhaps_packet_too_big(tmp_path: Path) -> None:
    got = found("sheer_host")
    policy = "inet sheer_host input (policy drop)"
    assert {(t, certain) for t, _, _, certain in got} == {(2, False), (133, True), (134, True), (135, True),
                                                         (136, True), (137, True)}
    assert {w for _, _, w, _ in got} == {policy}
    out = icmpv6(need(tmp_path, configs.TRANSPARENT6, PROXY6),
                 replace(state(APPLIED6, None), ruleset=tables("sheer_host")))
    statuses = {f.status: f for f in out}
    nd = statuses["problem"]
    assert "drops ICMPv6 nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, " \
           "nd-redirect (input)" in nd.summary
    assert nd.fix == (("nft insert rule inet sheer_host input icmpv6 type { nd-router-solicit, "
                       "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept"),)
    ptb = statuses["warning"]
    assert "may drop ICMPv6 packet-too-big" in ptb.summary
    assert any("`ct state invalid`" in e for e in ptb.evidence)


def test_the_usual_icmpv6_accept_rule_lets_everything_through(tmp_path: Path) -> None:
    assert found("sheer_good") == set()
    [f] = icmpv6(need(tmp_path, configs.TRANSPARENT6, PROXY6),
                 replace(state(APPLIED6, None), ruleset=tables("sheer_good")))
    assert f.status == "ok"


def test_forward_hook_matters_for_packet_too_big_only() -> None:
    assert found("sheer_fwd") == {(2, "forward", "ip6 sheer_fwd forward #2", True)}
    assert found("sheer_fwd", forwarded=False) == set()


def test_ct_state_invalid_perhaps_drops_packet_too_big_of_untracked_flows() -> None:
    assert found("sheer_invalid") == {(2, "input", "inet sheer_invalid input #2", False)}
    assert found("sheer_vmap") == {(t, "input", "inet sheer_vmap input #3", False) for t in (2, 133, 134, 135,
                                                                                          136, 137)}


def test_a_drop_in_a_jumped_to_chain_is_found() -> None:
    assert {(t, w, c) for t, _, w, c in found("sheer_jump")} == {(2, "ip6 sheer_jump icmp_filter #4", True),
                                                               (137, "ip6 sheer_jump icmp_filter #4", True)}


def test_interface_matches_against_this_hosts_interfaces() -> None:
    # eth9 is not an interface here; sheer-int is, so its neighbour solicitations are dropped
    assert found("sheer_iface") == {(135, "input", "ip6 sheer_iface input #3", True)}


def test_address_matches_make_it_a_perhaps() -> None:
    assert found("sheer_out") == {(2, "output", "inet sheer_out output #3", False)}


def test_sheers_own_tables_and_an_ipv4_config_are_fine(tmp_path: Path) -> None:
    [f] = icmpv6(need(tmp_path, configs.TRANSPARENT6, PROXY6), state(APPLIED6, "transparent6"))
    assert f.status == "ok" and "let ICMPv6 packet-too-big and neighbour discovery through" in f.summary
    assert icmpv6(need(tmp_path, configs.TRANSPARENT), state(APPLIED6, "icmpv6")) == []


def test_the_return_routers_filter_forwards_no_icmpv6_but_must_not_drop_it_elsewhere(tmp_path: Path) -> None:
    from sheer.net.plan import Options

    options = Options("upstream", "fd00:16::11", "origin", vip="fd00:99::10", via="fd00:16::254")
    n = need(tmp_path, configs.DSR6, PROXY6, options)
    hop = NextHop("fd00:16::254", "sheer17-rr", "sheer-int", {"net.ipv6.conf.all.forwarding": "1"},
                  ruleset("rr6"))
    [f] = icmpv6(n, replace(state(APPLIED6, None), next_hop=hop))
    assert f.status == "ok" and "sheer17-rr's" in f.summary
    blocked = (*ruleset("rr6"), *tables("sheer_icmp6drop")[1:])
    [bad] = icmpv6(n, replace(state(APPLIED6, None), next_hop=replace(hop, ruleset=blocked)))
    assert bad.status == "problem"
    assert bad.summary.startswith("sheer17-rr: ip6 sheer_icmp6drop input #3 drops")
    assert bad.fix[0].startswith("ip netns exec sheer17-rr nft insert rule ip6 sheer_icmp6drop input "
                                 "position 3")


@pytest.mark.parametrize("name", ["icmpv6", "transparent6", "rr6"])
def test_recorded_rulesets_parse(name: str) -> None:
    assert ruleset(name)


def test_a_netdev_ingress_chain_is_walked_too() -> None:
    assert found("sheer_nd") == {(136, "ingress", "netdev sheer_nd ingress #2", True)}
