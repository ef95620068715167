"""doctor: rp_filter / src_valid_mark / accept_local (Method 1), ip_forward, the stateless NAT rules,
udp_early_demux and act_nat (router NAT)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from doctor_recorded import PROXY, SYSCTLS, need, state

from sheer.doctor.checks import reverse_path, router_nat
from sheer.lab import configs
from sheer.net.plan import Options


def test_src_valid_mark_without_accept_local_breaks_method_1(tmp_path: Path) -> None:
    facts = replace(PROXY, sysctls={**SYSCTLS, "net.ipv4.conf.all.src_valid_mark": "1"})
    [f] = reverse_path(need(tmp_path), state(facts))
    assert f.status == "problem"
    assert "src_valid_mark=1 without accept_local=1 on sheer-int breaks Method 1" in f.summary
    assert f.fix[0] == "sysctl -w net.ipv4.conf.sheer-int.accept_local=1"
    fixed = replace(facts, sysctls={**facts.sysctls, "net.ipv4.conf.sheer-int.accept_local": "1"})
    assert [x.status for x in reverse_path(need(tmp_path), state(fixed))] == ["ok"]


def test_strict_or_loose_rp_filter_is_harmless_for_method_1(tmp_path: Path) -> None:
    for value in ("1", "2"):
        facts = replace(PROXY, sysctls={**SYSCTLS, "net.ipv4.conf.all.rp_filter": value})
        [f] = reverse_path(need(tmp_path), state(facts))
        assert f.status == "ok" and f"rp_filter {value} is harmless" in f.summary


def test_router_nat_ip_forward(tmp_path: Path) -> None:
    facts = replace(PROXY, sysctls={**SYSCTLS, "net.ipv4.ip_forward": "0"})
    n = need(tmp_path, configs.DSR, facts, Options(dsr="router"))
    [f] = [f for f in router_nat(n, state(facts, "router")) if f.check == "ip_forward"]
    assert f.status == "problem" and f.fix == ("sysctl -w net.ipv4.ip_forward=1",)
    on = replace(facts, sysctls={**SYSCTLS, "net.ipv4.ip_forward": "1"})
    assert [f.status for f in router_nat(n, state(on, "router")) if f.check == "ip_forward"] == ["ok"]


def test_router_nat_rewrites_present_with_counters(tmp_path: Path) -> None:
    n = need(tmp_path, configs.DSR, PROXY, Options(dsr="router"))
    found = [f for f in router_nat(n, state(PROXY, "router")) if f.check == "stateless NAT"]
    assert [f.status for f in found] == ["ok"] * 4
    assert "replies from 172.16.0.11:53 are rewritten to 192.168.99.10" == found[0].summary
    assert "udp sport 53 ip saddr set 192.168.99.10 counter packets" in found[0].evidence[0]


def test_router_nat_rewrites_missing(tmp_path: Path) -> None:
    n = need(tmp_path, configs.DSR, PROXY, Options(dsr="router"))
    found = [f for f in router_nat(n, state(PROXY, None)) if f.check == "stateless NAT"]
    assert [f.status for f in found] == ["problem"] * 4
    assert found[0].fix[0] == f"sheer net apply -c {n.conf} --dsr router"
    assert "match ip src 172.16.0.11/32 match ip sport 53 0xffff action nat egress" in found[0].fix[1]


def test_early_demux_and_act_nat(tmp_path: Path) -> None:
    n = need(tmp_path, configs.DSR, PROXY, Options(dsr="router"))
    [demux] = [f for f in router_nat(n, state(PROXY, "router")) if f.check == "udp early demux"]
    assert demux.status == "warning" and "raw DSR sender" in demux.summary and "nginx" in demux.summary
    assert demux.fix == ("sysctl -w net.ipv4.udp_early_demux=0",)
    off = replace(PROXY, sysctls={**SYSCTLS, "net.ipv4.udp_early_demux": "0"})
    assert [f.status for f in router_nat(n, state(off, "router")) if f.check == "udp early demux"] == ["ok"]
    [act] = [f for f in router_nat(n, state(PROXY, "router")) if f.check == "act_nat"]
    assert "missing" in act.summary and "nftables" in act.summary
    [act] = [f for f in router_nat(n, state(replace(PROXY, act_nat=True), "router")) if f.check == "act_nat"]
    assert "available" in act.summary


def test_origin_nat_needs_nothing_of_the_proxy(tmp_path: Path) -> None:
    assert router_nat(need(tmp_path, configs.DSR, PROXY, Options(dsr="origin")), state(PROXY, None)) == []
