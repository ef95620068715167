"""sheer net plan over IPv6 and dual stack: the `ip -6`/`ip6tables` lines and `table ip6 sheer`
(recorded kernel facts, no kernel)."""

from __future__ import annotations

from pathlib import Path

from sheer.config import Config, load
from sheer.lab import configs
from sheer.net.facts import IfAddr, KernelFacts, RouteFact, RuleFact
from sheer.net.items import NftTable, Route, Rule, Sysctl, from_json, to_json
from sheer.net.plan import Options, plan

UPS6 = ("fd00:16::11", "fd00:16::12")
PROXY = KernelFacts(
    addresses=(IfAddr("lo", "127.0.0.1/8"), IfAddr("lo", "::1/128"),
               IfAddr("sheer-pub", "192.168.99.10/24"), IfAddr("sheer-pub", "fe80::1/64"),
               IfAddr("sheer-pub", "fd00:99::10/64"),
               IfAddr("sheer-int", "172.16.0.1/24"), IfAddr("sheer-int", "fd00:16::1/64")),
    routes=(RouteFact("192.168.99.0/24", "sheer-pub"), RouteFact("172.16.0.0/24", "sheer-int"),
            RouteFact("fd00:99::/64", "sheer-pub"), RouteFact("fd00:16::/64", "sheer-int")),
    rules=(RuleFact(0, 255), RuleFact(32766, 254), RuleFact(32767, 253),
           RuleFact(0, 255, family=6), RuleFact(32766, 254, family=6)),
    sysctls={"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0"},
)
UP1 = KernelFacts(
    addresses=(IfAddr("lo", "::1/128"), IfAddr("sheer-int", "fe80::11/64"),
               IfAddr("sheer-int", "fd00:16::11/64")),
    routes=(RouteFact("::/0", "sheer-int", "fd00:16::1"), RouteFact("fd00:16::/64", "sheer-int")),
    rules=(RuleFact(0, 255, family=6), RuleFact(32766, 254, family=6)),
)


def stream(listen: str, ups: tuple[str, ...], port: int, bind: str, dsr: bool = False) -> str:
    servers = "".join(f"\n        server [{u}]:{port};" if ":" in u else f"\n        server {u}:{port};"
                      for u in ups)
    extra = "\n        proxy_responses 0;\n        dsr_without_health_check on;" if dsr else ""
    udp = " udp" if dsr or port == 53 else ""
    return f"""
    upstream u_{abs(hash(listen)) % 10000} {{{servers}
    }}
    server {{
        listen {listen}{udp};
        proxy_bind {bind} transparent;{extra}
        proxy_pass u_{abs(hash(listen)) % 10000};
    }}
"""


def conf(tmp_path: Path, *servers: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(configs.HEADER + "stream {" + "".join(servers) + "}\n")
    return load(str(path))


def test_transparency_over_ipv6_prints_ip6_lines(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, stream("[::]:80", UPS6, 80, "$remote_addr")), Options(), PROXY)
    assert not p.problems, p.problems
    assert p.commands() == [
        ("ip6tables -t mangle -A PREROUTING -s fd00:16::11,fd00:16::12 -m socket --transparent "
         "-j MARK --set-xmark 0x1/0xffffffff"),
        "ip -6 route add local ::/0 dev lo table 100",
        "ip -6 rule add fwmark 1 lookup 100 priority 32765",
    ]
    nft = p.nft()
    assert nft.startswith("table ip6 sheer {") and "table ip sheer" not in nft
    assert "ip6 saddr { fd00:16::11, fd00:16::12 } socket transparent 1 meta mark set 0x1 counter" in nft
    assert Rule(100, 32765, fwmark=1, family=6) in p.items
    assert all(from_json(to_json(i)) == i for i in p.items)


