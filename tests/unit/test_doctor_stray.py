"""doctor: stray source NAT (masquerade, snat) catching the upstream-bound traffic; reachability
probes; the article's "No Overlapping IP Ranges"."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from doctor_recorded import PROXY, ROOT, need, ruleset, state

from sheer.lab import configs
from sheer.net import doctor, doctor_gather
from sheer.net.doctor_checks import overlap, reachability, stray_nat
from sheer.net.doctor_state import Probe
from sheer.net.facts import IfAddr, RouteFact
from sheer.net.plan import Options


def test_masquerade_towards_the_upstreams_is_a_problem(tmp_path: Path) -> None:
    found = stray_nat(need(tmp_path), state(PROXY, "stray"))
    # handle 2: oifname "sheer-pub" masquerade (the clients' side: harmless); 3: ip daddr 172.16.0.0/24
    # masquerade (catches it); 4: tcp dport 443 snat (cannot tell)
    assert [(f.status, f.evidence[0].split(":")[0]) for f in found] == [
        ("problem", "ip nat post #3"), ("warning", "ip nat post #4")]
    assert "upstreams see this proxy, not the client" in found[0].summary
    assert found[0].fix[0] == "nft delete rule ip nat post handle 3"


def test_no_stray_rules_and_sheer_own_masquerade_is_fine(tmp_path: Path) -> None:
    [f] = stray_nat(need(tmp_path), state(PROXY, "transparent"))
    assert f.status == "ok"
    # `sheer net apply --masquerade`: only the upstreams' own traffic leaving on the clients' side
    own = tuple(e for e in ruleset("stray") if "rule" not in e or e["rule"]["handle"] == 2)
    [f] = stray_nat(need(tmp_path, configs.DSR, options=Options(dsr="router")), replace(state(PROXY, None), ruleset=own))
    assert f.status == "ok"


def test_legacy_iptables_nat_is_named(tmp_path: Path) -> None:
    [f] = stray_nat(need(tmp_path), state(PROXY, None, legacy_tables=("filter", "nat")))
    assert f.status == "warning" and "legacy iptables nat table" in f.summary


def test_reachability(tmp_path: Path) -> None:
    n = need(tmp_path)
    [skipped] = reachability(n, state(privileges=ROOT))
    assert skipped.status == "warning" and skipped.fix == (f"sheer doctor -c {n.conf} --probe",)
    probes = (Probe("172.16.0.11", "icmp", None, True, "echo reply in 0.1 ms"),
              Probe("172.16.0.12", "icmp", None, False, "no echo reply within 1s"),
              Probe("172.16.0.11", "tcp", 80, True, "connected"))
    found = reachability(n, state(probes=probes, probed=True))
    assert [f.status for f in found] == ["problem", "ok"]
    assert found[0].summary == "upstream 172.16.0.12 does not answer ICMP from here"
    assert found[0].fix[0] == "ip route get 172.16.0.12"
    [ok] = reachability(n, state(probes=(probes[0], probes[2]), probed=True))
    assert ok.status == "ok" and len(ok.evidence) == 2


def test_probes_only_when_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = need(tmp_path)
    monkeypatch.setattr(doctor_gather.inspect, "in_root_netns", lambda: True)
    assert not doctor_gather.probes_allowed(n, explicit=False)
    assert doctor_gather.probes_allowed(n, explicit=True)
    loopback = need(tmp_path, configs.TRANSPARENT.replace("172.16.0.1", "127.0.0.1"))
    assert doctor_gather.probes_allowed(loopback, explicit=False)
    monkeypatch.setattr(doctor_gather.inspect, "in_root_netns", lambda: False)
    assert doctor_gather.probes_allowed(n, explicit=False)


def test_overlapping_ranges(tmp_path: Path) -> None:
    [ok] = overlap(need(tmp_path), state(PROXY))
    assert ok.status == "ok"
    # the upstreams' network is also the clients' (one flat /24 on the public side)
    flat = replace(PROXY, addresses=(IfAddr("sheer-pub", "192.168.99.10/24"),),
                   routes=(RouteFact("192.168.99.0/24", "sheer-pub"),))
    conf = configs.TRANSPARENT.replace("172.16.0.1", "192.168.99.1")
    found = overlap(need(tmp_path, conf, flat, Options(public_if="sheer-pub")), state(flat))
    assert found and all(f.status == "problem" for f in found)
    assert "No Overlapping IP Ranges" in found[0].summary
    # a client on the upstreams' network
    [client] = overlap(need(tmp_path, client="172.16.0.99"), state(PROXY))
    assert client.status == "problem" and "client 172.16.0.99 is on the upstreams' network" in client.summary


def test_exit_status_and_rendering(tmp_path: Path) -> None:
    found = stray_nat(need(tmp_path), state(PROXY, "stray"))
    assert doctor.exit_status(found) == 1
    assert doctor.exit_status([f for f in found if f.status != "problem"]) == 0
    text = doctor.render(found)
    assert "problem  stray rules:" in text and "fix: nft delete rule ip nat post handle 3" in text
    assert text.endswith("sheer doctor: 1 problem(s), 1 warning(s), 0 ok")
