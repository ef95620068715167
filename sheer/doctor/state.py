"""What `sheer doctor` looks at, as plain data: the kernel facts sheer net already reads, plus the
nft ruleset (`nft -j list ruleset`), extra sysctls, privileges and the results of probes. Gathered by
sheer.doctor.gather, recorded in tests; the checks (sheer.doctor.checks) only read it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address, ip_network
from typing import Any, Literal

from sheer.net.facts import KernelFacts

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13

ProbeKind = Literal["icmp", "tcp", "udp"]


@dataclass(frozen=True, slots=True)
class Privileges:
    euid: int
    cap_eff: int                     # CapEff of the process that will become the master
    cap_bnd: int                     # CapBnd: what a worker could ever keep
    transparent_error: str | None    # can_be_transparent(): None when IP_TRANSPARENT can be set

    def has(self, cap: int, which: str = "eff") -> bool:
        return bool((self.cap_eff if which == "eff" else self.cap_bnd) >> cap & 1)


@dataclass(frozen=True, slots=True)
class Probe:
    """One reachability probe from here: ok None means it was not sent (and why, in detail)."""

    target: str
    kind: ProbeKind
    port: int | None
    ok: bool | None
    detail: str
    what: str = "upstream"           # "upstream" or "gateway"


@dataclass(frozen=True, slots=True)
class TransparentProbe:
    """A TCP connection from a client address (IP_TRANSPARENT) to an upstream: Method 1 end to end,
    with the packet counters of the rules that set a mark, before and after."""

    src: str
    dst: str
    port: int
    connected: bool
    detail: str
    before: Mapping[str, int] = field(default_factory=dict)    # rule id -> packets
    after: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RouteGet:
    """`ip -j route get DST from SRC ipproto P sport N`: the path a reply really takes."""

    dst: str
    src: str
    proto: str
    sport: int
    gateway: str | None
    dev: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NextHop:
    """The next hop of the replies, when it is a network namespace on this host (the lab)."""

    address: str
    netns: str
    dev: str | None                  # its interface holding `address`
    sysctls: Mapping[str, str] = field(default_factory=dict)
    ruleset: tuple[Mapping[str, Any], ...] | None = None     # its `nft -j list ruleset` (None: unread)
    neighbour: str | None = None     # this host's neighbour table state for it (REACHABLE, FAILED...)


@dataclass(frozen=True, slots=True)
class BgpProtocol:
    """One line of `birdc show protocols`."""

    name: str
    proto: str                       # "BGP", "Static", ...
    state: str                       # "up", "start", "down"
    info: str                        # BGP: "Established", "Active", "Connect", ...


@dataclass(frozen=True, slots=True)
class BirdState:
    """What the local BIRD says, for the announced VIPs (sheer.net.announce asks it)."""

    socket: str
    protocols: tuple[BgpProtocol, ...] | None        # None: BIRD did not answer (`error` says why)
    error: str = ""
    fragment: str | None = None                      # the fragment file as it is now (None: missing)
    devices: Mapping[str, str] = field(default_factory=dict)   # VIP -> "up", "down", "missing"
    exported: Mapping[tuple[str, str], bool | None] = field(default_factory=dict)  # (VIP, BGP) -> yes/no


@dataclass(frozen=True, slots=True)
class State:
    facts: KernelFacts
    ruleset: tuple[Mapping[str, Any], ...] = ()     # the "nftables" list of `nft -j list ruleset`
    legacy_tables: tuple[str, ...] = ()             # /proc/net/ip_tables_names
    legacy_tables6: tuple[str, ...] = ()            # /proc/net/ip6_tables_names
    tc_egress: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)   # dev -> tc -j
    privileges: Privileges | None = None
    probes: tuple[Probe, ...] = ()
    transparent_probe: TransparentProbe | None = None
    routes_back: tuple[RouteGet, ...] = ()
    next_hop: NextHop | None = None
    probed: bool = False                            # probes were allowed (lab, loopback or --probe)
    nft_error: str | None = None                    # why the ruleset could not be read (checks say so)
    feeders: tuple[int, ...] = ()                   # sheer health checkers feeding the fast path here
    bird: BirdState | None = None                   # the configuration announces VIPs through BIRD

    def sysctl(self, key: str) -> str | None:
        return self.facts.sysctls.get(key)

    def conf(self, dev: str | None, leaf: str) -> tuple[int, int | None]:
        """(all, dev) values of net.ipv4.conf.*.<leaf>; missing reads as 0."""
        all_ = int(self.sysctl(f"net.ipv4.conf.all.{leaf}") or 0)
        if dev is None:
            return all_, None
        value = self.sysctl(f"net.ipv4.conf.{dev}.{leaf}")
        return all_, int(value) if value is not None else None


# --- reading `nft -j list ruleset` ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NftRuleView:
    family: str
    table: str
    chain: str
    hook: str | None
    chain_type: str | None
    handle: int
    expr: tuple[Mapping[str, Any], ...]

    @property
    def id(self) -> str:
        return f"{self.family} {self.table} {self.chain} #{self.handle}"

    @property
    def packets(self) -> int | None:
        for e in self.expr:
            if "counter" in e and isinstance(e["counter"], Mapping):
                return int(e["counter"].get("packets", 0))
        return None

    def mark_set(self) -> int | None:
        for e in self.expr:
            m = e.get("mangle")
            if (isinstance(m, Mapping) and m.get("key") == {"meta": {"key": "mark"}}
                    and isinstance(m.get("value"), int)):
                return int(m["value"])
        return None

    def saddr_set(self) -> str | None:
        for e in self.expr:
            m = e.get("mangle")
            if isinstance(m, Mapping) and m.get("key") in ({"payload": {"protocol": "ip", "field": "saddr"}},
                                                          {"payload": {"protocol": "ip6", "field": "saddr"}}):
                return str(m.get("value"))
        return None

    def source_nat(self) -> str | None:
        """"masquerade" or "snat" when this rule rewrites sources statefully."""
        return next((k for e in self.expr for k in ("masquerade", "snat") if k in e), None)

    def matches(self) -> Iterator[tuple[str, str, Any]]:
        """(what, op, right) for each match: what is "oifname", "iifname", "ip saddr", "udp sport", ..."""
        for e in self.expr:
            m = e.get("match")
            if not isinstance(m, Mapping):
                continue
            left = m.get("left")
            if isinstance(left, Mapping) and "meta" in left:
                what = str(left["meta"].get("key"))
            elif isinstance(left, Mapping) and "socket" in left:
                what = f"socket {left['socket'].get('key')}"
            elif isinstance(left, Mapping) and "payload" in left:
                what = f"{left['payload'].get('protocol')} {left['payload'].get('field')}"
            elif isinstance(left, Mapping) and "ct" in left:
                what = f"ct {left['ct'].get('key')}"
            elif isinstance(left, Mapping) and "fib" in left:
                what = "fib"
            else:
                what = "?"
            yield what, str(m.get("op", "==")), m.get("right")

    def text(self) -> str:
        """A short nft-like rendering, for evidence lines."""
        parts = []
        for what, op, right in self.matches():
            parts.append(f"{what} {'' if op == '==' else op + ' '}{_right(right)}")
        for e in self.expr:
            if "mangle" in e:
                key = e["mangle"]["key"]
                value = e["mangle"]["value"]
                if "meta" in key:
                    parts.append(f"meta {key['meta']['key']} set {value:#x}" if isinstance(value, int)
                                 else f"meta {key['meta']['key']} set {value}")
                else:
                    parts.append(f"{key['payload']['protocol']} {key['payload']['field']} set {value}")
            elif "counter" in e:
                parts.append(f"counter packets {e['counter'].get('packets', 0)}")
            elif "snat" in e:
                parts.append(f"snat to {_right(e['snat'].get('addr'))}")
            elif "masquerade" in e:
                parts.append("masquerade")
        return f"{self.id}: {' '.join(parts)}"


def _right(value: Any) -> str:
    if isinstance(value, Mapping) and "set" in value:
        return "{ " + ", ".join(_right(v) for v in value["set"]) + " }"
    if isinstance(value, Mapping) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, Mapping) and "range" in value:
        return "-".join(str(v) for v in value["range"])
    return str(value)


def nft_rules(ruleset: tuple[Mapping[str, Any], ...]) -> list[NftRuleView]:
    chains: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for entry in ruleset:
        if "chain" in entry:
            c = entry["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
    out = []
    for entry in ruleset:
        if "rule" not in entry:
            continue
        r = entry["rule"]
        chain = chains.get((r["family"], r["table"], r["chain"]), {})
        out.append(NftRuleView(r["family"], r["table"], r["chain"], chain.get("hook"), chain.get("type"),
                               int(r.get("handle", 0)), tuple(r.get("expr", ()))))
    return out


def value_contains(right: Any, value: str) -> bool | None:
    """Whether an nft match's right-hand side covers `value` (an address or a name); None: cannot tell."""
    if isinstance(right, Mapping) and "set" in right:
        answers = [value_contains(v, value) for v in right["set"]]
        if any(a is True for a in answers):
            return True
        return None if any(a is None for a in answers) else False
    if isinstance(right, Mapping) and "prefix" in right:
        try:
            return ip_address(value) in ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}",
                                                   strict=False)
        except (TypeError, ValueError):
            return None
    if isinstance(right, Mapping) and "range" in right:
        try:
            lo, hi = (IPv4Address(str(v)) for v in right["range"])
            return lo <= IPv4Address(value) <= hi
        except ValueError:
            return None
    if isinstance(right, str):
        if right.endswith("*"):
            return value.startswith(right[:-1])
        return right == value
    if isinstance(right, int):
        return str(right) == value
    return None
