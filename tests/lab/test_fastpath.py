"""The DSR fast path in the lab: the kernel steers client datagrams to the upstreams, sheer feeds its
table. Independent witnesses: the proxy's own UDP receive counter (/proc/net/snmp: the datagrams
never reach a socket there), the answers of the upstreams' dnsmasq (each answers with its own
address), the receivers' checksum error counters with checksum offload off, `nft` in the proxy's
namespace, and sheer's user-space balancer run as a model."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from fastpath_kit import (
    CLIENTS,
    ask,
    checksums_in_software,
    client_addresses,
    config,
    metric,
    metrics,
    model,
    pairs,
    udp_in,
    wait_log,
)

from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab

MAGLEV = config()
FEEDING = "DSR 0.0.0.0:53 udp: kernel fast path"


def nft(lab: Lab, *args: str) -> str:
    return lab.run("proxy", "nft", *args, check=True).stdout


def test_router_nat_kernel_steers_like_user_space_for_1000_pairs(lab: Lab, tmp_path: Path) -> None:
    flows = pairs(1000)
    expected = model(MAGLEV, tmp_path, flows)
    with client_addresses(lab), checksums_in_software(lab):
        with lab.applied("dsr-router", MAGLEV), lab.proxy(MAGLEV) as running:
            wait_log(running, "65537 of 65537 filled")
            proxy_before = udp_in(lab, "proxy")
            receivers = ("client", "up1", "up2", "up3", "up4")
            errors_before = {n: lab.counters(n)["Udp.InCsumErrors"] for n in receivers}
            kernel = ask(lab, flows)
            proxy_after = udp_in(lab, "proxy")
            errors_after = {n: lab.counters(n)["Udp.InCsumErrors"] for n in errors_before}
            wait_log(running, "fast path")
            time.sleep(1.5)                      # one counter tick of the feeder
            text = metrics(lab)
            log = running.log()
        # the same flows through sheer's user-space path (the fast path left out of the plumbing)
        with lab.applied("dsr-router", MAGLEV, "--fastpath", "off"), lab.proxy(MAGLEV) as running:
            wait_log(running, "DSR 0.0.0.0:53 udp: user-space path")
            user_before = udp_in(lab, "proxy")
            user = ask(lab, flows)
            user_after = udp_in(lab, "proxy")
    assert FEEDING in log, log
    assert len(kernel) == 1000 and all(kernel.values()), [k for k, v in kernel.items() if not v][:10]
    wrong = {k: (v, expected[k]) for k, v in kernel.items() if v != expected[k]}
    assert not wrong, list(wrong.items())[:10]
    assert user == kernel
    # the kernel path: the proxy's sockets received (almost) nothing: health check replies only
    assert proxy_after - proxy_before < 50, (proxy_before, proxy_after)
    assert user_after - user_before >= 1000          # the user-space path received every query
    assert errors_after == errors_before             # every checksum verified by its receiver was right
    assert metric(text, "sheer_stream_upstream_server_kernel_datagrams_total") >= 1000, text
    assert metric(text, "sheer_dsr_kernel_path") == 1


def test_origin_nat_and_port_rewrite(lab: Lab) -> None:
    # public port 5353, upstreams on 53: the kernel rewrites the port too; origin NAT: the upstreams
    # answer through the return router, the proxy sees neither the queries nor the replies
    text = config(method="", listen="5353")
    flows = [("192.168.99.1", 30000 + i) for i in range(100)]
    with lab.applied("dsr-origin", text), lab.proxy(text) as running:
        wait_log(running, "DSR 0.0.0.0:5353 udp: kernel fast path")
        table = nft(lab, "list", "table", "netdev", "sheer")
        proxy_before = lab.counters("proxy")
        answers = ask(lab, flows, port=5353)
        proxy_after = lab.counters("proxy")
    assert "udp dport set 53" in table and "numgen inc mod 4" in table, table
    assert len(answers) == 100 and set(answers.values()) == {f"172.16.0.1{n}" for n in range(1, 5)}, answers
    assert proxy_after["Udp.InDatagrams"] - proxy_before["Udp.InDatagrams"] < 20
    assert proxy_after["Ip.ForwDatagrams"] - proxy_before["Ip.ForwDatagrams"] >= 100   # queries forwarded...
    assert proxy_after["Ip.ForwDatagrams"] - proxy_before["Ip.ForwDatagrams"] < 150    # ...replies not


def ingress_chains(lab: Lab) -> set[str]:
    found = json.loads(nft(lab, "-j", "list", "chains"))["nftables"]
    return {f"{c['family']} {c['table']} {c['name']}" for o in found
            if (c := o.get("chain")) and c.get("hook") == "ingress"}


def test_other_hook_users_left_alone_and_revert_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    other = ('table netdev sheer_other {\n chain watch {\n  type filter hook ingress device "sheer-pub" '
             "priority -5; policy accept;\n  udp dport 53 counter\n }\n}\n")
    path = tmp_path / "other.nft"
    path.write_text(other)
    lab.run("proxy", "nft", "-f", str(path), check=True)
    try:
        conf = tmp_path / "lb.conf"
        conf.write_text(MAGLEV)
        plan = lab.run("proxy", sys.executable, "-m", "sheer", "net", "plan", "-c", str(conf), "--dsr",
                       "router", "--json", timeout=30)
        notes = json.loads(plan.stdout)["notes"]
        with lab.applied("dsr-router", MAGLEV):
            answers = ask(lab, [(CLIENTS[0], 40000 + i) for i in range(20)])
            watched = nft(lab, "list", "chain", "netdev", "sheer_other", "watch")
            during = ingress_chains(lab)
        after = ingress_chains(lab)
        sets = nft(lab, "-j", "list", "sets")
        counters = nft(lab, "-j", "list", "counters")
        still = nft(lab, "list", "chain", "netdev", "sheer_other", "watch")
    finally:
        lab.run("proxy", "nft", "delete", "table", "netdev", "sheer_other")
    assert any("nft netdev sheer_other watch (priority -5): left alone" in n for n in notes), notes
    assert during == {"netdev sheer_other watch", "netdev sheer ingress"}
    assert len(answers) == 20 and all(answers.values())
    assert "packets 20 " in watched, watched          # it still sees every datagram, before the rewrite
    # revert: no hook, table, map or counter of sheer's is left; the other user's chain is untouched
    assert after == {"netdev sheer_other watch"}
    assert '"table": "sheer"' not in sets and '"table": "sheer"' not in counters
    assert "packets 20 " in still


def test_fragments_and_ip_options_reach_user_space(lab: Lab) -> None:
    with lab.applied("dsr-router", MAGLEV), lab.proxy(MAGLEV) as running:
        wait_log(running, "65537 of 65537 filled")
        before = udp_in(lab, "proxy")
        steered = nft(lab, "list", "counters", "table", "netdev", "sheer")
        code = r"""
