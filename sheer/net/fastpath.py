"""The DSR fast path as kernel state: sheer's own `netdev sheer` nft table, whose ingress chain on
the interface receiving the VIP's traffic rewrites each client datagram's destination to the
upstream sheer's balancer would pick, so the kernel forwards it and sheer never sees it.

Why nft netdev ingress and not a tc BPF program: measured on these machines (issue 16) the nft
rule runs at the machine's ceiling (71.5k q/s against 74.6k for plain routing and 74.7k for a tc
BPF program), needs no compiler, loader or pinned objects, keeps all of sheer's state in nft
tables that one transaction swaps or deletes, and its maps are readable with `nft list`.

    ip daddr VIP udp dport P ip hdrlength 5 ip frag-off & 0x3fff == 0 ip length <= MTU
        ip daddr set jhash ip saddr . udp sport mod 65537 seed 0x73686565 map @dsr_VIP_P
        [udp dport set ...] counter name ip daddr . udp dport map @peers4

- The source (the client's ip:port) is kept; nft fixes the IP header checksum and the UDP
  checksum's pseudo-header (csum_flags 1), so the upstream's reply goes to the client directly.
- Fragments (the rule needs the UDP header and a whole datagram), IP options and datagrams
  larger than the MTU towards the upstreams do not match: they reach sheer's listener, and the
  user-space path (the portable default) sends them. So does a datagram whose slot is empty
  (no live upstream): the map lookup misses and the rule stops before rewriting anything.
- A named counter per upstream server counts what the kernel steered (sheer's metrics and
  `sheer net status` read them).
- The maps' entries come from sheer.core.fastpath: `sheer net apply` writes the configuration's
  (every server up), the running sheer's health checker rewrites them, atomically, as peers go
  down and come back, on reload and on the API's changes (sheer.runtime.fastpath).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sheer.config.model import Config, Listen, StreamServer, UpstreamServer
from sheer.core import fastpath as core
from sheer.core.jhash import SEED

TABLE = "sheer"                   # `table netdev sheer`, beside `table ip sheer`
CHAIN = "ingress"
HOOK_PRIORITY = 0                 # "filter"; after every other netdev ingress chain on the interface


@dataclass(frozen=True, slots=True)
class FpServer:
    host: str
    port: int
    weight: int = 1
    backup: bool = False
    down: bool = False

    @property
    def name(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def counter(self) -> str:
        return "up_" + _ident(self.host) + f"_{self.port}"

    def upstream_server(self) -> UpstreamServer:
        return UpstreamServer(self.host, self.port, self.weight, backup=self.backup, down=self.down)


@dataclass(frozen=True, slots=True)
class FpService:
    """One DSR listener the kernel steers."""

    listen: str                    # the server's first listen as sheer prints it ("0.0.0.0:53 udp")
    upstream: str                  # its upstream block
    vip: str                       # the destination the clients use
    port: int
    method: core.Method | None     # None: the kernel cannot balance it (now): no rule, user space answers
    servers: tuple[FpServer, ...]

    @property
    def family(self) -> int:
        return 6 if ":" in self.vip else 4

    @property
    def map(self) -> str:
        return f"dsr_{_ident(self.vip)}_{self.port}"

    def table(self, down: list[bool] | None = None) -> core.Table | None:
        """The map's content with `down` (active checks; None: all up); None when not in the kernel."""
        if self.method is None:
            return None
        servers = [s.upstream_server() for s in self.servers]
        got = core.table(self.method, servers, down or [False] * len(servers))
        return None if isinstance(got, str) else got

    def port_rewrite(self) -> str | int | None:
        """None: every server listens on the public port; an int: all on that one; "map": by address."""
        ports = {s.port for s in self.servers}
        if ports == {self.port}:
            return None
        if len(ports) == 1:
            return ports.pop()
        return "map"


