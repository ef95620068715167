"""`sheer trace` over IPv6: the pcap reader (SLL2 frames carrying IPv6), the capture filter, the flow
followed through the DSR and Method 1 stages with IPv6 addresses, and why a flow stopped, read from
recorded `ip -6 -j` / `nft -j` outputs of the dual-stack lab (tests/unit/data/trace/)."""

from __future__ import annotations

import json
import struct
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from sheer.config import load
from sheer.doctor.capture import Flow, Hop, bpf, canonical, follow, ports
from sheer.doctor.pcap import Packet, read
from sheer.doctor.trace_why import explain
from sheer.lab import configs

DATA = Path(__file__).parent / "data" / "trace"
CLIENT6, VIP6, UP6 = "fd00:99::201", "fd00:99::10", "fd00:16::11"


def _frame(src: str, dst: str, l4: bytes, proto: int, ifindex: int, outgoing: bool,
           nexthdr: int | None = None) -> bytes:
    a, b = ip_address(src), ip_address(dst)
    if a.version == 6:
        ip = struct.pack("!IHBB", 6 << 28, len(l4), proto if nexthdr is None else nexthdr, 64)
        ip += a.packed + b.packed
        ethertype = 0x86DD
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0) + a.packed + b.packed
        ethertype = 0x0800
    sll2 = struct.pack("!HHIHBB8s", ethertype, 0, ifindex, 1, 4 if outgoing else 0, 6, b"\0" * 8)
    return sll2 + ip + l4


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload


def _pcap(frames: list[tuple[float, bytes]]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276)
    for when, frame in frames:
        out += struct.pack("<IIII", int(when), int(when % 1 * 1e6), len(frame), len(frame)) + frame
    return out


def test_ipv6_udp_and_tcp_are_read_with_addresses_ports_and_lengths() -> None:
    data = _pcap([(1.0, _frame(CLIENT6, VIP6, _udp(40000, 53, b"q" * 29), 17, 3, False)),
                  (1.5, _frame(UP6, CLIENT6, _tcp(80, 40001, 0x12), 6, 4, True)),
                  (2.0, _frame("192.168.99.1", "192.168.99.10", _udp(40002, 53, b"x"), 17, 3, False))])
    first, second, third = read(data)
    assert (first.src, first.sport, first.dst, first.dport, first.proto) == (CLIENT6, 40000, VIP6, 53, "udp")
    assert (first.length, first.ifindex, first.outgoing) == (29, 3, False)
    assert (second.proto, second.flags, second.length, second.outgoing) == ("tcp", "SA", 0, True)
    assert third.src == "192.168.99.1" and third.length == 1
    assert first.endpoints() == f"[{CLIENT6}]:40000 -> [{VIP6}]:53 udp len 29"
    assert third.endpoints() == "192.168.99.1:40002 -> 192.168.99.10:53 udp len 1"


def test_an_extension_header_before_udp_is_skipped_like_the_filter_skips_it() -> None:
    hop_by_hop = bytes([17, 0, 0, 0, 0, 0, 0, 0])
    data = _pcap([(1.0, _frame(CLIENT6, VIP6, hop_by_hop + _udp(40000, 53, b"q"), 17, 3, False,
                               nexthdr=0))])
    assert list(read(data)) == []


def test_the_filter_takes_both_families_and_a_canonical_ipv6_client() -> None:
    text = bpf({53}, {53}, "fd00:99:0::201")
    assert text == "(ip or ip6) and (tcp or udp) and (port 53) and host fd00:99::201"
    assert canonical("[FD00:16:0::11]") == UP6 and canonical("backend.example") == "backend.example"


def test_config_hosts_are_compared_as_the_capture_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "lb.conf"
    path.write_text(configs.DSR6.replace("server [fd00:16::11]:53", "server [fd00:16:0:0::11]:53"))
    listen, upstream, hosts = ports(load(str(path)))
    assert (listen, upstream) == ({53}, {53})
    assert UP6 in hosts


def _hop(node: str, dev: str, when: float, src: str, sport: int, dst: str, dport: int, out: bool,
         proto: str = "udp", flags: str = "", length: int = 29) -> Hop:
    return Hop(node, dev, Packet(when, 1, out, proto, src, sport, dst, dport, flags, length))


