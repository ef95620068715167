"""The article's lab as data: the single source of truth for build, status, demo and tests.

client 192.168.99.1 --public-- proxy 192.168.99.10 / 172.16.0.1 --internal-- up1..up4 172.16.0.11-14
                      \\--- return router 192.168.99.254 / 172.16.0.254 ---/
Both segments are bridges inside the switch namespace; nothing touches the root namespace.

The fleet (`sheer lab up --fleet N`) adds to it: an edge router (192.168.99.253 on the public
segment, 192.168.98.1 on a fabric segment) that reaches the service address 192.168.100.10
through ECMP over N proxies (proxyK: 192.168.98.1K on the fabric, 172.16.0.3K inside), each
announcing it over BGP (sheer.lab.bird); the client routes 192.168.100.0/24 through the edge,
and the upstreams answer it directly through the return router (origin NAT).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address
from pathlib import Path
from typing import Literal

from sheer.lab.errors import LabError

PREFIX = "sheer"     # interfaces inside the lab's namespaces


def _lab_name() -> str:
    """The lab's name, `sheer` unless SHEER_LAB says otherwise (e.g. `sheer2`): it prefixes its
    namespaces and state, so two checkouts can each run a lab on one machine without meeting."""
    name = os.environ.get("SHEER_LAB", "sheer")
    if not re.fullmatch(r"sheer[A-Za-z0-9]{0,4}", name):
        raise LabError(f"SHEER_LAB={name!r}: a lab's name is `sheer` plus at most 4 letters or digits")
    return name


LAB = _lab_name()    # namespaces `LAB-<node>`
STATE_DIR = Path(f"/run/{LAB}-lab")
LOCK_FILE = Path(f"/run/{LAB}-lab.lock")
REPORT_DIR = Path(f"/run/{LAB}-lab-report")
SWITCH_NETNS = f"{LAB}-sw"
RR_NFT_TABLE = "sheer_rr"

CLIENT_ADDR = IPv4Address("192.168.99.1")
VIP = IPv4Address("192.168.99.10")
PROXY_INTERNAL = IPv4Address("172.16.0.1")
RR_PUBLIC = IPv4Address("192.168.99.254")
RR_INTERNAL = IPv4Address("172.16.0.254")

HTTP_PORT = 80
WITNESS_PORT = 8000  # TCP and UDP "you connected from" witnesses
DNS_PORT = 53
DNS_NAME = "www.example.com"
HEALTH_TXT_NAME = "health.example.com"
HEALTH_TEXT = "health.is.good"

# `sheer lab up --ipv6` (sheer.lab.dualstack): each IPv4 address's twin, the last octet as the last group
IPV6_PREFIXES = {"public": "fd00:99::", "internal": "fd00:16::"}


def v6_of(address: IPv4Address, segment: str) -> IPv6Address:
    """192.168.99.10 -> fd00:99::10, 172.16.0.11 -> fd00:16::11."""
    return IPv6Address(IPV6_PREFIXES[segment] + str(address).rsplit(".", 1)[1])


# the fleet (sheer.lab.fleet): the service address every proxy announces, and who routes to it
FLEET_VIP = IPv4Address("192.168.100.10")
FLEET_NET = IPv4Network("192.168.100.0/24")
EDGE_PUBLIC = IPv4Address("192.168.99.253")
EDGE_FABRIC = IPv4Address("192.168.98.1")
FLEET_MIN, FLEET_MAX = 2, 4
# private AS numbers (RFC 6996, 64512-65534): the edge 65000, proxyK 65000 + K
EDGE_AS = 65000

Role = Literal["client", "proxy", "upstream", "router", "edge"]
SegmentName = Literal["public", "internal", "fabric"]


@dataclass(frozen=True)
class Segment:
    name: SegmentName
    bridge: str
    network: IPv4Network


@dataclass(frozen=True)
class Iface:
    name: str  # inside the node
    segment: SegmentName
    address: IPv4Interface
    port: str  # the veth peer, enslaved to the segment's bridge in the switch namespace


@dataclass(frozen=True)
class Route:
    dst: str  # "default" or a CIDR
    via: IPv4Address


@dataclass(frozen=True)
class Node:
    name: str
    role: Role
    ifaces: tuple[Iface, ...]
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()

    @property
    def netns(self) -> str:
        return f"{LAB}-{self.name}"

    def address(self, segment: SegmentName | None = None) -> IPv4Address:
        for iface in self.ifaces:
            if segment is None or iface.segment == segment:
                return iface.address.ip
        raise KeyError(f"{self.name} has no {segment} address")


@dataclass(frozen=True)
class Topology:
    segments: tuple[Segment, ...]
    nodes: tuple[Node, ...]
    switch_netns: str = SWITCH_NETNS
    fleet: int = 0                 # proxies behind the edge router (0: the article's lab alone)

    def node(self, name: str) -> Node:
        bare = name.removeprefix(f"{LAB}-")
        for node in self.nodes:
            if node.name == bare:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no lab node {name!r} (nodes: {known})")

    def segment(self, name: SegmentName) -> Segment:
        return next(s for s in self.segments if s.name == name)

    @property
    def upstreams(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "upstream")

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.switch_netns, *(n.netns for n in self.nodes))

    @property
    def fleet_proxies(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "proxy" and n.name != "proxy")


# Every node: IPv6 off (no DAD/RS/MLD noise in the counters), forwarding off, rp_filter off
# unless the node says otherwise. Interfaces are created after these, so "default" reaches them.
COMMON_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
)


def _iface(node: str, segment: SegmentName, address: str) -> Iface:
    short = {"public": "pub", "internal": "int", "fabric": "fab"}[segment]
    return Iface(f"{PREFIX}-{short}", segment, IPv4Interface(address), f"{PREFIX}-{node}-{short[0]}")


def _upstream(index: int) -> Node:
    name = f"up{index}"
    return Node(
        name,
        "upstream",
        (_iface(name, "internal", f"172.16.0.{10 + index}/24"),),
        (Route("default", PROXY_INTERNAL),),
    )


def article() -> Topology:
    client = Node(
        "client",
        "client",
        (_iface("client", "public", f"{CLIENT_ADDR}/24"),),
        (),  # only its /24: the upstreams must stay unreachable
        # load generators run here: connection-per-request runs exhaust TIME_WAIT without these
        (("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.ip_local_port_range", "1024 65535")),
    )
    proxy = Node(
        "proxy",
        "proxy",
        (_iface("proxy", "public", f"{VIP}/24"), _iface("proxy", "internal", f"{PROXY_INTERNAL}/24")),
    )
    router = Node(
        "rr",
        "router",
        (_iface("rr", "public", f"{RR_PUBLIC}/24"), _iface("rr", "internal", f"{RR_INTERNAL}/24")),
        (),
        # origin-NAT replies arrive on the internal side with the public VIP as source: strict
        # reverse-path filtering would drop them, loose mode (2) only asks that the VIP be routable
        (
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "2"),
            ("net.ipv4.conf.default.rp_filter", "2"),
        ),
    )
    segments = (
        Segment("public", f"{PREFIX}-br-pub", IPv4Network("192.168.99.0/24")),
        Segment("internal", f"{PREFIX}-br-int", IPv4Network("172.16.0.0/24")),
    )
    return Topology(segments, (client, proxy, *(_upstream(i) for i in range(1, 5)), router))


FABRIC = Segment("fabric", f"{PREFIX}-br-fab", IPv4Network("192.168.98.0/24"))


def proxy_fabric(index: int) -> IPv4Address:
    return IPv4Address(f"192.168.98.{10 + index}")


def proxy_as(index: int) -> int:
    return EDGE_AS + index


def fleet(n: int) -> Topology:
    """The article's lab plus the fleet: the edge router and proxy1..proxyN (sheer.lab.fleet)."""
    if not FLEET_MIN <= n <= FLEET_MAX:
        raise LabError(f"--fleet {n}: a fleet has {FLEET_MIN} to {FLEET_MAX} proxies")
    base = article()
    via_edge = Route(str(FLEET_NET), EDGE_PUBLIC)
    nodes = [replace(node, routes=(*node.routes, via_edge)) if node.name in ("client", "rr") else node
             for node in base.nodes]
    nodes.append(Node(
        "edge", "edge",
        (_iface("edge", "public", f"{EDGE_PUBLIC}/24"), _iface("edge", "fabric", f"{EDGE_FABRIC}/24")),
        (),
        # ECMP by 4-tuple: with the default policy (0, addresses only) one client goes to one proxy
        (("net.ipv4.ip_forward", "1"), ("net.ipv4.fib_multipath_hash_policy", "1")),
    ))
    for k in range(1, n + 1):
        name = f"proxy{k}"
        nodes.append(Node(
            name, "proxy",
            (_iface(name, "fabric", f"{proxy_fabric(k)}/24"),
             _iface(name, "internal", f"172.16.0.{30 + k}/24")),
            (Route("default", EDGE_FABRIC),),
            # the DSR fast path forwards the clients' datagrams to the upstreams
            (("net.ipv4.ip_forward", "1"),),
        ))
    return Topology((*base.segments, FABRIC), tuple(nodes), fleet=n)


def current(state_dir: Path = STATE_DIR) -> Topology:
    """The lab as it was last built: the article's, or with a fleet."""
    try:
        n = int((state_dir / "fleet").read_text())
    except (OSError, ValueError):
        return article()
    return fleet(n) if FLEET_MIN <= n <= FLEET_MAX else article()


def rr_ruleset(table: str = RR_NFT_TABLE, fleet: bool = False) -> str:
    """The return router forwards only origin-NAT DSR replies (UDP from the VIP, inside -> out)."""
    vips = f"{{ {VIP}, {FLEET_VIP} }}" if fleet else str(VIP)
    return f"""table ip {table} {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        iifname "{PREFIX}-int" oifname "{PREFIX}-pub" ip saddr {vips} meta l4proto udp counter accept
        counter drop
    }}
}}
"""
