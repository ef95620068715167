"""A small pcap reader for what `sheer trace` captures: `tcpdump -i any -y LINUX_SLL2 -w FILE`, IPv4 TCP
and UDP. SLL2 keeps what a plain Ethernet capture loses: the interface index and the direction."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address

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
        return f"{self.src}:{self.sport} -> {self.dst}:{self.dport} {self.proto}{flags} len {self.length}"


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
    if proto != 0x0800:
        return None
    ip = frame[20:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    l4 = ip[9]
    src, dst = str(IPv4Address(ip[12:16])), str(IPv4Address(ip[16:20]))
    seg = ip[ihl:]
    if l4 not in (6, 17) or len(seg) < 4:
        return None
    sport, dport = struct.unpack("!HH", seg[:4])
    flags = ""
    total = struct.unpack("!H", ip[2:4])[0]
    header = 8
    if l4 == 6 and len(seg) >= 14:
        bits = seg[13]
        flags = "".join(name for i, name in enumerate(TCP_FLAGS) if bits >> i & 1)
        header = (seg[12] >> 4) * 4
    return Packet(when, ifindex, pkttype == OUTGOING, "tcp" if l4 == 6 else "udp", src, sport, dst, dport,
                  flags, max(0, total - ihl - header))
