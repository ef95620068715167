"""sheer net plan: the article's configs against recorded kernel facts (no kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sheer.config import Config, load
from sheer.lab import configs
from sheer.net.facts import IfAddr, KernelFacts, RouteFact, RuleFact
from sheer.net.items import NftTable, Route, Rule, Sysctl, TcClsact, TcNat, from_json, to_json
from sheer.net.plan import Options, plan

PROXY = KernelFacts(
    addresses=(IfAddr("lo", "127.0.0.1/8"), IfAddr("sheer-pub", "192.168.99.10/24"),
               IfAddr("sheer-int", "172.16.0.1/24")),
    routes=(RouteFact("192.168.99.0/24", "sheer-pub"), RouteFact("172.16.0.0/24", "sheer-int"),
            RouteFact("127.0.0.0/8", "lo", table=255, kind="local")),
    rules=(RuleFact(0, 255), RuleFact(32766, 254), RuleFact(32767, 253)),
    sysctls={"net.ipv4.ip_forward": "0", "net.ipv4.udp_early_demux": "1"},
)
UP1 = KernelFacts(
    addresses=(IfAddr("lo", "127.0.0.1/8"), IfAddr("sheer-int", "172.16.0.11/24")),
    routes=(RouteFact("0.0.0.0/0", "sheer-int", "172.16.0.1"), RouteFact("172.16.0.0/24", "sheer-int")),
    rules=PROXY.rules,
    sysctls={"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.sheer-int.rp_filter": "0"},
)
DSR = configs.DSR
DSR_5353 = configs.HEADER + configs.dns_block("$remote_addr:$remote_port transparent", responses=0,
                                               listen="192.168.99.10:5353")


def conf(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path), prefix=str(tmp_path))     # relative paths: against the prefix, as nginx


def test_http_and_dns_transparency_marks_replies_by_socket(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, configs.TRANSPARENT), Options(), PROXY)
    assert not p.problems
    assert (p.mark, p.table) == (1, 100)
    assert p.commands() == [
        ("iptables -t mangle -A PREROUTING -s 172.16.0.11,172.16.0.12,172.16.0.13,172.16.0.14 "
         "-m socket --transparent -j MARK --set-xmark 0x1/0xffffffff"),
        "ip route add local 0.0.0.0/0 dev lo table 100",
        "ip rule add fwmark 1 lookup 100 priority 32765",
    ]
    assert "table ip sheer {" in p.nft()
    assert "socket transparent 1 meta mark set 0x1 counter" in p.nft()   # `sheer doctor` reads it
    assert any("UDP replies are marked" in n for n in p.notes)


def test_article_port_rules(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, configs.TRANSPARENT), Options(match="ports"), PROXY)
    lines = p.commands()
    assert "iptables -t mangle -A PREROUTING -p tcp -s 172.16.0.11,172.16.0.12,172.16.0.13,172.16.0.14 " \
           "--sport 80 -j MARK --set-xmark 0x1/0xffffffff" in lines
    assert any("-p udp" in ln and "--sport 53" in ln for ln in lines)
    assert "tcp sport 80 meta mark set 0x1" in p.nft()
    assert "udp sport 53 meta mark set 0x1" in p.nft()


def test_mark_table_priority_avoid_collisions(tmp_path: Path) -> None:
    busy = KernelFacts(PROXY.addresses,
                       (*PROXY.routes, RouteFact("0.0.0.0/0", "lo", table=100, kind="local")),
                       (*PROXY.rules, RuleFact(32765, 100, 1), RuleFact(32764, 101, 2)))
    p = plan(conf(tmp_path, configs.TRANSPARENT), Options(), busy)
    assert (p.mark, p.table) == (3, 102)
    assert Rule(102, 32763, fwmark=3) in p.items
    explicit = plan(conf(tmp_path, configs.TRANSPARENT), Options(mark=7, table=200), busy)
    assert (explicit.mark, explicit.table) == (7, 200) and not explicit.problems
    clash = plan(conf(tmp_path, configs.TRANSPARENT), Options(mark=1), busy)
    assert any("fwmark 1" in pr for pr in clash.problems)


def test_replan_after_apply_picks_the_same_values(tmp_path: Path) -> None:
    first = plan(conf(tmp_path, configs.TRANSPARENT), Options(), PROXY)
    ours_rules = tuple(RuleFact(i.priority, i.table, i.fwmark) for i in first.items if isinstance(i, Rule))
    ours_routes = tuple(RouteFact(i.dst, i.dev, i.via, i.table, i.kind) for i in first.items
                        if isinstance(i, Route))
    after = KernelFacts(PROXY.addresses, PROXY.routes + ours_routes, PROXY.rules + ours_rules)
    again = plan(conf(tmp_path, configs.TRANSPARENT), Options(), after.excluding(ours_rules, ours_routes))
    assert again.items == first.items


def test_dsr_router_without_act_nat_uses_nft(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, DSR), Options(dsr="router"), PROXY)
    assert not p.problems
    assert Sysctl("net.ipv4.ip_forward", "1") in p.items
    assert Sysctl("net.ipv4.udp_early_demux", "0") in p.items
    assert 'oifname "sheer-pub" ip saddr { 172.16.0.11, 172.16.0.12, 172.16.0.13, 172.16.0.14 } ' \
           "udp sport 53 ip saddr set 192.168.99.10 counter" in p.nft()
    assert "priority srcnat - 10" in p.nft()
    assert not any(isinstance(i, (Rule, TcNat)) for i in p.items)   # replies are forwarded, not captured
    assert any("act_nat is missing" in n for n in p.notes)
    assert any("match ip sport 53 0xffff action nat egress" in c for c in p.commands())


def test_dsr_router_with_act_nat_uses_tc(tmp_path: Path) -> None:
    facts = KernelFacts(PROXY.addresses, PROXY.routes, PROXY.rules, act_nat=True)
    p = plan(conf(tmp_path, DSR), Options(), facts)
    assert not p.problems
    assert TcClsact("sheer-pub") in p.items
    tc = [i for i in p.items if isinstance(i, TcNat)]
    assert len(tc) == 4
    assert tc[0].commands() == [("tc filter add dev sheer-pub egress protocol ip prio 49152 u32 match ip src "
                                 "172.16.0.11/32 match ip sport 53 0xffff action nat egress 172.16.0.11/32 "
                                 "192.168.99.10")]
    assert "dsr_rewrite" not in p.nft() and "ip saddr set" not in p.nft()   # tc rewrites the replies
    without = plan(conf(tmp_path, DSR), Options(fastpath=False), facts)
    assert not without.nft()


def test_public_port_differs_nft_rewrites_tc_refuses(tmp_path: Path) -> None:
    config = conf(tmp_path, DSR_5353)
    nft = plan(config, Options(), PROXY)
    assert not nft.problems
    assert "ip saddr set 192.168.99.10 udp sport set 5353" in nft.nft()
    tc = plan(config, Options(nat="tc"), KernelFacts(PROXY.addresses, PROXY.routes, act_nat=True))
    assert any("tc nat rewrites addresses only" in pr for pr in tc.problems)
    missing = plan(config, Options(nat="tc"), PROXY)
    assert any("no act_nat" in pr for pr in missing.problems)


def test_dsr_and_transparency_together_exclude_dsr_replies_from_marking(tmp_path: Path) -> None:
    text = DSR.replace("stream {", configs.http_block("$remote_addr transparent") + "\nstream {")
    p = plan(conf(tmp_path, text), Options(masquerade=True), PROXY)
    nft = p.nft()
    assert nft.index("udp sport 53 return") < nft.index("socket transparent 1")
    upstreams = "{ 172.16.0.11, 172.16.0.12, 172.16.0.13, 172.16.0.14 }"
    assert f'oifname "sheer-pub" ip saddr {upstreams} masquerade' in nft
    assert "iptables -t nat -A POSTROUTING -o sheer-pub -s 172.16.0.11,172.16.0.12,172.16.0.13,172.16.0.14 " \
           "-j MASQUERADE" in p.commands()


def test_dsr_origin_on_the_proxy_needs_nothing_but_the_fast_path(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, DSR), Options(dsr="origin", fastpath=False), PROXY)
    assert p.items == () and not p.problems
    assert any("--role upstream" in n for n in p.notes)
    fast = plan(conf(tmp_path, DSR), Options(dsr="origin"), PROXY)
    assert not fast.problems
    assert [type(i).__name__ for i in fast.items] == ["Sysctl", "NftFastPath"]
    assert Sysctl("net.ipv4.ip_forward", "1") in fast.items           # the fast path forwards
    assert "notrack" not in fast.nft()                                # conntrack idle here


def test_upstream_return_path_by_policy_routing(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, configs.TRANSPARENT), Options(role="upstream", host="172.16.0.11"), UP1)
    assert not p.problems
    assert p.commands() == [
        "ip route add default via 172.16.0.1 table 100",
        "ip route add 172.16.0.0/24 dev sheer-int table 100",
        "ip rule add from 172.16.0.11 ipproto tcp sport 80 lookup 100 priority 32765",
        "ip rule add from 172.16.0.11 ipproto udp sport 53 lookup 100 priority 32765",
    ]
    gw = plan(conf(tmp_path, configs.TRANSPARENT),
              Options(role="upstream", host="172.16.0.11", gateway="172.16.0.2"), UP1)
    assert "ip route add default via 172.16.0.2 table 100" in gw.commands()


def test_upstream_dsr_origin(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, DSR), Options(role="upstream", host="172.16.0.12", dsr="origin",
                                                  vip="192.168.99.10", via="172.16.0.254"),
             KernelFacts(tuple(IfAddr(a.dev, a.address.replace(".11/", ".12/")) for a in UP1.addresses),
                         UP1.routes, UP1.rules, sysctls=UP1.sysctls))
    assert not p.problems
    rewrite = "ip saddr 172.16.0.12 ip daddr != 172.16.0.0/24 udp sport 53 ip saddr set 192.168.99.10 counter"
    assert rewrite in p.nft()
    assert "hook output" in p.nft()
    assert p.commands()[0] == "sysctl -w net.ipv4.conf.all.rp_filter=2"      # strict -> loose; 0 left alone
    assert "ip route add default via 172.16.0.254 table 100" in p.commands()
    assert "ip rule add from 172.16.0.12 ipproto udp sport 53 lookup 100 priority 32765" in p.commands()
    wildcard = plan(conf(tmp_path, DSR), Options(role="upstream", host="172.16.0.12", dsr="origin"), UP1)
    assert any("--vip" in pr for pr in wildcard.problems)


def test_upstream_origin_port_rewrite(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, DSR_5353), Options(role="upstream", host="172.16.0.11", dsr="origin"), UP1)
    assert "ip saddr set 192.168.99.10 udp sport set 5353" in p.nft()


def test_upstream_not_in_config(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, configs.TRANSPARENT), Options(role="upstream", host="10.0.0.9"), UP1)
    assert any("not an upstream" in pr for pr in p.problems)


@pytest.mark.parametrize(("upstream", "why"), [
    ("127.0.0.1:8080", "on this host"),
    ("192.168.99.20:80", "clients' subnet 192.168.99.0/24"),
])
def test_problems_no_overlapping_ranges(tmp_path: Path, upstream: str, why: str) -> None:
    text = f"""stream {{
    server {{
        listen 192.168.99.10:80;
        proxy_bind $remote_addr transparent;
        proxy_pass {upstream};
    }}
}}
"""
    p = plan(conf(tmp_path, text), Options(), PROXY)
    assert any(why in pr for pr in p.problems), p.problems
    assert any("lb.conf:4" in pr for pr in p.problems)


def test_nothing_to_do(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, configs.PLAIN), Options(), PROXY)
    assert p.items == () and "nothing to do" in p.notes[0]


def test_json_shape_and_round_trip(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, configs.TRANSPARENT), Options(), PROXY)
    data = json.loads(json.dumps(p.to_json()))
    assert set(data) == {"role", "host", "dsr", "mark", "table", "items", "commands", "nft", "notes",
                         "problems"}
    assert [i["item"] for i in data["items"]] == ["nft", "route", "rule"]
    assert data["items"][1]["commands"] == ["ip route add local 0.0.0.0/0 dev lo table 100"]
    assert all(from_json(to_json(i)) == i for i in p.items)
    assert isinstance(from_json(data["items"][0]), NftTable)


def test_sysctl_paths() -> None:
    assert Sysctl("net.ipv4.ip_forward", "1").path == "/proc/sys/net/ipv4/ip_forward"
    assert Sysctl("net.ipv4.conf.eth0.100.rp_filter",
                  "2").path == "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"


def test_unix_listener_is_left_out_and_said(tmp_path: Path) -> None:
    """A unix-domain listener's clients have no IP address: its transparent server plans nothing for it,
    its inet listener is planned as before."""
    text = """
stream {
    upstream app { server 172.16.0.11:80; }
    server {
        listen unix:/run/front.sock;
        listen 192.168.99.10:80;
        proxy_bind $remote_addr transparent;
        proxy_pass app;
    }
}
"""
    p = plan(conf(tmp_path, text), Options(), PROXY)
    assert any("listen unix:/run/front.sock" in n and "nothing is planned" in n for n in p.notes), p.notes
    assert p.items and not p.problems
    assert all("unix" not in line for item in p.items for line in item.commands()), p.items
