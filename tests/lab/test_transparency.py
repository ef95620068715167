"""IP Transparency (Method 1) and Direct Server Return (Methods 2a, 2b) through sheer in the lab.

Witnesses are independent of sheer: the upstreams' nginx and dnsmasq logs, dig and curl on the
client, and the kernel's counters in each namespace."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from sheer.lab import configs
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP as _VIP

pytestmark = pytest.mark.lab

CLIENT = "192.168.99.1"
SECOND_CLIENT = "192.168.99.2"
VIP = str(_VIP)


def dig(lab: Lab, name: str = "www.example.com", source: str | None = None) -> str:
    cmd = ["dig", "+time=2", "+tries=1", "@" + VIP, name]
    if source:
        cmd.insert(1, f"-b{source}")
    return lab.run("client", *cmd).stdout


def answer(output: str) -> str:
    match = re.search(r"^www\.example\.com\.\s+\d+\s+IN\s+A\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_http_upstreams_see_the_client(lab: Lab) -> None:
    with lab.applied("transparency", configs.TRANSPARENT), lab.proxy(configs.TRANSPARENT):
        mark = lab.mark()
        bodies = [lab.run("client", "curl", "-s", "-m", "3", f"http://{VIP}/").stdout for _ in range(4)]
        assert [b.split(".")[0] for b in bodies] == ["Hello from up1", "Hello from up2",
                                                     "Hello from up3", "Hello from up4"], bodies
        assert all(f"You connected from {CLIENT}:" in body for body in bodies), bodies
        seen = [s for s in lab.seen(mark) if s.protocol == "http"]
        assert sorted(s.node for s in seen) == ["up1", "up2", "up3", "up4"]
        assert {s.src for s in seen} == {CLIENT}


def test_udp_with_responses_and_tcp_stream_see_the_client(lab: Lab) -> None:
    stream = configs.HEADER + """stream {
    upstream tcp_witness { server 172.16.0.11:8000; server 172.16.0.12:8000; }
    upstream dns_upstreams { server 172.16.0.13:53; server 172.16.0.14:53; }
    server { listen 8000; proxy_bind $remote_addr transparent; proxy_pass tcp_witness; }
    server {
        listen 53 udp;
        proxy_responses 1;
        proxy_timeout 1s;
        proxy_bind $remote_addr transparent;
        proxy_pass dns_upstreams;
    }
}
"""
    with lab.applied("transparency", stream), lab.proxy(stream):
        mark = lab.mark()
        probe = ("import socket\n"
                 "for _ in range(2):\n"
                 f"    t = socket.create_connection(('{VIP}', 8000), 3); "
                 "print(t.recv(200).decode().strip())\n")
        lines = lab.python("client", probe).stdout.splitlines()
        assert len(lines) == 2 and all(f"You connected from {CLIENT}:" in line for line in lines), lines
        answers = {answer(dig(lab)) for _ in range(2)}
        assert answers == {"172.16.0.13", "172.16.0.14"}
        seen = lab.seen(mark)
        assert {(s.node, s.protocol) for s in seen} >= {("up1", "tcp"), ("up2", "tcp"), ("up3", "dns"),
                                                        ("up4", "dns")}
        assert {s.src for s in seen} == {CLIENT}


def test_keepalive_pool_never_mixes_clients(lab: Lab) -> None:
    config = configs.HEADER + """http {
    upstream pool { server 172.16.0.11; keepalive 8; }
    server {
        listen 80;
        location / {
            proxy_bind $remote_addr transparent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://pool;
        }
    }
}
"""
    lab.run("client", "ip", "addr", "add", f"{SECOND_CLIENT}/24", "dev", "sheer-pub", check=True)
    try:
        with lab.applied("transparency", config), lab.proxy(config):
            mark = lab.mark()
            for round_ in range(3):
                for source in (CLIENT, SECOND_CLIENT):
                    body = lab.run("client", "curl", "-s", "-m", "3", "--interface", source,
                                   f"http://{VIP}/").stdout
                    assert f"You connected from {source}:" in body, (round_, source, body)
            seen = [s for s in lab.seen(mark) if s.protocol == "http"]
            assert len(seen) == 6
            by_port: dict[int, set[str]] = {}
            for s in seen:
                by_port.setdefault(s.sport, set()).add(s.src)
            # connections were reused (fewer source ports than requests) but never across clients
            assert len(by_port) < 6, by_port
            assert all(len(sources) == 1 for sources in by_port.values()), by_port
    finally:
        lab.run("client", "ip", "addr", "del", f"{SECOND_CLIENT}/24", "dev", "sheer-pub")


def test_workers_drop_to_nobody_and_keep_only_cap_net_raw(lab: Lab) -> None:
    config = configs.TRANSPARENT.replace("user root;", "user nobody nogroup;")
    with lab.applied("transparency", config), lab.proxy(config) as running:
        body = lab.run("client", "curl", "-s", "-m", "3", f"http://{VIP}/").stdout
        assert f"You connected from {CLIENT}:" in body
        children = lab.run("proxy", "ps", "-o", "pid=,user=", "--ppid", str(running.pid)).stdout.split()
        pids, users = children[0::2], children[1::2]
        assert pids and set(users) == {"nobody"}, children
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"^CapEff:\s+(\S+)", status, re.MULTILINE)
            assert found is not None, status
            cap_eff = int(found.group(1), 16)
            assert cap_eff == 1 << 13, hex(cap_eff)   # CAP_NET_RAW only


def test_dsr_router_nat_replies_bypass_sheer(lab: Lab) -> None:
    # sheer's user-space path (its raw sender); tests/lab/test_fastpath.py has the kernel's
    with lab.applied("dsr-router", configs.DSR, "--fastpath", "off"), lab.proxy(configs.DSR):
        # veth trusts checksums it did not compute: make the receivers verify ours and the NAT's
        for node, dev in (("proxy", "sheer-int"), ("proxy", "sheer-pub"), ("up1", "sheer-int")):
            lab.run(node, "ethtool", "-K", dev, "tx", "off", check=True)
        try:
            mark = lab.mark()
            proxy_before, client_before = lab.counters("proxy"), lab.counters("client")
            outputs = [dig(lab) for _ in range(8)]
            proxy_after, client_after = lab.counters("proxy"), lab.counters("client")
        finally:
            for node, dev in (("proxy", "sheer-int"), ("proxy", "sheer-pub"), ("up1", "sheer-int")):
                lab.run(node, "ethtool", "-K", dev, "tx", "on")
        answers = [answer(out) for out in outputs]
        assert answers == ["172.16.0.11", "172.16.0.12", "172.16.0.13", "172.16.0.14"] * 2, answers
        assert all(f"SERVER: {VIP}#53" in out for out in outputs)
        assert {s.src for s in lab.seen(mark) if s.protocol == "dns"} == {CLIENT}
        # the proxy process received the 8 queries and sent nothing over UDP; its kernel forwarded the 8
        # replies
        assert proxy_after["Udp.InDatagrams"] - proxy_before["Udp.InDatagrams"] == 8
        assert proxy_after["Udp.OutDatagrams"] - proxy_before["Udp.OutDatagrams"] == 0
        assert proxy_after["Ip.ForwDatagrams"] - proxy_before["Ip.ForwDatagrams"] >= 8
        assert client_after["Udp.InCsumErrors"] == client_before["Udp.InCsumErrors"]


def test_dsr_origin_nat_replies_go_through_the_return_router(lab: Lab) -> None:
    with lab.applied("dsr-origin", configs.DSR, "--fastpath", "off"), lab.proxy(configs.DSR):
        proxy_before, rr_before = lab.counters("proxy"), lab.counters("rr")
        answers = [answer(dig(lab)) for _ in range(4)]
        proxy_after, rr_after = lab.counters("proxy"), lab.counters("rr")
    assert sorted(answers) == ["172.16.0.11", "172.16.0.12", "172.16.0.13", "172.16.0.14"]
    assert proxy_after["Ip.ForwDatagrams"] == proxy_before["Ip.ForwDatagrams"]
    assert rr_after["Ip.ForwDatagrams"] - rr_before["Ip.ForwDatagrams"] >= 4


def test_dsr_under_dnsperf_loses_under_a_thousandth(lab: Lab, tmp_path: Path) -> None:
    queries = Path(lab.state_dir) / "dnsperf-queries.txt"
    queries.write_text("www.example.com A\n" * 50)
    with lab.applied("dsr-router", configs.DSR), lab.proxy(configs.DSR):
        started = time.monotonic()
        res = lab.run("client", "dnsperf", "-s", VIP, "-d", str(queries), "-l", "10", "-Q", "5000", "-t", "2",
                      timeout=40)
        assert time.monotonic() - started < 30
    sent = int(re.search(r"Queries sent:\s+(\d+)", res.stdout).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", res.stdout).group(1))  # type: ignore[union-attr]
    assert sent > 10000, res.stdout
    assert lost / sent < 0.001, res.stdout


def test_without_plumbing_the_log_names_the_likely_cause(lab: Lab) -> None:
    # No `sheer net apply`: the upstream's SYN-ACK to 192.168.99.1 is never delivered to sheer's
    # transparent socket, the connect times out, and the log must say why and what to run.
    config = configs.HEADER + """http {
    upstream one { server 172.16.0.11; }
    server {
        listen 80;
        location / { proxy_bind $remote_addr transparent; proxy_connect_timeout 1s; proxy_pass http://one; }
    }
}
"""
    rules = lab.run("proxy", "ip", "rule", "show").stdout
    assert "fwmark" not in rules, f"someone else's plumbing is applied in sheer-proxy:\n{rules}"
    with lab.proxy(config) as running:
        res = lab.run("client", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                      f"http://{VIP}/")
        assert res.stdout == "504", res
        log = running.log()
    assert "upstream timed out (110: Connection timed out) while connecting to upstream" in log, log
    assert "sheer net apply" in log and "sheer doctor" in log, log


def test_dsr_refuses_a_datagram_larger_than_the_mtu_clearly(lab: Lab) -> None:
    # The client's 3000-byte datagram arrives in fragments, which the proxy's kernel reassembles;
    # DSR resends it unfragmented with the client's source, which cannot fit a 1500-byte MTU:
    # it is dropped with one clear log line, and the next normal query still works.
    with lab.applied("dsr-router", configs.DSR), lab.proxy(configs.DSR) as running:
        probe = ("import socket\n"
                 "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                 f"u.sendto(b'x' * 3000, ('{VIP}', 53))\n")
        assert lab.python("client", probe).returncode == 0
        assert answer(dig(lab)) in {f"172.16.0.1{i}" for i in range(1, 5)}
        time.sleep(0.2)
        log = running.log()
    assert "3000-byte datagram from 192.168.99.1 exceeds the MTU" in log, log
    assert "Traceback" not in log