def test_dual_stack_gets_both_families_one_mark_one_table(tmp_path: Path) -> None:
    config = conf(tmp_path, stream("80", ("172.16.0.11", "172.16.0.12"), 80, "$remote_addr"),
                  stream("[::]:80", UPS6, 80, "$remote_addr"))
    p = plan(config, Options(), PROXY)
    assert not p.problems, p.problems
    assert (p.mark, p.table) == (1, 100)
    lines = p.commands()
    for line in ("ip route add local 0.0.0.0/0 dev lo table 100",
                 "ip rule add fwmark 1 lookup 100 priority 32765",
                 "ip -6 route add local ::/0 dev lo table 100",
                 "ip -6 rule add fwmark 1 lookup 100 priority 32765"):
        assert line in lines
    assert any(ln.startswith("iptables -t mangle") and "172.16.0.11" in ln for ln in lines)
    assert any(ln.startswith("ip6tables -t mangle") and "fd00:16::11" in ln for ln in lines)
    families = [i.family for i in p.items if isinstance(i, NftTable)]
    assert families == ["ip", "ip6"]


def test_mark_and_table_clear_of_ipv6_rules(tmp_path: Path) -> None:
    busy = KernelFacts(PROXY.addresses, PROXY.routes,
                       (*PROXY.rules, RuleFact(32765, 100, 1, family=6)))
    p = plan(conf(tmp_path, stream("[::]:80", UPS6, 80, "$remote_addr")), Options(), busy)
    assert (p.mark, p.table) == (2, 101)
    assert Rule(101, 32764, fwmark=2, family=6) in p.items


def test_family_mismatch_is_a_problem(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, stream("80", UPS6, 80, "$remote_addr")), Options(), PROXY)
    assert any("is IPv6 but listen 0.0.0.0:80 takes IPv4 clients" in pr for pr in p.problems), p.problems
    assert any("lb.conf:" in pr for pr in p.problems)


def test_ipv6_upstream_on_the_clients_subnet(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, stream("[fd00:99::10]:80", ("fd00:99::20",), 80, "$remote_addr")), Options(),
             PROXY)
    assert any("clients' subnet fd00:99::/64" in pr for pr in p.problems), p.problems
    local = plan(conf(tmp_path, stream("[::]:80", ("::1",), 80, "$remote_addr")), Options(), PROXY)
    assert any("on this host" in pr for pr in local.problems)