def test_dsr_router_nat_flow_over_ipv6_reaches_the_client() -> None:
    hops = [_hop("client", "sheer-pub", 0.1, CLIENT6, 40000, VIP6, 53, True),
            _hop("proxy", "sheer-pub", 0.2, CLIENT6, 40000, VIP6, 53, False),
            _hop("proxy", "sheer-int", 0.3, CLIENT6, 40000, UP6, 53, True),
            _hop("up1", "sheer-int", 0.4, CLIENT6, 40000, UP6, 53, False),
            _hop("up1", "sheer-int", 0.5, UP6, 53, CLIENT6, 40000, True, length=45),
            _hop("proxy", "sheer-int", 0.6, UP6, 53, CLIENT6, 40000, False, length=45),
            _hop("proxy", "sheer-pub", 0.7, VIP6, 53, CLIENT6, 40000, True, length=45),
            _hop("client", "sheer-pub", 0.8, VIP6, 53, CLIENT6, 40000, False, length=45)]
    flow = follow(hops, {53}, {53}, {UP6}, "fd00:99:0::201")
    assert flow is not None
    assert flow.client == (CLIENT6, 40000) and flow.front == (VIP6, 53)
    assert flow.reached and flow.reply_path == ("proxy",)
    assert len(flow.hops) == 8


def _recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _reader(outputs: dict[tuple[str, ...], Any]) -> Any:
    asked: list[tuple[str, ...]] = []

    def read(node: str, cmd: tuple[str, ...]) -> Any:
        asked.append(cmd)
        return outputs.get(cmd)
    read.asked = asked  # type: ignore[attr-defined]
    return read


def _stopped_syn_ack() -> Flow:
    # Method 1: the proxy's own connection to the upstream, from the client's address and a port of its own
    stop = _hop("proxy", "sheer-int", 0.3, UP6, 8000, CLIENT6, 40100, False, "tcp", "SA", 0)
    return Flow((_hop("client", "sheer-pub", 0.1, CLIENT6, 40000, VIP6, 8000, True, "tcp", "S", 0), stop),
                (CLIENT6, 40000), (VIP6, 8000), "tcp", False, (), stop)


def test_a_reply_stopped_at_the_proxy_without_an_ip6_mark_rule() -> None:
    # the lab's proxy after `sheer net apply` of configs.TRANSPARENT (IPv4 only): an `ip` table's mark
    # rule does not mark IPv6 replies
    read = _reader({("nft", "-j", "list", "ruleset"): _recorded("proxy-nft-ipv4-only.json"),
                    ("ip", "-6", "-j", "rule"): _recorded("proxy-ip6-rule.json"),
                    ("ip", "-6", "-j", "route", "get", CLIENT6): _recorded("proxy-ip6-route-get.json")})
    notes = explain(_stopped_syn_ack(), read)
    assert notes[0].startswith("proxy: no prerouting rule of an `ip6` or `inet` table sets a mark: IPv6 "
                               "replies to client addresses are routed")
    assert notes[-1] == f"proxy: `ip -6 route get {CLIENT6}` (unmarked): unicast dev sheer-pub"


def test_a_reply_stopped_where_the_ip6_rule_is_missing() -> None:
    read = _reader({("nft", "-j", "list", "ruleset"): _recorded("proxy-nft-transparent6.json"),
                    ("ip", "-6", "-j", "rule"): _recorded("proxy-ip6-rule.json"),
                    ("ip", "-6", "-j", "route", "get", CLIENT6): _recorded("proxy-ip6-route-get.json")})
    notes = explain(_stopped_syn_ack(), read)
    assert any(n.startswith("proxy: ip6 sheer prerouting #") and "sets mark 0x1 but no `ip -6 rule` sends "
               "fwmark 0x1 to a table (fix: ip -6 rule add fwmark 1 lookup 100)" in n for n in notes), notes


