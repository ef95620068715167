"""What the kernel already has, as plain data: gathered by `sheer.net.inspect`, recorded in tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import (
    IPv4Interface,
    IPv4Network,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)

MAIN_TABLE = 254
RESERVED_TABLES = frozenset({0, 253, 254, 255})


@dataclass(frozen=True, slots=True)
class IfAddr:
    dev: str
    address: str                   # "192.168.99.10/24", "fd00:99::10/64"

    @property
    def interface(self) -> IPv4Interface | IPv6Interface:
        return ip_interface(self.address)

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def link_local(self) -> bool:
        """fe80::/10: every IPv6 interface has one; never a VIP or a reply's source."""
        return self.interface.ip.is_link_local


@dataclass(frozen=True, slots=True)
class RouteFact:
    dst: str                       # "0.0.0.0/0", "172.16.0.0/24", "::/0", "fd00:16::/64"
    dev: str | None = None
    via: str | None = None
    table: int = MAIN_TABLE
    kind: str = "unicast"

    @property
    def family(self) -> int:
        return 6 if ":" in self.dst else 4

    def satisfies(self, want: RouteFact) -> bool:
        """This kernel route is `want` (which may leave the device or gateway to the kernel)."""
        return ((self.dst, self.table, self.kind) == (want.dst, want.table, want.kind)
                and want.via in (None, self.via) and want.dev in (None, self.dev))


@dataclass(frozen=True, slots=True)
class RuleFact:
    priority: int
    table: int
    fwmark: int | None = None
    src: str | None = None
    ipproto: str | None = None
    sport: int | None = None
    family: int = 4                # `ip rule` (4) or `ip -6 rule` (6): two separate lists in the kernel


@dataclass(frozen=True, slots=True)
class HookUser:
    """Something else on an interface's receive hooks: another nft netdev/inet ingress chain, a tc
    ingress filter, an XDP program. The fast path leaves it alone."""

    dev: str
    kind: str                      # "nft", "tc", "xdp"
    what: str                      # "inet filter ingress", "bpf prog 12", ...
    priority: int | None = None    # nft chains: their hook priority

    def __str__(self) -> str:
        priority = f" (priority {self.priority})" if self.priority is not None else ""
        return f"{self.kind} {self.what}{priority}"


@dataclass(frozen=True, slots=True)
class KernelFacts:
    addresses: tuple[IfAddr, ...] = ()
    routes: tuple[RouteFact, ...] = ()     # every table
    rules: tuple[RuleFact, ...] = ()
    act_nat: bool = False
    sysctls: Mapping[str, str] = field(default_factory=dict)
    nft_tables: tuple[str, ...] = ()       # "ip sheer", "inet filter", ...
    mtus: Mapping[str, int] = field(default_factory=dict)
    hook_users: tuple[HookUser, ...] = ()  # receive hooks in use on any interface (not sheer's)
    conntrack: bool = False                # conntrack holds entries in this namespace (it runs here)
    # nft chains that check `fib saddr ... oif missing` (reverse-path filtering; IPv6's only kind, since
    # IPv6 has no rp_filter sysctl), as "inet filter prerouting" (sheer's own tables left out)
    fib_checks: tuple[str, ...] = ()
    dummy: bool = True                     # the kernel has dummy interfaces (loaded, built in, or a module)

    def excluding(self, rules: tuple[RuleFact, ...], routes: tuple[RouteFact, ...]) -> KernelFacts:
        """The facts without what sheer itself created, so a re-plan picks the same mark and table."""
        return replace(self, rules=tuple(r for r in self.rules if r not in rules),
                       routes=tuple(r for r in self.routes if not any(r.satisfies(o) for o in routes)))

    @property
    def fwmarks(self) -> frozenset[int]:
        return frozenset(r.fwmark for r in self.rules if r.fwmark is not None)

    @property
    def tables(self) -> frozenset[int]:
        return frozenset({r.table for r in self.rules} | {r.table for r in self.routes}) | RESERVED_TABLES

    @property
    def priorities(self) -> frozenset[int]:
        return frozenset(r.priority for r in self.rules)

    def is_local(self, addr: str) -> bool:
        return any(str(a.interface.ip) == addr for a in self.addresses)

    def dev_of(self, addr: str) -> str | None:
        """The interface holding `addr`."""
        return next((a.dev for a in self.addresses if str(a.interface.ip) == addr), None)

    def networks_of(self, dev: str, family: int | None = None) -> tuple[IPv4Network | IPv6Network, ...]:
        """`dev`'s networks (of one family if given), link-local ones left out."""
        return tuple(a.interface.network for a in self.addresses
                     if a.dev == dev and not a.link_local and family in (None, a.family))

    def route_to(self, addr: str) -> RouteFact | None:
        """Longest-prefix match in the main table (what the kernel would pick, rules aside)."""
        target = ip_address(addr)
        best: RouteFact | None = None
        best_len = -1
        for route in self.routes:
            if route.table != MAIN_TABLE or route.kind != "unicast" or route.family != target.version:
                continue
            net = ip_network(route.dst, strict=False)
            if target in net and net.prefixlen > best_len:
                best, best_len = route, net.prefixlen
        return best

    def default_gateway(self, family: int = 4) -> str | None:
        anywhere = "0.0.0.0/0" if family == 4 else "::/0"
        route = next((r for r in self.routes if r.table == MAIN_TABLE and r.dst == anywhere and r.via),
                     None)
        return route.via if route else None

    def rules_of(self, family: int) -> tuple[RuleFact, ...]:
        return tuple(r for r in self.rules if r.family == family)