def test_dsr_router_over_ipv6(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, stream("[fd00:99::10]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True)),
             Options(fastpath=False), PROXY)
    assert not p.problems, p.problems
    assert Sysctl("net.ipv6.conf.all.forwarding", "1") in p.items
    assert Sysctl("net.ipv4.udp_early_demux", "0") in p.items
    assert Sysctl("net.ipv4.ip_forward", "1") not in p.items
    assert 'oifname "sheer-pub" ip6 saddr { fd00:16::11, fd00:16::12 } udp sport 53 ip6 saddr set ' \
           'fd00:99::10 ' \
           "counter" in p.nft()
    assert "table ip6 sheer" in p.nft() and not any(isinstance(i, Rule) for i in p.items)
    tc = plan(conf(tmp_path, stream("[fd00:99::10]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True)),
              Options(nat="tc", fastpath=False), KernelFacts(PROXY.addresses, PROXY.routes, act_nat=True))
    assert any("IPv4 only" in pr for pr in tc.problems)


def test_dsr_router_wildcard_vip_skips_link_local(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, stream("[::]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True)),
             Options(fastpath=False, public_if="sheer-pub"), PROXY)
    assert "ip6 saddr set fd00:99::10 counter" in p.nft(), p.nft()


def test_dual_stack_dsr_and_transparency(tmp_path: Path) -> None:
    config = conf(tmp_path,
                  stream("[fd00:99::10]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True),
                  stream("192.168.99.10:53", ("172.16.0.11",), 53, "$remote_addr:$remote_port", dsr=True),
                  stream("[::]:80", UPS6, 80, "$remote_addr"))
    p = plan(config, Options(fastpath=False, masquerade=True), PROXY)
    assert not p.problems, p.problems
    nft = p.nft()
    six = nft[nft.index("table ip6 sheer"):]
    returned = six.index("ip6 saddr { fd00:16::11, fd00:16::12 } udp sport 53 return")
    assert returned < six.index("socket transparent")
    assert "ip6 saddr { fd00:16::11, fd00:16::12 } masquerade" in six
    masquerade = "ip6tables -t nat -A POSTROUTING -o sheer-pub -s fd00:16::11,fd00:16::12 -j MASQUERADE"
    assert masquerade in p.commands()
    assert {Sysctl("net.ipv4.ip_forward", "1"), Sysctl("net.ipv6.conf.all.forwarding", "1")} <= set(p.items)


def test_fib_checks_are_reported(tmp_path: Path) -> None:
    facts = KernelFacts(PROXY.addresses, PROXY.routes, PROXY.rules, fib_checks=("inet filter prerouting",))
    p = plan(conf(tmp_path, stream("[fd00:99::10]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True)),
             Options(fastpath=False), facts)
    assert any("fib saddr" in n and "inet filter prerouting" in n for n in p.notes)


def test_upstream_role_ipv6_return_path(tmp_path: Path) -> None:
    config = conf(tmp_path, stream("[::]:80", UPS6, 80, "$remote_addr"))
    p = plan(config, Options(role="upstream", host="fd00:16::11"), UP1)
    assert not p.problems, p.problems
    assert p.commands() == [
        "ip -6 route add default via fd00:16::1 table 100",
        "ip -6 route add fd00:16::/64 dev sheer-int table 100",
        "ip -6 rule add from fd00:16::11 ipproto tcp sport 80 lookup 100 priority 32765",
    ]
    assert Route(100, "::/0", via="fd00:16::1") in p.items
    wrong = plan(config, Options(role="upstream", host="fd00:16::11", gateway="172.16.0.1"), UP1)
    assert any("different families" in pr for pr in wrong.problems)


def test_upstream_role_ipv6_origin_nat(tmp_path: Path) -> None:
    config = conf(tmp_path, stream("[fd00:99::10]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True))
    p = plan(config, Options(role="upstream", host="fd00:16::11", dsr="origin", via="fd00:16::254"), UP1)
    assert not p.problems, p.problems
    assert ("ip6 saddr fd00:16::11 ip6 daddr != fd00:16::/64 udp sport 53 ip6 saddr set fd00:99::10 counter"
            in p.nft())
    assert "table ip6 sheer" in p.nft()
    assert "ip -6 route add default via fd00:16::254 table 100" in p.commands()
    assert not any(isinstance(i, Sysctl) for i in p.items)        # no rp_filter in IPv6
    v4vip = plan(config, Options(role="upstream", host="fd00:16::11", dsr="origin", vip="192.168.99.10"), UP1)
    assert any("different families" in pr for pr in v4vip.problems)


def test_ipv6_sysctl_paths() -> None:
    assert Sysctl("net.ipv6.conf.all.forwarding", "1").path == "/proc/sys/net/ipv6/conf/all/forwarding"
    vlan = Sysctl("net.ipv6.conf.eth0.100.forwarding", "1")
    assert vlan.path == "/proc/sys/net/ipv6/conf/eth0.100/forwarding"


def test_fast_path_steers_ipv6(tmp_path: Path) -> None:
    config = conf(tmp_path, stream("[fd00:99::10]:53", UPS6, 53, "$remote_addr:$remote_port", dsr=True))
    p = plan(config, Options(), PROXY)
    assert not p.problems, p.problems
    nft = p.nft()
    assert "table netdev sheer" in nft
    assert ("ip6 daddr fd00:99::10 udp dport 53 ip6 nexthdr udp ip6 length <= 1460 ip6 daddr set numgen inc "
            "mod 2 map @dsr_fd00_99__10_53") in nft
    assert Sysctl("net.ipv6.conf.all.forwarding", "1") in p.items
    origin = plan(config, Options(dsr="origin", masquerade=True), KernelFacts(PROXY.addresses, PROXY.routes,
                                                                              PROXY.rules, conntrack=True))
    assert Sysctl("net.ipv6.conf.all.forwarding", "1") in origin.items
    assert 'iifname "sheer-pub" ip6 daddr { fd00:16::11, fd00:16::12 } udp dport 53 notrack' in origin.nft()
