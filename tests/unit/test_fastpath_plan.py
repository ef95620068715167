"""The fast path as `sheer net plan` renders it: the nft table, its rule per method, port rewrites,
guards, the maps' entries, updates as one transaction, and when there is no fast path (and why)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from test_net_plan import PROXY, conf

from sheer.lab import configs
from sheer.net import apply as net_apply
from sheer.net import fastpath_state
from sheer.net.facts import HookUser
from sheer.net.fastpath import NftFastPath
from sheer.net.items import NftTable, from_json, to_json
from sheer.net.plan import Options, Plan, plan
from sheer.net.record import Record

RR = configs.DSR
MAGLEV = RR.replace("upstream dns_upstreams {",
                    "upstream dns_upstreams {\n        hash $remote_addr$remote_port maglev;")


def fast(p: Plan) -> NftFastPath:
    found = [i for i in p.items if isinstance(i, NftFastPath)]
    assert len(found) == 1, p.items
    return found[0]


def test_maglev_rule_guards_and_counters(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, MAGLEV), Options(dsr="router"), PROXY)
    assert not p.problems
    item = fast(p)
    assert item.dev == "sheer-pub" and item.mtu == 1500
    text = p.nft()
    assert ("ip daddr 192.168.99.10 udp dport 53 ip hdrlength 5 ip frag-off & 0x3fff == 0 ip length <= 1500 "
            "ip daddr set jhash ip saddr . udp sport mod 65537 seed 0x73686565 map @dsr_192_168_99_10_53 "
            "counter name ip daddr . udp dport map @peers4") in text
    assert 'type filter hook ingress device "sheer-pub" priority 0; policy accept;' in text
    assert "counter up_172_16_0_11_53 {" in text
    assert "# map dsr_192_168_99_10_53: 65537 of 65537 slots" in text
    script = item.script()
    assert script.startswith("table netdev sheer\ndelete table netdev sheer\n")        # one transaction
    entries = re.search(r"add element netdev sheer dsr_192_168_99_10_53 \{ (.*) \}", script)
    assert entries is not None and entries.group(1).count(":") == 65537
    assert 'add element netdev sheer peers4 { 172.16.0.11 . 53 : "up_172_16_0_11_53"' in script
    assert any("jhash of the client's address and port" in line for line in p.commands())


def test_round_robin_and_random_use_numgen(tmp_path: Path) -> None:
    rr = plan(conf(tmp_path, RR), Options(), PROXY)
    assert "ip daddr set numgen inc mod 4 map @dsr_192_168_99_10_53" in rr.nft()
    text = (RR.replace("upstream dns_upstreams {", "upstream dns_upstreams {\n        random;")
            .replace("server 172.16.0.11:53;", "server 172.16.0.11:53 weight=3;"))
    random = plan(conf(tmp_path, text), Options(), PROXY)
    assert "ip daddr set numgen random mod 6 map @dsr_192_168_99_10_53" in random.nft()
    assert random.nft().count("\n") > 10


def test_port_rewrites(tmp_path: Path) -> None:
    public = RR.replace("listen 53 udp;", "listen 192.168.99.10:5353 udp;")
    assert "udp dport set 53 counter" in plan(conf(tmp_path, public), Options(), PROXY).nft()
    mixed = public.replace("172.16.0.12:53", "172.16.0.12:5300")
    p = plan(conf(tmp_path, mixed), Options(), PROXY)
    assert "udp dport set ip daddr map @dsr_192_168_99_10_5353_ports" in p.nft()
    assert "add element netdev sheer dsr_192_168_99_10_5353_ports { 172.16.0.11 : 53, 172.16.0.12 : 5300" in \
        fast(p).script()
    same_host = public.replace("172.16.0.12:53", "172.16.0.11:5300")
    p = plan(conf(tmp_path, same_host), Options(), PROXY)
    assert not any(isinstance(i, NftFastPath) for i in p.items)
    assert any("one address serves on two ports" in n for n in p.notes), p.notes


def test_no_fast_path_and_why(tmp_path: Path) -> None:
    least = RR.replace("upstream dns_upstreams {", "upstream dns_upstreams {\n        least_conn;")
    p = plan(conf(tmp_path, least), Options(), PROXY)
    assert not any(isinstance(i, NftFastPath) for i in p.items) and not p.problems
    assert any("user-space path (no kernel fast path): least_conn" in n for n in p.notes), p.notes
    off = plan(conf(tmp_path, MAGLEV), Options(fastpath=False), PROXY)
    assert not any(isinstance(i, NftFastPath) for i in off.items)
    assert "no_conntrack" not in off.nft()
    assert any("fast path off" in n for n in off.notes)


def test_after_other_users_of_the_hook_and_mtu(tmp_path: Path) -> None:
    facts = replace(PROXY, mtus={"sheer-pub": 1500, "sheer-int": 1400},
                    hook_users=(HookUser("sheer-pub", "nft", "inet fw ingress", 10),
                                HookUser("sheer-pub", "tc", "ingress filter bpf"),
                                HookUser("sheer-int", "nft", "inet fw other", 50)))
    p = plan(conf(tmp_path, MAGLEV), Options(), facts)
    item = fast(p)
    assert item.priority == 11 and item.mtu == 1400
    assert "ip length <= 1400" in p.nft()
    assert any("sheer-pub already has nft inet fw ingress (priority 10): left alone; it runs before" in n
               for n in p.notes), p.notes
    assert any("tc ingress filter bpf: left alone; it runs before the fast path (tc and XDP always do)" in n
               for n in p.notes)
    assert not any("inet fw other" in n for n in p.notes)


def test_notrack_where_conntrack_runs_both_ways_in_router_nat(tmp_path: Path) -> None:
    idle = plan(conf(tmp_path, MAGLEV), Options(dsr="router"), PROXY)
    assert "notrack" not in idle.nft() and any("no notrack rules needed" in n for n in idle.notes)
    tracking = replace(PROXY, conntrack=True)
    router = plan(conf(tmp_path, MAGLEV), Options(dsr="router"), tracking).nft()
    origin = plan(conf(tmp_path, MAGLEV), Options(dsr="origin"), tracking).nft()
    assert "notrack" in plan(conf(tmp_path, MAGLEV), Options(dsr="router", masquerade=True), PROXY).nft()
    client_side = ('iifname "sheer-pub" ip daddr { 172.16.0.11, 172.16.0.12, 172.16.0.13, 172.16.0.14 } '
                   "udp dport 53 notrack")
    replies = "udp sport 53 fib daddr type != local notrack"
    assert "type filter hook prerouting priority raw;" in router
    assert client_side in router and replies in router
    assert client_side in origin and replies not in origin


def test_the_item_round_trips_through_the_record(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, MAGLEV), Options(), PROXY)
    item = fast(p)
    assert from_json(to_json(item)) == item
    assert isinstance(from_json(to_json(next(i for i in p.items if isinstance(i, NftTable)))), NftTable)


def test_updates_write_only_what_changes_in_one_transaction(tmp_path: Path) -> None:
    item = fast(plan(conf(tmp_path, MAGLEV), Options(), PROXY))
    service = item.services[0]
    before = item.initial()
    after = {service.map: service.table([False, True, False, False])}
    script = item.update(after, before, item.rules(before))
    old, new = before[service.map], after[service.map]
    assert old is not None and new is not None
    moved = [at for at in range(old.modulus) if old.slots[at] != new.slots[at]]
    assert 0.2 < len(moved) / old.modulus < 0.3                   # the down server's quarter, nothing else
    deleted = re.search(r"delete element netdev sheer dsr_192_168_99_10_53 \{ (.*) \}", script)
    assert deleted is not None and [int(x) for x in deleted.group(1).split(", ")] == moved
    assert "172.16.0.12" not in script.split("add element", 1)[1]
    assert "flush" not in script                                  # the rule did not change
    assert item.update(after, after, item.rules(after)) == ""
    full = item.update(after, None, None)                         # unknown before: everything again
    assert "flush map netdev sheer dsr_192_168_99_10_53" in full
    assert "flush chain netdev sheer ingress" in full


def test_round_robin_update_rewrites_the_rule(tmp_path: Path) -> None:
    item = fast(plan(conf(tmp_path, RR), Options(), PROXY))
    service = item.services[0]
    before = item.initial()
    after = {service.map: service.table([False, False, True, False])}
    script = item.update(after, before, item.rules(before))
    assert "flush chain netdev sheer ingress" in script
    assert "numgen inc mod 3 map @dsr_192_168_99_10_53" in script
    nothing = {service.map: service.table([True] * 4)}
    assert "add rule" not in item.update(nothing, before, item.rules(before))   # no rule: user space answers


def test_a_kernel_without_the_hooks_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    item = fast(plan(conf(tmp_path, MAGLEV), Options(), PROXY))

    def refused(nft: object, what: NftFastPath) -> None:
        raise fastpath_state.Unavailable("Error: Could not process rule: Operation not supported")

    monkeypatch.setattr(fastpath_state, "listing", lambda nft, name="sheer": None)
    monkeypatch.setattr(fastpath_state, "load", refused)
    report = net_apply.apply(Plan(Options(), (item,)), tmp_path / "record.json", {})
    assert report == [("skipped  nft table netdev sheer: the kernel refused the fast path (Error: Could not "
                       "process rule: Operation not supported); DSR stays on sheer's user-space path")]
    record = Record.load(tmp_path / "record.json")
    assert record is not None and record.entries == []


def test_ipv6_rule_text_is_ready_but_not_planned() -> None:
    # the plan refuses IPv6 (sheer -t refuses DSR over IPv6 until the IPv6 work); the rule it would load:
    from sheer.core.fastpath import Method
    from sheer.net.fastpath import FpServer, FpService, rule

    service = FpService("[2001:db8::10]:53 udp", "dns", "2001:db8::10", 53, Method("jhash", "addr_port"),
                        (FpServer("2001:db8:1::11", 53), FpServer("2001:db8:1::12", 53)))
    table = service.table()
    assert table is not None
    assert rule(service, table, 1500) == (
        "ip6 daddr 2001:db8::10 udp dport 53 ip6 nexthdr udp ip6 length <= 1460 ip6 daddr set jhash "
        "ip6 saddr . udp sport mod 65537 seed 0x73686565 map @dsr_2001_db8__10_53 "
        "counter name ip6 daddr . udp dport map @peers6")
