"""The probes `sheer doctor` sends (only where allowed: see sheer.doctor.gather.probes_allowed), for
either address family: an ICMP or ICMPv6 echo, a TCP connect (optionally from a client's address, as a
transparent worker binds it), a UDP datagram; and what the neighbour table learned from them (ARP for
IPv4, neighbour discovery for IPv6): an upstream on a connected network that never answers neighbour
solicitation is FAILED there, which says more than a silent echo."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time

IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
ICMP_ECHO, ICMP_ECHOREPLY = 8, 0
ICMPV6_ECHO, ICMPV6_ECHOREPLY = 128, 129
DNS_QUERY = bytes.fromhex("5348010000010000000000000000020001")    # id "SH", ". IN NS"


def family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(target: str, timeout: float = 1.0) -> tuple[bool, str]:
    """One echo (raw socket as root, else the unprivileged ICMP datagram socket). An ICMPv6 socket
    gets no IP header on receive and has its checksum filled in by the kernel (it covers a
    pseudo-header only the kernel knows the source of)."""
    fam = family(target)
    proto = socket.IPPROTO_ICMPV6 if fam == socket.AF_INET6 else socket.IPPROTO_ICMP
    echo, reply = (ICMPV6_ECHO, ICMPV6_ECHOREPLY) if fam == socket.AF_INET6 else (ICMP_ECHO, ICMP_ECHOREPLY)
    ident = os.getpid() & 0xFFFF
    try:
        sock = socket.socket(fam, socket.SOCK_RAW, proto)
        raw = True
    except PermissionError:
        try:
            sock = socket.socket(fam, socket.SOCK_DGRAM, proto)
            raw = False
        except OSError as exc:
            return False, f"cannot open an ICMP socket ({exc.strerror})"
    with sock:
        header = struct.pack("!BBHHH", echo, 0, 0, ident, 1)
        payload = b"sheer doctor"
        csum = _checksum(header + payload) if fam == socket.AF_INET else 0
        packet = struct.pack("!BBHHH", echo, 0, csum, ident, 1) + payload
        sock.settimeout(timeout)
        started = time.monotonic()
        try:
            sock.sendto(packet, (target, 0))
            while time.monotonic() - started < timeout:
                data, peer = sock.recvfrom(2048)
                icmp = data[(data[0] & 0x0F) * 4:] if raw and fam == socket.AF_INET else data
                ours = not raw or icmp[4:6] == struct.pack("!H", ident)
                if _same(peer[0], target) and icmp[0] == reply and ours:
                    return True, f"echo reply in {(time.monotonic() - started) * 1000:.1f} ms"
        except TimeoutError:
            pass
        except OSError as exc:
            return False, f"{exc.strerror}"
    return False, f"no echo reply within {timeout:g}s"


def _same(a: str, b: str) -> bool:
    try:
        return socket.inet_pton(family(a), a.split("%")[0]) == socket.inet_pton(family(b), b)
    except OSError:
        return a == b


def tcp_connect(target: str, port: int, timeout: float = 2.0, source: str | None = None) -> tuple[bool, str]:
    fam = family(target)
    sock = socket.socket(fam, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(timeout)
        try:
            if source:
                # the transparent probe: bind the client's address, as a worker does (Method 1)
                if fam == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
                else:
                    sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
                sock.bind((source, 0))
            started = time.monotonic()
            sock.connect((target, port))
            return True, f"connected in {(time.monotonic() - started) * 1000:.1f} ms"
        except TimeoutError:
            return False, f"no answer within {timeout:g}s"
        except OSError as exc:
            return False, f"{exc.strerror}"


def udp_probe(target: str, port: int, timeout: float = 1.0) -> tuple[bool | None, str]:
    sock = socket.socket(family(target), socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect((target, port))      # connected: an ICMP port unreachable becomes ECONNREFUSED
            sock.send(DNS_QUERY if port == 53 else b"")
            sock.recv(2048)
            return True, "answered" + (" (DNS)" if port == 53 else "")
        except TimeoutError:
            return (False if port == 53 else None), f"no answer within {timeout:g}s"
        except OSError as exc:
            return False, f"{exc.strerror}"


def neighbour(address: str) -> str | None:
    """The neighbour table's state for `address` (REACHABLE, STALE, DELAY, FAILED, INCOMPLETE...), or
    None when it has no entry (not on a connected network, or never asked)."""
    try:
        res = subprocess.run(["ip", "-j", "neigh", "show", address], capture_output=True, text=True,
                             check=False, timeout=5)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    try:
        entries = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else []
    except json.JSONDecodeError:
        return None
    states = [s for e in entries for s in e.get("state", [])]
    return states[0] if states else None
