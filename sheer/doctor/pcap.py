"""A small pcap reader for what `sheer trace` captures: `tcpdump -i any -y LINUX_SLL2 -w FILE`, TCP and UDP
over IPv4 and IPv6 (an IPv6 packet whose TCP or UDP header follows extension headers is skipped, as the
capture's filter skips it). SLL2 keeps what a plain Ethernet capture loses: the interface index and the
direction."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

LINKTYPE_LINUX_SLL2 = 276
OUTGOING = 4                        # SLL packet type: sent by this host
TCP_FLAGS = "FSRPAUEC"


@dataclass(frozen=True, slots=True)
class Packet:
    time: float
    ifindex: int
    outgoing: bool
    proto: str                      # "tcp" or "udp"
    src: str
    sport: int
    dst: str
    dport: int
    flags: str = ""                 # TCP: "S", "SA", "A", "FA", "R", ...
    length: int = 0                 # payload bytes (from the IP total length, not the capture)

    def endpoints(self) -> str:
        flags = f" [{self.flags}]" if self.flags else ""
        return f"{endpoint(self.src, self.sport)} -> {endpoint(self.dst, self.dport)} {self.proto}{flags} " \
               f"len {self.length}"


def endpoint(address: str, port: int) -> str:
    """address:port, an IPv6 address in brackets (as nginx writes $remote_addr:$remote_port's peer)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def read(data: bytes) -> Iterator[Packet]:
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError("not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_LINUX_SLL2:
        raise ValueError(f"pcap link type {linktype}: expected LINUX_SLL2 ({LINKTYPE_LINUX_SLL2})")
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(end + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 20:
            break
        packet = _sll2(frame, sec + frac / (1e9 if nano else 1e6))
        if packet is not None:
            yield packet


def _sll2(frame: bytes, when: float) -> Packet | None:
    proto, _, ifindex, _, pkttype = struct.unpack("!HHIHB", frame[:11])
    ip = frame[20:]
    if proto == 0x0800 and len(ip) >= 20 and ip[0] >> 4 == 4:
        header = (ip[0] & 0x0F) * 4
        l4, payload = ip[9], struct.unpack("!H", ip[2:4])[0] - header
        src, dst = str(IPv4Address(ip[12:16])), str(IPv4Address(ip[16:20]))
    elif proto == 0x86DD and len(ip) >= 40 and ip[0] >> 4 == 6:
        header = 40
        l4, payload = ip[6], struct.unpack("!H", ip[4:6])[0]      # the payload length excludes the header
        src, dst = str(IPv6Address(ip[8:24])), str(IPv6Address(ip[24:40]))
    else:
        return None
    seg = ip[header:]
    if l4 not in (6, 17) or len(seg) < 4:
        return None
    sport, dport = struct.unpack("!HH", seg[:4])
    flags = ""
    l4_header = 8
    if l4 == 6 and len(seg) >= 14:
        bits = seg[13]
        flags = "".join(name for i, name in enumerate(TCP_FLAGS) if bits >> i & 1)
        l4_header = (seg[12] >> 4) * 4
    return Packet(when, ifindex, pkttype == OUTGOING, "tcp" if l4 == 6 else "udp", src, sport, dst, dport,
                  flags, max(0, payload - l4_header))