import socket
query = bytes.fromhex("abcd01000001000000000000") + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x01\x01\x01\x00")   # NOP NOP NOP EOL
s.settimeout(2)
s.sendto(query, ("192.168.99.10", 53))
print(socket.inet_ntoa(s.recv(512)[-4:]))
big = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
big.sendto(query + b"\0" * 3000, ("192.168.99.10", 53))                  # fragmented on the way
"""
        res = lab.run("client", "python3", "-c", code)
        time.sleep(0.3)
        after = udp_in(lab, "proxy")
        steered_after = nft(lab, "list", "counters", "table", "netdev", "sheer")
        log = running.log()
    assert res.returncode == 0 and res.stdout.strip().startswith("172.16.0.1"), res
    assert after - before >= 2, (before, after)        # both reached sheer's listener
    assert steered == steered_after                    # and neither was counted by the kernel path
    assert "exceeds the MTU" in log, log               # the big one: user space says why it cannot send it


def test_api_down_reaches_the_kernel_and_status_shows_it(lab: Lab, tmp_path: Path) -> None:
    flows = [(CLIENTS[0], 45000 + i * 7) for i in range(200)]
    url = "http://127.0.0.1:8091/api/9/stream/upstreams/dns_upstreams/servers/1"
    conf = tmp_path / "lb.conf"
    conf.write_text(MAGLEV)
    with lab.applied("dsr-router", MAGLEV), lab.proxy(MAGLEV) as running:
        wait_log(running, "65537 of 65537 filled")
        lab.run("proxy", "curl", "-s", "-X", "PATCH", "-d", '{"down": true}', url, check=True)
        deadline = time.monotonic() + 10
        while running.log().count("entries written") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        down = ask(lab, flows)
        lab.run("proxy", "curl", "-s", "-X", "PATCH", "-d", '{"down": false}', url, check=True)
        time.sleep(1.5)
        back = ask(lab, flows)
        status = lab.run("proxy", sys.executable, "-m", "sheer", "net", "status", "-c", str(conf), "--dsr",
                         "router", timeout=30)
    assert len(down) == 200 and "172.16.0.12" not in down.values()
    assert down == model(MAGLEV, tmp_path, flows, down=("172.16.0.12",))
    assert back == model(MAGLEV, tmp_path, flows) and "172.16.0.12" in back.values()
    assert status.returncode == 0, status.stdout + status.stderr
    assert "fast path 192.168.99.10:53 udp -> upstream dns_upstreams (maglev" in status.stdout
    assert "65537 of 65537 slots filled" in status.stdout
    assert "fed by sheer's health checker" in status.stdout
    steered = [int(line.split(": ")[1].split()[0]) for line in status.stdout.splitlines()
               if "steered by the kernel" in line]
    assert len(steered) == 4 and sum(steered) >= 400, status.stdout


def test_the_feeder_keeps_cap_net_admin_after_dropping_to_nobody(lab: Lab) -> None:
    config = MAGLEV.replace("user root;", "user nobody nogroup;")
    with lab.applied("dsr-router", config), lab.proxy(config) as running:
        wait_log(running, "65537 of 65537 filled")           # written as nobody, through libnftables
        children = lab.run("proxy", "ps", "-o", "pid=,user=,args=", "--ppid", str(running.pid)).stdout
        caps = {}
        for line in children.splitlines():
            pid, user, title = line.split(None, 2)
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"^CapEff:\s+(\S+)", status, re.MULTILINE)
            assert found is not None
            caps[title.strip()] = (user, int(found.group(1), 16))
        answers = ask(lab, [(CLIENTS[0], 47000 + i) for i in range(10)])
    # CAP_NET_ADMIN (12) and CAP_NET_RAW (13)
    assert caps["sheer: health checker"] == ("nobody", (1 << 12) | (1 << 13)), caps
    assert caps["sheer: worker process"] == ("nobody", 1 << 13), caps                  # CAP_NET_RAW only
    assert len(answers) == 10 and all(answers.values())


def test_maglev_by_address_only(lab: Lab, tmp_path: Path) -> None:
    # `hash $remote_addr maglev`: nft hashes the 4 address bytes alone; every port of a client goes alike
    text = config(method="hash $remote_addr maglev;")
    flows = [(addr, 33000 + i) for addr in CLIENTS for i in range(10)]
    with client_addresses(lab), lab.applied("dsr-router", text), lab.proxy(text) as running:
        wait_log(running, "65537 of 65537 filled")
        table = nft(lab, "list", "chain", "netdev", "sheer", "ingress")
        answers = ask(lab, flows)
    assert "jhash ip saddr mod 65537 seed 0x73686565" in table, table
    assert answers == model(text, tmp_path, flows)
    assert all(len({answers[f"{a}:{33000 + i}"] for i in range(10)}) == 1 for a in CLIENTS)
