"""doctor: the mark rule, the fwmark rule, the local table, and the mark counters moving."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from doctor_recorded import PROXY, PROXY_APPLIED, need, state

from sheer.doctor.checks import policy_routing
from sheer.doctor.state import TransparentProbe

MARK_RULE = "ip sheer prerouting #3"       # the recorded `socket transparent 1 meta mark set 0x1 counter`


def test_applied_plumbing_is_ok(tmp_path: Path) -> None:
    [f] = policy_routing(need(tmp_path), state())
    assert f.status == "ok"
    assert f.summary == "fwmark 0x1 -> table 100 (local 0.0.0.0/0 dev lo)"
    assert any("socket transparent 1 meta mark set 0x1 counter packets" in e for e in f.evidence)


def test_missing_ip_rule(tmp_path: Path) -> None:
    no_rule = replace(PROXY_APPLIED, rules=PROXY.rules)
    [f] = policy_routing(need(tmp_path, facts=no_rule), state(no_rule))
    assert f.status == "problem" and "no `ip rule`" in f.summary
    assert f.fix == ("ip rule add fwmark 1 lookup 100 priority 32765",)


def test_missing_local_route(tmp_path: Path) -> None:
    no_route = replace(PROXY_APPLIED, routes=PROXY.routes)
    [f] = policy_routing(need(tmp_path, facts=no_route), state(no_route))
    assert f.status == "problem" and "table 100 has no `local 0.0.0.0/0` route" in f.summary
    assert f.fix == ("ip route add local 0.0.0.0/0 dev lo table 100",)


def test_missing_mark_rule(tmp_path: Path) -> None:
    n = need(tmp_path)
    [f] = policy_routing(n, state(rules=None))
    assert f.status == "problem" and "no rule marks the upstreams' replies" in f.summary
    assert f.fix == (f"sheer net apply -c {n.conf}",)
    assert any("-m socket --transparent -j MARK" in e for e in f.evidence)


def probe(connected: bool, moved: int) -> TransparentProbe:
    return TransparentProbe("198.51.100.1", "172.16.0.11", 80, connected, "...", {MARK_RULE: 10},
                            {MARK_RULE: 10 + moved})


def test_counters_move_when_a_transparent_connection_is_answered(tmp_path: Path) -> None:
    found = policy_routing(need(tmp_path), state(transparent_probe=probe(True, 1)))
    assert [(f.check, f.status) for f in found] == [("policy routing", "ok"), ("mark counters", "ok")]
    assert "moved by 1" in found[1].evidence[1]


def test_unanswered_probe_says_where_it_stopped(tmp_path: Path) -> None:
    marked = policy_routing(need(tmp_path), state(transparent_probe=probe(False, 3)))[-1]
    assert marked.status == "problem" and "marked but not delivered" in marked.summary
    unmarked = policy_routing(need(tmp_path), state(transparent_probe=probe(False, 0)))[-1]
    assert unmarked.status == "problem" and "never reached the mark rule" in unmarked.summary
    assert "--role upstream --host 172.16.0.11" in unmarked.fix[1]
