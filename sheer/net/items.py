"""The pieces of kernel state a plan is made of. Each prints itself the way the article writes it
(`sysctl`, `iptables`, `ip`, `tc`) and, for netfilter, as the nft text sheer actually loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from sheer.net.fastpath import NftFastPath


def ip_cmd(family: int) -> str:
    return "ip" if family == 4 else "ip -6"


@dataclass(frozen=True, slots=True)
class Sysctl:
    key: str                       # dotted, as `sysctl` prints it
    value: str

    @property
    def path(self) -> str:
        """/proc/sys path; interface names may hold dots, so conf.<dev>.<leaf> is split by hand."""
        for version in ("ipv4", "ipv6"):
            head = f"net.{version}.conf."
            if self.key.startswith(head):
                dev, leaf = self.key[len(head):].rsplit(".", 1)
                return f"/proc/sys/net/{version}/conf/{dev}/{leaf}"
        return "/proc/sys/" + self.key.replace(".", "/")

    def commands(self) -> list[str]:
        return [f"sysctl -w {self.key}={self.value}"]


@dataclass(frozen=True, slots=True)
class Rule:
    table: int
    priority: int
    fwmark: int | None = None
    src: str | None = None
    ipproto: Literal["tcp", "udp"] | None = None
    sport: int | None = None
    family: int = 4                # 6: `ip -6 rule`, the kernel's separate IPv6 rule list

    def commands(self) -> list[str]:
        sel = ""
        if self.src:
            sel += f" from {self.src}"
        if self.fwmark is not None:
            sel += f" fwmark {self.fwmark:#x}" if self.fwmark > 9 else f" fwmark {self.fwmark}"
        if self.ipproto:
            sel += f" ipproto {self.ipproto}"
        if self.sport is not None:
            sel += f" sport {self.sport}"
        return [f"{ip_cmd(self.family)} rule add{sel} lookup {self.table} priority {self.priority}"]


@dataclass(frozen=True, slots=True)
class Route:
    table: int
    dst: str = "0.0.0.0/0"
    kind: Literal["unicast", "local"] = "unicast"
    dev: str | None = None
    via: str | None = None

    @property
    def family(self) -> int:
        return 6 if ":" in self.dst else 4

    def commands(self) -> list[str]:
        kind = "local " if self.kind == "local" else ""
        dst = "default" if self.dst in ("0.0.0.0/0", "::/0") and self.kind == "unicast" else self.dst
        via = f" via {self.via}" if self.via else ""
        dev = f" dev {self.dev}" if self.dev else ""
        return [f"{ip_cmd(self.family)} route add {kind}{dst}{via}{dev} table {self.table}"]


@dataclass(frozen=True, slots=True)
class NftRule:
    text: str                      # nft syntax
    article: str                   # the article's form (iptables, or a `#` comment where none exists)


@dataclass(frozen=True, slots=True)
class NftChain:
    name: str
    type: Literal["filter", "nat"]
    hook: Literal["prerouting", "output", "postrouting", "forward", "input"]
    priority: str                  # "raw", "mangle", "srcnat - 10", ...
    rules: tuple[NftRule, ...]


@dataclass(frozen=True, slots=True)
class NftTable:
    name: str
    chains: tuple[NftChain, ...]
    family: str = "ip"

    def nft(self) -> str:
        out = [f"table {self.family} {self.name} {{"]
        for i, chain in enumerate(self.chains):
            if i:
                out.append("")
            out.append(f"\tchain {chain.name} {{")
            out.append(f"\t\ttype {chain.type} hook {chain.hook} priority {chain.priority}; policy accept;")
            out.extend(f"\t\t{rule.text}" for rule in chain.rules)
            out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"

    def commands(self) -> list[str]:
        return [rule.article for chain in self.chains for rule in chain.rules]


@dataclass(frozen=True, slots=True)
class TcClsact:
    """A clsact qdisc: an egress hook for filters that replaces nothing (the article's
    `root handle 10: htb` would replace the interface's root qdisc)."""

    dev: str

    def commands(self) -> list[str]:
        return [f"tc qdisc add dev {self.dev} clsact"]


@dataclass(frozen=True, slots=True)
class TcNat:
    """Stateless SNAT with act_nat: addresses only, so the upstream port must be the public port.
    u32 needs the mask the article's line lacks (`sport 53` alone is an `Illegal "match"`)."""

    dev: str
    src: str
    sport: int
    vip: str
    prio: int

    def commands(self) -> list[str]:
        return [(f"tc filter add dev {self.dev} egress protocol ip prio {self.prio} u32 "
                 f"match ip src {self.src}/32 match ip sport {self.sport} 0xffff "
                 f"action nat egress {self.src}/32 {self.vip}")]


# Announcing VIPs (sheer.net.announce applies them): the VIP on a dummy interface, BIRD's fragment.
DUMMY = "sheer-vip"


@dataclass(frozen=True, slots=True)
class Link:
    """A dummy interface of sheer's own, up, to hold the VIPs."""

    dev: str = DUMMY

    def commands(self) -> list[str]:
        return [f"ip link add {self.dev} type dummy", f"ip link set {self.dev} up"]


@dataclass(frozen=True, slots=True)
class Address:
    dev: str
    address: str                   # "192.168.100.10/32"

    def commands(self) -> list[str]:
        return [f"ip addr add {self.address} dev {self.dev}"]


@dataclass(frozen=True, slots=True)
class BirdFragment:
    path: str
    text: str
    socket: str

    def commands(self) -> list[str]:
        return [f"# write BIRD's fragment {self.path} (below), then: birdc -s {self.socket} configure"]


Item: TypeAlias = (Sysctl | Rule | Route | NftTable | TcClsact | TcNat | NftFastPath | Link | Address
                   | BirdFragment)
KINDS: dict[str, type[Item]] = {
    "sysctl": Sysctl, "rule": Rule, "route": Route, "nft": NftTable, "tc-clsact": TcClsact, "tc-nat": TcNat,
    "nft-fastpath": NftFastPath, "link": Link, "address": Address, "bird-fragment": BirdFragment,
}


def kind_of(item: Item) -> str:
    return next(k for k, cls in KINDS.items() if isinstance(item, cls))


def to_json(item: Item) -> dict[str, Any]:
    if isinstance(item, NftFastPath):
        return {"item": kind_of(item), **item.to_json()}
    data: dict[str, Any] = {"item": kind_of(item)}
    for name in item.__dataclass_fields__:
        value = getattr(item, name)
        if name == "chains":
            value = [{"name": c.name, "type": c.type, "hook": c.hook, "priority": c.priority,
                      "rules": [{"text": r.text, "article": r.article} for r in c.rules]} for c in value]
        data[name] = value
    return data


def from_json(data: dict[str, Any]) -> Item:
    fields = {k: v for k, v in data.items() if k not in ("item", "commands", "nft")}
    if data["item"] == "nft-fastpath":
        return NftFastPath.from_json(fields)
    if data["item"] == "nft":
        fields["chains"] = tuple(
            NftChain(c["name"], c["type"], c["hook"], c["priority"],
                     tuple(NftRule(r["text"], r["article"]) for r in c["rules"]))
            for c in fields["chains"])
    cls: Any = KINDS[data["item"]]
    item: Item = cls(**fields)
    return item
