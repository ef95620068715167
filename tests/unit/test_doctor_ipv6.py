"""doctor over IPv6: `ip -6 rule`, `local ::/0`, mark rules of `ip6` and `inet` tables (recorded in the
dual-stack lab after `sheer net apply` of configs.TRANSPARENT6), and a dual-stack config's two families."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from doctor_recorded import BASE_RULES, PROXY, need, ruleset, state

from sheer.doctor.checks import policy_routing
from sheer.lab import configs
from sheer.net.facts import IfAddr, RouteFact, RuleFact

BASE6 = (RuleFact(0, 255, family=6), RuleFact(32766, 254, family=6))
PROXY6 = replace(PROXY, addresses=(*PROXY.addresses, IfAddr("sheer-pub", "fd00:99::10/64"),
                                   IfAddr("sheer-int", "fd00:16::1/64")),
                 routes=(*PROXY.routes, RouteFact("fd00:99::/64", "sheer-pub"),
                         RouteFact("fd00:16::/64", "sheer-int")),
                 rules=(*BASE_RULES, *BASE6))
APPLIED6 = replace(PROXY6, rules=(*PROXY6.rules, RuleFact(32765, 100, fwmark=1, family=6)),
                   routes=(*PROXY6.routes, RouteFact("::/0", "lo", table=100, kind="local")))


def test_applied_ipv6_plumbing_is_ok(tmp_path: Path) -> None:
    [f] = policy_routing(need(tmp_path, configs.TRANSPARENT6, PROXY6), state(APPLIED6, "transparent6"))
    assert (f.status, f.summary) == ("ok", "fwmark 0x1 -> table 100 (local ::/0 dev lo)")
    assert "ip -6 rule: 32765: from all fwmark 0x1 lookup 100" in f.evidence


def test_a_removed_ip6_rule_is_named_exactly(tmp_path: Path) -> None:
    # an IPv4 rule for the same mark does not stand in for it: the kernel keeps the two lists apart
    lost = replace(APPLIED6, rules=(*PROXY6.rules, RuleFact(32765, 100, fwmark=1)))
    [f] = policy_routing(need(tmp_path, configs.TRANSPARENT6, PROXY6), state(lost, "transparent6"))
    assert f.status == "problem"
    assert f.summary == ("fwmark 0x1 is set but no `ip -6 rule` sends it to a table: marked IPv6 replies are "
                         "routed, not delivered locally")
    assert f.fix == ("ip -6 rule add fwmark 1 lookup 100 priority 32765",)


def test_missing_local_ipv6_route(tmp_path: Path) -> None:
    no_route = replace(APPLIED6,
                       routes=(*PROXY6.routes, RouteFact("0.0.0.0/0", "lo", table=100, kind="local")))
    [f] = policy_routing(need(tmp_path, configs.TRANSPARENT6, PROXY6), state(no_route, "transparent6"))
    assert f.status == "problem" and "table 100 has no `local ::/0` route" in f.summary
    assert f.fix == ("ip -6 route add local ::/0 dev lo table 100",)


def test_an_ipv4_mark_rule_does_not_mark_ipv6_replies(tmp_path: Path) -> None:
    [f] = policy_routing(need(tmp_path, configs.TRANSPARENT6, PROXY6), state(APPLIED6, "transparent"))
    assert f.status == "problem" and "no rule marks the upstreams' IPv6 replies" in f.summary
    assert any("`ip6` or `inet` table" in e for e in f.evidence)
    assert any(e.startswith("the article's form: ip6tables -t mangle") for e in f.evidence)


def test_dual_stack_checks_both_families(tmp_path: Path) -> None:
    text = configs.DUAL_TRANSPARENT
    both = (*ruleset("transparent"), *ruleset("transparent6"))
    facts = replace(APPLIED6, rules=(*APPLIED6.rules, RuleFact(32765, 100, fwmark=1)),
                    routes=(*APPLIED6.routes, RouteFact("0.0.0.0/0", "lo", table=100, kind="local")))
    found = policy_routing(need(tmp_path, text, PROXY6), replace(state(facts, None), ruleset=both))
    assert [(f.status, f.summary) for f in found] == [
        ("ok", "fwmark 0x1 -> table 100 (local 0.0.0.0/0 dev lo)"),
        ("ok", "fwmark 0x1 -> table 100 (local ::/0 dev lo)")]


def test_router_nat_over_ipv6_finds_the_ip6_rewrite(tmp_path: Path) -> None:
    """`ip6 saddr set VIP6` (recorded after `sheer net apply --dsr router` of configs.DSR6) is the
    stateless rewrite of IPv6 replies, as `ip saddr set VIP` is of IPv4 ones."""
    from sheer.doctor.checks import router_nat

    facts = replace(APPLIED6, sysctls={**APPLIED6.sysctls, "net.ipv6.conf.all.forwarding": "1"})
    found = router_nat(need(tmp_path, configs.DSR6, PROXY6), state(facts, "router6"))
    nat = [f for f in found if f.check == "stateless NAT"]
    assert len(nat) == 4 and all(f.status == "ok" for f in nat), nat
    assert nat[0].summary == "replies from [fd00:16::11]:53 are rewritten to fd00:99::10"
    assert "ip6 saddr set fd00:99::10" in nat[0].evidence[0]
