"""The article's methods over IPv6 on the dual-stack lab (`sheer lab up --ipv6`), with the witnesses:
the upstreams' nginx and dnsmasq logs (the client's IPv6 address), dig on the client (answers from the
IPv6 VIP: dig rejects a reply from any other source), the proxy's kernel counters (/proc/net/snmp6),
and the kernel state before and after (`ip -6 rule`, routes, nft, sysctls)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sheer.lab import configs, dualstack
from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab

CLIENT6 = "fd00:99::1"
VIP6 = "fd00:99::10"
UPSTREAM_A = ["172.16.0.11", "172.16.0.12", "172.16.0.13", "172.16.0.14"]
SYSCTLS = ("net.ipv6.conf.all.forwarding", "net.ipv4.ip_forward", "net.ipv4.udp_early_demux")


def net(lab: Lab, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run(node, sys.executable, "-m", "sheer", "net", *args, timeout=30)


def snapshot(lab: Lab, node: str) -> dict[str, object]:
    def j(*cmd: str) -> object:
        return json.loads(lab.run(node, *cmd, check=True).stdout or "null")
    return {"rules6": j("ip", "-6", "-j", "rule"), "rules": j("ip", "-j", "rule"),
            "routes6": j("ip", "-6", "-j", "route", "show", "table", "all"),
            "nft": j("nft", "-j", "list", "ruleset"),
            "sysctls": lab.run(node, "sysctl", *SYSCTLS, check=True).stdout}


def write(tmp_path: Path, text: str, name: str = "lb.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def dig6(lab: Lab, qtype: str = "A") -> str:
    return lab.run("client", "dig", "+time=2", "+tries=1", f"@{VIP6}", "www.example.com", qtype).stdout


def answer(output: str) -> str:
    match = re.search(r"^www\.example\.com\.\s+\d+\s+IN\s+A\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_transparency_over_ipv6_upstreams_see_the_client(lab6: Lab, tmp_path: Path) -> None:
    lab = lab6
    conf = write(tmp_path, configs.TRANSPARENT6)
    before = snapshot(lab, "proxy")
    applied = net(lab, "proxy", "apply", "-c", conf)
    assert applied.returncode == 0, applied.stderr
    try:
        assert "applied  ip -6 rule add fwmark 1 lookup 100 priority 32765" in applied.stdout
        assert "applied  nft table ip6 sheer" in applied.stdout
        status = net(lab, "proxy", "status", "-c", conf)
        assert status.returncode == 0, status.stdout
        with lab.proxy(configs.TRANSPARENT6) as proxy:
            mark = lab.mark()
            bodies = [lab.run("client", "curl", "-s", "-m", "3", f"http://[{VIP6}]/").stdout
                      for _ in range(4)]
            assert [b.split(".")[0] for b in bodies] == ["Hello from up1", "Hello from up2",
                                                         "Hello from up3", "Hello from up4"], proxy.log()
            assert all(f"You connected from {CLIENT6}:" in b for b in bodies), bodies
            answers = [answer(dig6(lab)) for _ in range(4)]
            assert sorted(answers) == UPSTREAM_A
            seen = lab.seen(mark)
            assert {s.protocol for s in seen} == {"http", "dns"}
            assert {s.src for s in seen} == {CLIENT6}, seen
    finally:
        reverted = net(lab, "proxy", "revert", "-c", conf)
    assert reverted.returncode == 0, reverted.stderr
    assert snapshot(lab, "proxy") == before


def test_removed_ipv6_rule_is_drift(lab6: Lab, tmp_path: Path) -> None:
    lab = lab6
    conf = write(tmp_path, configs.TRANSPARENT6)
    assert net(lab, "proxy", "apply", "-c", conf).returncode == 0
    try:
        lab.run("proxy", "ip", "-6", "rule", "del", "fwmark", "1", "lookup", "100", check=True)
        status = net(lab, "proxy", "status", "-c", conf)
        assert status.returncode == 1
        assert "DRIFT ip -6 rule add fwmark 1 lookup 100 priority 32765" in status.stdout
    finally:
        net(lab, "proxy", "revert", "-c", conf)


@pytest.mark.parametrize("fastpath", ["off", "on"])
def test_dsr_router_over_ipv6_answers_come_from_the_vip(lab6: Lab, tmp_path: Path, fastpath: str) -> None:
    lab = lab6
    conf = write(tmp_path, configs.DSR6)
    before = snapshot(lab, "proxy")
    applied = net(lab, "proxy", "apply", "-c", conf, "--dsr", "router", "--fastpath", fastpath)
    assert applied.returncode == 0, applied.stderr
    # veth trusts checksums it did not compute: make the receivers verify ours and the rewrites'
    # (the client's too: its datagrams then carry a full checksum the rewrite must keep right, and the
    # upstreams verify it)
    offload = (("client", "sheer-pub"), ("proxy", "sheer-int"), ("proxy", "sheer-pub"), ("up1", "sheer-int"))
    try:
        assert "net.ipv6.conf.all.forwarding=1" in applied.stdout
        assert ("nft table netdev sheer" in applied.stdout) == (fastpath == "on")
        for node, dev in offload:
            lab.run(node, "ethtool", "-K", dev, "tx", "off", check=True)
        with lab.proxy(configs.DSR6) as proxy:
            mark = lab.mark()
            proxy_before, client_before = lab.counters("proxy"), lab.counters("client")
            ups_before = [lab.counters(n.name)["Udp6InCsumErrors"] for n in lab.topo.upstreams]
            outputs = [dig6(lab) for _ in range(8)]
            proxy_after, client_after = lab.counters("proxy"), lab.counters("client")
            ups_after = [lab.counters(n.name)["Udp6InCsumErrors"] for n in lab.topo.upstreams]
            answers = [answer(out) for out in outputs]
            log = proxy.log()
    finally:
        for node, dev in offload:
            lab.run(node, "ethtool", "-K", dev, "tx", "on")
        reverted = net(lab, "proxy", "revert", "-c", conf)
    # round robin: user space takes the upstreams in turn; the kernel's `numgen inc` counter starts
    # again whenever the running sheer rewrites the rule (it feeds the table when it starts)
    if fastpath == "off":
        assert sorted(answers) == sorted(UPSTREAM_A * 2), (answers, log)
    else:
        assert set(answers) == set(UPSTREAM_A), (answers, log)
    assert all(f"SERVER: {VIP6}#53" in out for out in outputs)
    assert {s.src for s in lab.seen(mark) if s.protocol == "dns"} == {CLIENT6}
    received = proxy_after["Udp6InDatagrams"] - proxy_before["Udp6InDatagrams"]
    # user space: sheer received the 8 queries; the fast path: the kernel steered them past it.
    # Either way the 8 replies were forwarded, never received or sent by a socket of the proxy
    assert received == (8 if fastpath == "off" else 0)
    assert proxy_after["Udp6OutDatagrams"] == proxy_before["Udp6OutDatagrams"]
    assert proxy_after["Ip6OutForwDatagrams"] - proxy_before["Ip6OutForwDatagrams"] >= 8
    assert client_after["Udp6InCsumErrors"] == client_before["Udp6InCsumErrors"]
    assert ups_after == ups_before
    assert reverted.returncode == 0, reverted.stderr
    assert snapshot(lab, "proxy") == before


def doctor(lab: Lab, conf: str) -> subprocess.CompletedProcess[str]:
    return lab.run("proxy", sys.executable, "-m", "sheer", "doctor", "-c", conf, timeout=60)


HAND_MADE = """table inet sheer_handmade {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        ip6 saddr fd00:16::/64 tcp sport 80 meta mark set 0x1 counter
        ip6 saddr fd00:16::/64 udp sport 53 meta mark set 0x1 counter
    }
}
"""


def test_doctor_on_a_hand_made_ipv6_setup(lab6: Lab, tmp_path: Path) -> None:
    """What an article reader types by hand for IPv6 (nft, `ip -6 rule`, `ip -6 route`): doctor finds
    nothing wrong, then names the `ip -6 rule` once it is gone, with the exact line that puts it back."""
    lab = lab6
    conf = write(tmp_path, configs.TRANSPARENT6)
    before = snapshot(lab, "proxy")
    subprocess.run(["ip", "netns", "exec", lab.node("proxy").netns, "nft", "-f", "-"], input=HAND_MADE,
                   text=True, check=True)
    try:
        lab.run("proxy", "ip", "-6", "rule", "add", "fwmark", "1", "lookup", "100", "priority", "32765",
                check=True)
        lab.run("proxy", "ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100", check=True)
        working = doctor(lab, conf)
        assert working.returncode == 0, working.stdout + working.stderr
        assert "sheer doctor: 0 problem(s)" in working.stdout
        assert "ok       policy routing: fwmark 0x1 -> table 100 (local ::/0 dev lo)" in working.stdout
        assert "transparent probe 2001:db8::c1 -> fd00:16::11:80: connected" in working.stdout
        lab.run("proxy", "ip", "-6", "rule", "del", "fwmark", "1", "lookup", "100", check=True)
        broken = doctor(lab, conf)
        assert broken.returncode == 1
        assert ("problem  policy routing: fwmark 0x1 is set but no `ip -6 rule` sends it to a table"
                in broken.stdout), broken.stdout
        assert "fix: ip -6 rule add fwmark 1 lookup 100 priority 32765" in broken.stdout
    finally:
        lab.run("proxy", "ip", "-6", "rule", "del", "fwmark", "1", "lookup", "100")
        lab.run("proxy", "ip", "-6", "route", "del", "local", "::/0", "dev", "lo", "table", "100")
        lab.run("proxy", "nft", "delete", "table", "inet", "sheer_handmade")
    assert snapshot(lab, "proxy") == before


def test_dual_stack_config_gets_both_families(lab6: Lab, tmp_path: Path) -> None:
    lab = lab6
    conf = write(tmp_path, configs.DUAL_TRANSPARENT)
    before = snapshot(lab, "proxy")
    applied = net(lab, "proxy", "apply", "-c", conf)
    assert applied.returncode == 0, applied.stderr
    try:
        for line in ("ip rule add fwmark 1 lookup 100", "ip -6 rule add fwmark 1 lookup 100",
                     "nft table ip sheer", "nft table ip6 sheer"):
            assert f"applied  {line}" in applied.stdout, applied.stdout
        with lab.proxy(configs.DUAL_TRANSPARENT):
            mark = lab.mark()
            for url in ("http://192.168.99.10/", f"http://[{VIP6}]/"):
                body = lab.run("client", "curl", "-s", "-m", "3", url).stdout
                assert "You connected from " in body, (url, body)
            seen = {s.src for s in lab.seen(mark) if s.protocol == "http"}
            assert seen == {"192.168.99.1", CLIENT6}
    finally:
        reverted = net(lab, "proxy", "revert", "-c", conf)
    assert reverted.returncode == 0
    assert snapshot(lab, "proxy") == before


def test_reference_nginx_ipv6_dsr_needs_brackets(lab6: Lab, tmp_path: Path) -> None:
    """Debian's nginx 1.22 over IPv6, on sheer's plumbing: the article's `proxy_bind
    $remote_addr:$remote_port transparent` renders as "fd00:99::1:40000", which nginx parses as one
    IPv6 address without a port (or, with a port of 5 digits, as nothing), so its datagrams leave
    from a wrong address and no answer reaches the client; `[$remote_addr]:$remote_port` works."""
    lab = lab6
    conf = write(tmp_path, configs.DSR6)
    bracketed = configs.DSR6.replace("proxy_bind $remote_addr:$remote_port",
                                     "proxy_bind [$remote_addr]:$remote_port")
    assert net(lab, "proxy", "apply", "-c", conf, "--dsr", "router", "--fastpath", "off").returncode == 0
    try:
        with lab.proxy(configs.DSR6, "nginx"):
            mark = lab.mark()
            outputs = [dig6(lab) for _ in range(2)]
            seen = {s.src for s in lab.seen(mark) if s.protocol == "dns"}
        with lab.proxy(bracketed, "nginx"):
            mark = lab.mark()
            answers = [answer(dig6(lab)) for _ in range(4)]
            fixed = {s.src for s in lab.seen(mark) if s.protocol == "dns"}
    finally:
        net(lab, "proxy", "revert", "-c", conf)
    assert all("timed out" in out for out in outputs), outputs
    assert seen and CLIENT6 not in seen, seen          # the proxy's own address, or fd00:99::1:<port>
    assert sorted(answers) == UPSTREAM_A and fixed == {CLIENT6}


ASK6 = r"""
import json, select, socket, sys, time
pairs, target = json.loads(sys.argv[1]), sys.argv[2]
query = bytes.fromhex("abcd01000001000000000000") + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
out = {}
for start in range(0, len(pairs), 100):
    waiting = {}
    for addr, sport in pairs[start:start + 100]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((addr, sport))
        s.setblocking(False)
        s.sendto(query, (target, 53))
        waiting[s] = f"[{addr}]:{sport}"
    deadline = time.monotonic() + 3
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], 0.2)
        for s in ready:
            data = s.recv(512)
            out[waiting.pop(s)] = socket.inet_ntoa(data[-4:]) if len(data) > 16 else ""
            s.close()
    for s in waiting:
        s.close()
print(json.dumps(out))
"""
CLIENTS6 = ("fd00:99::1", "fd00:99::2", "fd00:99::3", "fd00:99::4")


def test_fast_path_steers_ipv6_like_user_space_maglev(lab6: Lab, tmp_path: Path) -> None:
    """`hash $remote_addr$remote_port maglev` over IPv6: for 400 client ip:port pairs the kernel's
    `jhash ip6 saddr . udp sport` picks what sheer's user-space balancer picks (a 20-byte key: the
    kernel's registers hold the address and the port padded to 4 bytes), with every checksum verified
    by its receiver."""
    from fastpath_kit import checksums_in_software, config, model, wait_log

    lab = lab6
    text = config().replace("listen 53 udp;", "listen [::]:53 udp;")
    for n in range(1, 5):
        text = text.replace(f"server 172.16.0.1{n}:53;", f"server [fd00:16::1{n}]:53;")
    flows = [(addr, 20000 + i * 37) for addr in CLIENTS6 for i in range(100)]
    expected = {f"[{a}]:{p}": "172.16.0." + host.rsplit(":", 1)[1]
                for (a, p), host in zip(flows, model(text, tmp_path, flows).values())}
    added = [a for a in CLIENTS6[1:] if lab.run("client", "ip", "-6", "addr", "add", f"{a}/64", "dev",
                                                "sheer-pub", "nodad").returncode == 0]
    try:
        with checksums_in_software(lab), lab.applied("dsr-router", text), lab.proxy(text) as running:
            wait_log(running, "65537 of 65537 filled")
            before = lab.counters("proxy")["Udp6InDatagrams"]
            res = lab.run("client", "python3", "-c", ASK6, json.dumps(flows), VIP6, timeout=60)
            after = lab.counters("proxy")["Udp6InDatagrams"]
    finally:
        for a in added:
            lab.run("client", "ip", "-6", "addr", "del", f"{a}/64", "dev", "sheer-pub")
    assert res.returncode == 0, res.stderr
    kernel = json.loads(res.stdout)
    assert len(kernel) == 400 and all(kernel.values()), [k for k, v in kernel.items() if not v][:10]
    wrong = {k: (v, expected[k]) for k, v in kernel.items() if v != expected[k]}
    assert not wrong, list(wrong.items())[:10]
    assert after - before < 50          # health check replies only: the queries never reached a socket


def test_dsr_origin_over_ipv6_replies_go_through_the_return_router(lab6: Lab, tmp_path: Path) -> None:
    """Origin NAT over IPv6: each upstream rewrites its own replies to the VIP's IPv6 address
    (`table ip6 sheer`, output) and routes them by policy (`ip -6 rule ... sport 53`) to the return
    router, whose filter forwards only UDP from the VIP; the proxy forwards none of them."""
    lab = lab6
    conf = write(tmp_path, configs.DSR6)
    ups = lab.topo.upstreams
    before = {n.name: snapshot(lab, n.name) for n in ups}
    role = ("--dsr", "origin", "--vip", VIP6, "--via", "fd00:16::254")
    assert net(lab, "proxy", "apply", "-c", conf, "--dsr", "origin", "--fastpath", "off").returncode == 0
    try:
        for n in ups:
            host = str(dualstack.address6(n))
            applied = net(lab, n.name, "apply", "-c", conf, "--role", "upstream", "--host", host, *role)
            assert applied.returncode == 0, applied.stderr
            assert f"applied  ip -6 rule add from {host} ipproto udp sport 53 lookup 100" in applied.stdout
        with lab.proxy(configs.DSR6):
            proxy_before, rr_before = lab.counters("proxy"), lab.counters("rr")
            outputs = [dig6(lab) for _ in range(4)]
            proxy_after, rr_after = lab.counters("proxy"), lab.counters("rr")
    finally:
        for n in ups:
            net(lab, n.name, "revert", "-c", conf, "--role", "upstream", "--host", str(dualstack.address6(n)))
        net(lab, "proxy", "revert", "-c", conf)
    assert sorted(answer(out) for out in outputs) == UPSTREAM_A
    assert all(f"SERVER: {VIP6}#53" in out for out in outputs)
    assert proxy_after["Ip6OutForwDatagrams"] == proxy_before["Ip6OutForwDatagrams"]
    assert rr_after["Ip6OutForwDatagrams"] - rr_before["Ip6OutForwDatagrams"] >= 4
    assert {n.name: snapshot(lab, n.name) for n in ups} == before


def test_demo_steps_over_ipv6_pass_with_sheer(lab6: Lab) -> None:
    from sheer.lab import demo

    outcomes = {step.name: demo.run_step(step, "sheer", lab6.state_dir) for step in demo.STEPS6}
    assert {name: o.verdict for name, o in outcomes.items()} == {"transparency-ipv6": "ok",
                                                                   "dsr-router-ipv6": "ok"}, outcomes
    assert any("saw: http from fd00:99::1:" in line for line in outcomes["transparency-ipv6"].lines)


DROP_PTB = """table ip6 sheer_icmp6drop {
    chain input {
        type filter hook input priority filter; policy accept;
        icmpv6 type packet-too-big counter drop
    }
}
"""


def test_doctor_names_a_rule_dropping_packet_too_big(lab6: Lab, tmp_path: Path) -> None:
    """A host firewall rule in the proxy's namespace that drops ICMPv6 packet-too-big: doctor names the
    rule and the fix; the fix, run as printed, makes the finding ok again."""
    lab = lab6
    conf = write(tmp_path, configs.TRANSPARENT6)
    assert net(lab, "proxy", "apply", "-c", conf).returncode == 0
    netns = lab.node("proxy").netns
    try:
        clean = doctor(lab, conf)
        assert ("ok       ICMPv6: this host's nft ruleset let ICMPv6 packet-too-big and neighbour discovery "
                "through") in clean.stdout, clean.stdout
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=DROP_PTB, text=True,
                       check=True)
        handle = json.loads(lab.run("proxy", "nft", "-j", "-a", "list", "chain", "ip6", "sheer_icmp6drop",
                                    "input", check=True).stdout)["nftables"][-1]["rule"]["handle"]
        found = json.loads(lab.run("proxy", sys.executable, "-m", "sheer", "doctor", "-c", conf, "--json",
                                   timeout=60).stdout)
        assert found["ok"] is False
        [bad] = [f for f in found["findings"] if f["check"] == "ICMPv6"]
        assert bad["status"] == "problem"
        assert bad["summary"].startswith(f"ip6 sheer_icmp6drop input #{handle} drops ICMPv6 packet-too-big "
                                         "(input): IPv6 routers never fragment"), bad
        fix = (f"nft insert rule ip6 sheer_icmp6drop input position {handle} "
               "icmpv6 type { packet-too-big } accept")
        assert bad["fix"][0] == fix
        lab.run("proxy", *fix.split(), check=True)
        fixed = doctor(lab, conf)
        assert "ok       ICMPv6: this host's nft ruleset let ICMPv6" in fixed.stdout, fixed.stdout
    finally:
        lab.run("proxy", "nft", "delete", "table", "ip6", "sheer_icmp6drop")
        net(lab, "proxy", "revert", "-c", conf)
    assert lab.run("proxy", "nft", "list", "table", "ip6", "sheer_icmp6drop").returncode != 0


def test_doctor_says_an_upstream_does_not_answer_neighbour_solicitation(lab6: Lab, tmp_path: Path) -> None:
    """up1 stops answering neighbour solicitations: the proxy's neighbour table marks fd00:16::11
    FAILED, and doctor says so where it would say an IPv4 upstream does not answer ARP."""
    lab = lab6
    conf = write(tmp_path, configs.TRANSPARENT6)
    mute = """table ip6 sheer_mute_nd {
    chain input {
        type filter hook input priority filter; policy accept;
        icmpv6 type nd-neighbor-solicit drop
    }
}
"""
    up1 = lab.node("up1").netns
    subprocess.run(["ip", "netns", "exec", up1, "nft", "-f", "-"], input=mute, text=True, check=True)
    try:
        lab.run("proxy", "ip", "-6", "neigh", "flush", "dev", "sheer-int")
        found = doctor(lab, conf)
        assert ("upstream fd00:16::11 icmp: no echo reply within 1s; neighbour table: FAILED (no answer to "
                "neighbour solicitation)") in found.stdout or \
               ("upstream fd00:16::11 icmp: no echo reply within 1s; neighbour table: INCOMPLETE (no answer "
                "to neighbour solicitation)") in found.stdout, found.stdout
    finally:
        lab.run("up1", "nft", "delete", "table", "ip6", "sheer_mute_nd")
        lab.run("proxy", "ip", "-6", "neigh", "flush", "dev", "sheer-int")
    assert lab.run("up1", "nft", "list", "table", "ip6", "sheer_mute_nd").returncode != 0


MUTE_RR = """table ip6 sheer_rr_nd {
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "sheer-int" icmpv6 type { nd-neighbor-solicit, packet-too-big } counter drop
    }
}
"""


def test_doctor_on_an_ipv6_upstream_reads_the_return_routers_icmpv6_rules(lab6: Lab, tmp_path: Path) -> None:
    """An IPv6 upstream with origin NAT: the route back to 2001:db8::c1 via the return router, its IPv6
    forwarding, and its nft ruleset (a network namespace here): a rule there dropping neighbour
    solicitation from the upstreams' side is named with the command that fixes it in that namespace."""
    lab = lab6
    conf = write(tmp_path, configs.DSR6)
    role = ["--role", "upstream", "--host", "fd00:16::11", "--dsr", "origin", "--vip", VIP6,
            "--via", "fd00:16::254"]
    assert net(lab, "up1", "apply", "-c", conf, *role).returncode == 0
    rr = lab.node("rr").netns
    try:
        clean = lab.run("up1", sys.executable, "-m", "sheer", "doctor", "-c", conf, *role, timeout=60)
        assert clean.returncode == 0, clean.stdout
        assert ("ok       route back to clients: replies from fd00:16::11 udp sport 53 to 2001:db8::c1 go "
                "via fd00:16::254") in clean.stdout
        assert "forwards IPv6 (net.ipv6.conf.all.forwarding = 1)" in clean.stdout
        assert f"ok       ICMPv6: this host's nft ruleset and {rr}'s let ICMPv6" in clean.stdout, clean.stdout
        subprocess.run(["ip", "netns", "exec", rr, "nft", "-f", "-"], input=MUTE_RR, text=True, check=True)
        handle = json.loads(lab.run("rr", "nft", "-j", "-a", "list", "chain", "ip6", "sheer_rr_nd", "input",
                                    check=True).stdout)["nftables"][-1]["rule"]["handle"]
        broken = lab.run("up1", sys.executable, "-m", "sheer", "doctor", "-c", conf, *role, "--json",
                         timeout=60)
        [bad] = [f for f in json.loads(broken.stdout)["findings"] if f["check"] == "ICMPv6"]
        assert bad["status"] == "problem"
        assert bad["summary"].startswith(f"{rr}: ip6 sheer_rr_nd input #{handle} drops ICMPv6 "
                                         "packet-too-big, nd-neighbor-solicit (input)"), bad
        assert bad["fix"][0] == (f"ip netns exec {rr} nft insert rule ip6 sheer_rr_nd input position "
                                 f"{handle} icmpv6 type {{ packet-too-big, nd-neighbor-solicit }} accept")
    finally:
        lab.run("rr", "nft", "delete", "table", "ip6", "sheer_rr_nd")
        net(lab, "up1", "revert", "-c", conf, "--role", "upstream", "--host", "fd00:16::11")
    assert lab.run("rr", "nft", "list", "table", "ip6", "sheer_rr_nd").returncode != 0