def test_a_reply_stopped_where_table_100_lacks_local_default() -> None:
    read = _reader({("nft", "-j", "list", "ruleset"): _recorded("proxy-nft-transparent6.json"),
                    ("ip", "-6", "-j", "rule"): _recorded("proxy-ip6-rule-applied.json"),
                    ("ip", "-6", "-j", "route", "show", "table", "100"): [],
                    ("ip", "-6", "-j", "route", "get", CLIENT6): _recorded("proxy-ip6-route-get.json")})
    notes = explain(_stopped_syn_ack(), read)
    assert any("`ip -6 rule` sends it to table 100, which has no `local ::/0` (fix: ip -6 route add local "
               "::/0 dev lo table 100)" in n for n in notes), notes
    read = _reader({("nft", "-j", "list", "ruleset"): _recorded("proxy-nft-transparent6.json"),
                    ("ip", "-6", "-j", "rule"): _recorded("proxy-ip6-rule-applied.json"),
                    ("ip", "-6", "-j", "route", "show", "table", "100"):
                        _recorded("proxy-ip6-table100.json")})
    assert any("which holds `local ::/0`" in n for n in explain(_stopped_syn_ack(), read))


def test_a_request_nobody_answered_names_the_next_hops_neighbour_state() -> None:
    sent = _hop("proxy", "sheer-int", 0.2, CLIENT6, 40000, "fd00:16::99", 53, True)
    flow = Flow((_hop("client", "sheer-pub", 0.1, CLIENT6, 40000, VIP6, 53, True), sent),
                (CLIENT6, 40000), (VIP6, 53), "udp", False, (), None)
    read = _reader({("ip", "-6", "-j", "route", "get", "fd00:16::99"):
                        _recorded("proxy-ip6-route-get-up.json"),
                    ("ip", "-6", "-j", "neigh", "show", "fd00:16::99", "dev", "sheer-int"):
                        _recorded("proxy-ip6-neigh-failed.json")})
    assert explain(flow, read) == [
        ("proxy: the next hop fd00:16::99 on sheer-int is FAILED in the neighbour table "
         "(`ip -6 neigh show fd00:16::99 dev sheer-int`): it does not answer neighbour discovery")]


def test_a_flow_that_reached_the_client_needs_no_explaining() -> None:
    hop = _hop("client", "sheer-pub", 0.8, VIP6, 53, CLIENT6, 40000, False)
    flow = Flow((hop,), (CLIENT6, 40000), (VIP6, 53), "udp", True, ("proxy",), None)
    assert explain(flow, _reader({})) == []


def test_a_dsr_reply_not_forwarded_names_forwarding_and_the_rewrite() -> None:
    # the upstream answered the client's own port: router NAT's reply, to forward from the VIP
    stop = _hop("proxy", "sheer-int", 0.3, UP6, 53, CLIENT6, 40000, False)
    flow = Flow((_hop("client", "sheer-pub", 0.1, CLIENT6, 40000, VIP6, 53, True), stop),
                (CLIENT6, 40000), (VIP6, 53), "udp", False, (), stop)
    read = _reader({("ip", "-6", "-j", "netconf", "show"):
                        _recorded("proxy-ip6-netconf-off.json"),
                    ("nft", "-j", "list", "ruleset"): _recorded("proxy-nft-router6.json")})
    notes = explain(flow, read)
    assert notes[0] == ("proxy: net.ipv6.conf.all.forwarding is off: the reply is dropped here "
                        "(fix: sysctl -w net.ipv6.conf.all.forwarding=1)")
    assert notes[1].startswith("proxy: ip6 sheer ") and notes[1].endswith(f"rewrites the source to {VIP6}")
    read = _reader({("nft", "-j", "list", "ruleset"): _recorded("proxy-nft-transparent6.json")})
    assert explain(flow, read) == [f"proxy: no nft rule rewrites the source to {VIP6} (router NAT's rewrite)"]


def test_ipv4_reads_ip_and_arp_where_ipv6_reads_ip_6_and_neighbour_discovery() -> None:
    sent = _hop("proxy", "sheer-int", 0.2, "192.168.99.201", 40000, "172.16.0.99", 53, True)
    flow = Flow((_hop("client", "sheer-pub", 0.1, "192.168.99.201", 40000, "192.168.99.10", 53, True), sent),
                ("192.168.99.201", 40000), ("192.168.99.10", 53), "udp", False, (), None)
    read = _reader({("ip", "-j", "route", "get", "172.16.0.99"): _recorded("proxy-route-get-up.json"),
                    ("ip", "-j", "neigh", "show", "172.16.0.99", "dev", "sheer-int"):
                        _recorded("proxy-neigh-failed.json")})
    assert explain(flow, read) == [
        ("proxy: the next hop 172.16.0.99 on sheer-int is FAILED in the neighbour table "
         "(`ip neigh show 172.16.0.99 dev sheer-int`): it does not answer ARP")]
