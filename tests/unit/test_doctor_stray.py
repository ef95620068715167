"""doctor: stray source NAT (masquerade, snat) catching the upstream-bound traffic; reachability
probes; the article's "No Overlapping IP Ranges"."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from doctor_recorded import PROXY, ROOT, need, ruleset, state

from sheer import doctor
from sheer.cli.doctor import render
from sheer.doctor import gather as doctor_gather
from sheer.doctor.checks import overlap, reachability, router_nat, stray_nat
from sheer.doctor.state import Probe
from sheer.lab import configs
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
    [f] = stray_nat(need(tmp_path, configs.DSR, options=Options(dsr="router")),
                    replace(state(PROXY, None), ruleset=own))
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
    text = render(found)
    assert "problem  stray rules:" in text and "fix: nft delete rule ip nat post handle 3" in text
    assert text.endswith("sheer doctor: 1 problem(s), 1 warning(s), 0 ok")


def test_one_missing_route_is_one_problem(tmp_path: Path) -> None:
    """Every probe of every upstream fails for one reason: doctor reports one problem with one fix."""
    no_route = replace(PROXY, routes=tuple(r for r in PROXY.routes if r.dst != "172.16.0.0/24"))
    n = need(tmp_path, facts=no_route)
    hosts = ("172.16.0.11", "172.16.0.12", "172.16.0.13", "172.16.0.14")
    probes = tuple(Probe(h, kind, port, False, "Network is unreachable") for h in hosts
                   for kind, port in (("icmp", None), ("tcp", 80), ("udp", 53)))
    found = doctor.group(reachability(n, state(no_route, probes=probes, probed=True)))
    [one] = found
    assert one.status == "problem" and one.symptoms == 12
    assert one.summary.startswith("no route from here to 172.16.0.11, 172.16.0.12, 172.16.0.13, 172.16.0.14")
    assert one.fix[0].startswith("ip route get 172.16.0.11")
    assert len(one.evidence) == 12 and all("Network is unreachable" in e for e in one.evidence)
    assert render(found).endswith("sheer doctor: 1 problem(s), 0 warning(s), 0 ok")


def test_a_silent_upstream_is_one_problem_a_closed_port_another(tmp_path: Path) -> None:
    probes = (Probe("172.16.0.11", "icmp", None, False, "no echo reply within 1s"),
              Probe("172.16.0.11", "tcp", 80, False, "no answer within 1s"),
              Probe("172.16.0.12", "icmp", None, True, "echo reply"),
              Probe("172.16.0.12", "tcp", 80, False, "Connection refused"))
    found = doctor.group(reachability(need(tmp_path), state(probes=probes, probed=True)))
    assert [(f.status, f.symptoms) for f in found] == [("problem", 2), ("problem", 1), ("ok", 1)]
    assert found[0].summary.startswith("upstream 172.16.0.11 answers nothing from here")
    assert found[1].summary == "upstream 172.16.0.12:80 does not answer TCP from here"


def test_no_ok_for_what_could_not_be_seen(tmp_path: Path) -> None:
    # the interface facing the clients cannot be told (two candidates): a warning, never "ok" with "?"
    two_sided = replace(PROXY, addresses=(*PROXY.addresses, IfAddr("sheer-mgmt", "10.9.9.9/24")))
    [unseen] = overlap(need(tmp_path, facts=two_sided), state(two_sided))
    assert unseen.status == "warning" and unseen.summary.startswith("not checked")
    assert "--public-if" in unseen.fix[0]
    # the nft ruleset could not be read: the checks that need it say so
    unread = state(PROXY, None, nft_error="`nft -j list ruleset` failed: Operation not permitted")
    [f] = stray_nat(need(tmp_path), unread)
    assert f.status == "warning" and f.summary == "not checked: the nft ruleset could not be read"
    # a sysctl that could not be read is not "off"
    blind = replace(PROXY, sysctls={})
    found = {f.check: f
             for f in router_nat(need(tmp_path, configs.DSR, blind, Options(dsr="router")), state(blind))}
    assert found["ip_forward"].status == "warning" and found["udp early demux"].status == "warning"
