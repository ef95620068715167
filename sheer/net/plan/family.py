"""One address family's words: the same plan printed for IPv4 (`ip`, `iptables`, `table ip sheer`) or
IPv6 (`ip -6`, `ip6tables`, `table ip6 sheer`). The kernel keeps the two apart everywhere that matters
here: two rule lists, two sets of routing tables, two netfilter families; one fwmark and one table
number serve both."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address


@dataclass(frozen=True, slots=True)
class Family:
    version: int
    nft: str                       # the nft table family and payload keyword: "ip" / "ip6"
    iptables: str                  # what the article's reader types: "iptables" / "ip6tables"
    anywhere: str                  # "0.0.0.0/0" / "::/0"
    forwarding: str                # the sysctl router NAT and the fast path need
    host_len: int                  # 32 / 128

    def __str__(self) -> str:
        return f"IPv{self.version}"


V4 = Family(4, "ip", "iptables", "0.0.0.0/0", "net.ipv4.ip_forward", 32)
# IPv6 has one switch per interface; `all` sets every interface at once (and, as forwarding does on
# IPv6, stops the host from accepting router advertisements)
V6 = Family(6, "ip6", "ip6tables", "::/0", "net.ipv6.conf.all.forwarding", 128)


def version_of(host: str) -> int | None:
    """4 or 6 for a literal address, None for anything else (a name, the empty wildcard)."""
    try:
        return ip_address(host).version
    except ValueError:
        return None


def family_of(version: int) -> Family:
    return V4 if version == 4 else V6


def families(hosts: Iterable[str]) -> list[Family]:
    """The families of these addresses, IPv4 first."""
    found = {version_of(h) for h in hosts}
    return [f for f in (V4, V6) if f.version in found]