@dataclass(frozen=True, slots=True)
class NftFastPath:
    """The `netdev sheer` table: one ingress chain on `dev`, one rule and map per service."""

    dev: str
    services: tuple[FpService, ...]
    mtu: int = 1500
    priority: int = HOOK_PRIORITY
    name: str = TABLE
    family: str = "netdev"

    def commands(self) -> list[str]:
        return [f"# no iptables equivalent: nft netdev ingress on {self.dev} steers {s.vip}:{s.port} udp "
                f"to upstream {s.upstream} in the kernel ({describe(s)})" for s in self.services]

    def structure(self, tables: Mapping[str, core.Table | None]) -> str:
        """The table's declarations and rules, without map entries (`nft -f` text)."""
        out = [f"table netdev {self.name} {{"]
        for server in _servers(self.services):
            out.append(f"\tcounter {server.counter} {{\n\t}}")
        for family in sorted({s.family for s in self.services}):
            key = "ipv4_addr" if family == 4 else "ipv6_addr"
            out.append(f"\tmap peers{family} {{\n\t\ttype {key} . inet_service : counter\n\t}}")
        for s in self.services:
            daddr = "ip daddr" if s.family == 4 else "ip6 daddr"
            out.append(f"\tmap {s.map} {{\n\t\ttypeof numgen inc mod 2 : {daddr}\n\t}}")
            if s.port_rewrite() == "map":
                out.append(f"\tmap {s.map}_ports {{\n\t\ttypeof {daddr} : udp dport\n\t}}")
        out.append(f"\tchain {CHAIN} {{")
        out.append(f'\t\ttype filter hook ingress device "{self.dev}" priority {self.priority}; '
                   "policy accept;")
        out.extend(f"\t\t{line}" for line in self.rules(tables))
        out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"

    def rules(self, tables: Mapping[str, core.Table | None]) -> list[str]:
        return [line for s in self.services if (line := rule(s, tables.get(s.map), self.mtu))]

    def data(self, tables: Mapping[str, core.Table | None]) -> list[str]:
        """Every map's entries, as `add element` commands (after `flush map` or a new table)."""
        out: list[str] = []
        for family in sorted({s.family for s in self.services}):
            servers = [srv for srv in _servers(self.services) if (":" in srv.host) == (family == 6)]
            counted = [f'{s.host} . {s.port} : "{s.counter}"' for s in servers]
            out.append(_add(self.name, f"peers{family}", counted))
        for s in self.services:
            t = tables.get(s.map)
            out.append(_add(self.name, s.map, entries(s, t)))
            if s.port_rewrite() == "map":
                ports = [f"{srv.host} : {srv.port}" for srv in s.servers]
                out.append(_add(self.name, f"{s.map}_ports", ports))
        return [line for line in out if line]

    def nft(self, tables: Mapping[str, core.Table | None] | None = None) -> str:
        """The whole table with its initial entries, as `sheer net plan` prints it (entries summarized)."""
        tables = self.initial() if tables is None else tables
        text = self.structure(tables)
        notes = [f"# map {s.map}: {_filled(tables.get(s.map))}, written by `sheer net apply` and fed by "
                 "the running sheer" for s in self.services]
        return text + "\n".join(notes) + ("\n" if notes else "")

    def script(self, tables: Mapping[str, core.Table | None] | None = None) -> str:
        """What apply loads, as one transaction: the table replaced, with every entry."""
        tables = self.initial() if tables is None else tables
        head = f"table netdev {self.name}\ndelete table netdev {self.name}\n"
        return head + self.structure(tables) + "".join(line + "\n" for line in self.data(tables))

    def update(self, tables: Mapping[str, core.Table | None], before: Mapping[str, core.Table | None] | None,
               rules_before: list[str] | None) -> str:
        """One transaction from `before` (None: unknown, so everything is written again) to `tables`:
        only the entries that change, and the rules when a modulus changed (round robin, random).
        nft applies a transaction as a whole: no datagram ever sees a half-written table."""
        lines: list[str] = []
        if before is None:
            lines += [f"add counter netdev {self.name} {srv.counter}" for srv in _servers(self.services)]
            families = sorted({s.family for s in self.services})
            lines += [f"flush map netdev {self.name} peers{family}" for family in families]
            for s in self.services:
                lines.append(f"flush map netdev {self.name} {s.map}")
                if s.port_rewrite() == "map":
                    lines.append(f"flush map netdev {self.name} {s.map}_ports")
            lines += self.data(tables)
        else:
            for s in self.services:
                lines += _delta(self.name, s, before.get(s.map), tables.get(s.map))
        rules = self.rules(tables)
        if before is None or rules != rules_before:
            lines.append(f"flush chain netdev {self.name} {CHAIN}")
            lines += [f"add rule netdev {self.name} {CHAIN} {line}" for line in rules]
        return "".join(line + "\n" for line in lines)

    def initial(self) -> dict[str, core.Table | None]:
        return {s.map: s.table() for s in self.services}

    def to_json(self) -> dict[str, Any]:
        return {"dev": self.dev, "mtu": self.mtu, "priority": self.priority, "name": self.name,
                "family": self.family, "services": [_service_json(s) for s in self.services]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> NftFastPath:
        services = tuple(
            FpService(s["listen"], s["upstream"], s["vip"], s["port"],
                      core.Method(s["method"]["expr"], s["method"]["key"]) if s["method"] else None,
                      tuple(FpServer(**srv) for srv in s["servers"]))
            for s in data["services"])
        return NftFastPath(data["dev"], services, data["mtu"], data["priority"], data["name"])


def rule(s: FpService, table: core.Table | None, mtu: int) -> str | None:
    """The service's rule, or None when the kernel has nothing to steer it by (user space answers)."""
    if s.method is None or table is None or table.modulus == 0:
        return None
    ip = "ip" if s.family == 4 else "ip6"
    if s.family == 4:
        guard = f"ip hdrlength 5 ip frag-off & 0x3fff == 0 ip length <= {mtu}"
    else:
        guard = f"ip6 nexthdr udp ip6 length <= {mtu - 40}"   # no extension header (fragment, ...)
    match s.method.expr:
        case "jhash":
            key = f"{ip} saddr . udp sport" if s.method.key == "addr_port" else f"{ip} saddr"
            pick = f"jhash {key} mod {table.modulus} seed {SEED:#x}"
        case "numgen_inc":
            pick = f"numgen inc mod {table.modulus}"
        case "numgen_random":
            pick = f"numgen random mod {table.modulus}"
    parts = [f"{ip} daddr {s.vip} udp dport {s.port} {guard}", f"{ip} daddr set {pick} map @{s.map}"]
    port = s.port_rewrite()
    if port == "map":
        parts.append(f"udp dport set {ip} daddr map @{s.map}_ports")
    elif port is not None:
        parts.append(f"udp dport set {port}")
    parts.append(f"counter name {ip} daddr . udp dport map @peers{s.family}")
    return " ".join(parts)


def entries(s: FpService, table: core.Table | None) -> list[str]:
    if table is None:
        return []
    return [f"{slot} : {s.servers[index].host}" for slot, index in enumerate(table.slots)
            if index is not None]


def service_of(server: StreamServer, listen: Listen, vip: str) -> FpService:
    """A DSR server's listener as the kernel steers it (the configuration's servers, every one up)."""
    assert server.upstream is not None
    method = core.kernel_method(server.upstream)
    servers = tuple(FpServer(s.host, s.port, s.weight, s.backup, s.down) for s in server.upstream.servers)
    return FpService(str(listen), server.upstream.name, vip, listen.port,
                     None if isinstance(method, str) else method, servers)


def by_listen(config: Config) -> dict[str, tuple[StreamServer, Listen]]:
    """The configuration's DSR listeners by name ("0.0.0.0:53 udp"): how the feeder finds its servers."""
    return {str(listen): (server, listen) for server in core.services(config) for listen in server.listens
            if listen.udp}


def fed(installed: NftFastPath, config: Config) -> NftFastPath:
    """The installed fast path with the running configuration's upstreams, as the feeder writes it:
    new weights, servers and methods; a listener the configuration no longer has keeps its own."""
    servers = by_listen(config)
    services = []
    for s in installed.services:
        found = servers.get(s.listen)
        services.append(replace(service_of(found[0], found[1], s.vip), port=s.port) if found else s)
    return replace(installed, services=tuple(services))


def _delta(table: str, s: FpService, old: core.Table | None, new: core.Table | None) -> list[str]:
    before = old.slots if old else ()
    after = new.slots if new else ()
    gone = [at for at, index in enumerate(before)
            if index is not None and (at >= len(after) or after[at] != index)]
    come = [at for at, index in enumerate(after)
            if index is not None and (at >= len(before) or before[at] != index)]
    lines = []
    if gone:
        lines.append(f"delete element netdev {table} {s.map} {{ {', '.join(map(str, gone))} }}")
    if come:
        lines.append(_add(table, s.map, [f"{at} : {s.servers[after[at]].host}" for at in come]))  # type: ignore[index]
    return lines


def describe(s: FpService) -> str:
    if s.method is None:
        return "not balanced in the kernel"
    return {"jhash": "maglev, jhash of the client's " + ("address and port" if s.method.key == "addr_port"
                                                         else "address"),
            "numgen_inc": "round robin, numgen inc", "numgen_random": "random, numgen random"}[s.method.expr]


def _filled(table: core.Table | None) -> str:
    if table is None:
        return "empty (user space balances this service)"
    return f"{table.filled} of {table.modulus} slots"


def _servers(services: tuple[FpService, ...]) -> list[FpServer]:
    seen: dict[tuple[str, int], FpServer] = {}
    for s in services:
        for srv in s.servers:
            seen.setdefault((srv.host, srv.port), srv)
    return list(seen.values())


def _add(table: str, name: str, items: list[str]) -> str:
    return f"add element netdev {table} {name} {{ {', '.join(items)} }}" if items else ""


def _ident(host: str) -> str:
    return host.replace(".", "_").replace(":", "_")


def _service_json(s: FpService) -> dict[str, Any]:
    method = {"expr": s.method.expr, "key": s.method.key} if s.method else None
    return {"listen": s.listen, "upstream": s.upstream, "vip": s.vip, "port": s.port, "method": method,
            "servers": [{"host": v.host, "port": v.port, "weight": v.weight, "backup": v.backup,
                         "down": v.down} for v in s.servers]}
