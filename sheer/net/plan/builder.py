"""What a plan is made of: the options asked for, the config's transparent services, the `Builder` each
role (`proxy_role`, `upstream_role`) fills, the `Plan` it returns, and the helpers both roles share."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address
from typing import Any, Literal

from sheer.config.model import Config, Listen, StreamServer, Upstream, UpstreamServer
from sheer.net.facts import KernelFacts
from sheer.net.fastpath import NftFastPath
from sheer.net.items import Item, NftTable, to_json

Role = Literal["proxy", "upstream"]
Dsr = Literal["router", "origin"]
Match = Literal["socket", "ports"]
Nat = Literal["auto", "tc", "nft"]
Proto = Literal["tcp", "udp"]

NFT_TABLE = "sheer"
DEFAULT_MARK = 1
DEFAULT_TABLE = 100
TOP_PRIORITY = 32765              # just before `main` (32766)


@dataclass(frozen=True, slots=True)
class Options:
    role: Role = "proxy"
    host: str | None = None        # upstream role: which upstream this is
    dsr: Dsr | None = None         # None: router on the proxy, when the config has DSR servers
    mark: int | None = None
    table: int | None = None
    match: Match = "socket"
    nat: Nat = "auto"
    masquerade: bool = False       # router NAT: let the upstreams reach outside hosts
    public_if: str | None = None   # proxy: the interface facing the clients
    vip: str | None = None         # the public address replies must come from
    gateway: str | None = None     # upstream role: the proxy's internal address
    via: str | None = None         # upstream role, origin NAT: the return router
    internal: str | None = None    # upstream role, origin NAT: replies to it are not rewritten
    fastpath: bool = True          # proxy, DSR: steer client datagrams in the kernel (sheer.net.fastpath)


@dataclass(frozen=True, slots=True)
class Service:
    """One listener whose upstream connections carry the client's address."""

    proto: Proto
    listen: Listen
    upstreams: tuple[UpstreamServer, ...]
    dsr: bool
    where: str                     # file:line of proxy_bind, for messages
    # its upstream's `server NAME resolve` lines: addresses that change while sheer runs
    names: tuple[str, ...] = ()
    stream: StreamServer | None = None   # the stream server (DSR: what the kernel fast path steers)


@dataclass(frozen=True, slots=True)
class Plan:
    options: Options
    items: tuple[Item, ...] = ()
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    mark: int | None = None
    table: int | None = None

    def commands(self) -> list[str]:
        return [line for item in self.items for line in item.commands()]

    def nft(self) -> str:
        return "".join(item.nft() for item in self.items if isinstance(item, (NftTable, NftFastPath)))

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.options.role, "host": self.options.host, "dsr": self.options.dsr,
            "mark": self.mark, "table": self.table,
            "items": [to_json(item) | {"commands": item.commands()} for item in self.items],
            "commands": self.commands(), "nft": self.nft(),
            "notes": list(self.notes), "problems": list(self.problems),
        }


def services(config: Config) -> list[Service]:
    found: list[Service] = []
    for server in config.stream.servers if config.stream else ():
        bind = server.proxy_bind
        if not (bind and bind.transparent and bind.client_address and server.upstream):
            continue
        for listen in _inet(server.listens):
            found.append(Service("udp" if listen.udp else "tcp", listen, server.upstream.servers,
                                 server.dsr and listen.udp, str(bind.source or ""), _names(server.upstream),
                                 server))
    for http_server in config.http.servers if config.http else ():
        for location in http_server.locations:
            bind = location.proxy_bind
            if not (bind and bind.transparent and bind.client_address and location.proxy_pass):
                continue
            upstream = location.proxy_pass.upstream
            if upstream is None:           # proxy_pass with variables: see variable_targets()
                continue
            for listen in _inet(http_server.listens):
                found.append(Service("tcp", listen, upstream.servers, False, str(bind.source or ""),
                                     _names(upstream)))
    return found


def _inet(listens: tuple[Listen, ...]) -> tuple[Listen, ...]:
    """A unix-domain listener's clients have no IP address to bind: no kernel plumbing is for them
    (name_notes says so)."""
    return tuple(listen for listen in listens if not listen.unix)


def _unix_listeners(config: Config) -> list[Listen]:
    found = [listen for server in (config.stream.servers if config.stream else ())
             if server.proxy_bind and server.proxy_bind.transparent and server.proxy_bind.client_address
             for listen in server.listens if listen.unix]
    for http_server in config.http.servers if config.http else ():
        if any(location.proxy_bind and location.proxy_bind.transparent and location.proxy_bind.client_address
               for location in http_server.locations):
            found += [listen for listen in http_server.listens if listen.unix]
    return list(dict.fromkeys(found))


def _names(upstream: Upstream) -> tuple[str, ...]:
    return tuple(server.text for server in upstream.resolve)


def variable_targets(config: Config) -> list[str]:
    """Transparent locations whose proxy_pass is written with variables (where: file:line)."""
    return [str(location.source or "") for http_server in (config.http.servers if config.http else ())
            for location in http_server.locations
            if location.proxy_pass is not None and location.proxy_pass.upstream is None
            and location.proxy_bind is not None and location.proxy_bind.transparent
            and location.proxy_bind.client_address]


def name_notes(found: list[Service], config: Config) -> list[str]:
    """What the plan cannot know yet: addresses of names resolved while sheer runs, per-request targets."""
    notes = []
    for names in dict.fromkeys(service.names for service in found if service.names):
        notes.append(f"{', '.join(names)}: resolved while sheer runs (`resolve`); this plan uses the "
                     "addresses they have now, and sheer's error log says when they change: then run "
                     "`sheer net apply` again")
    for listen in _unix_listeners(config):
        notes.append(f"listen {listen}: a unix-domain listener's clients have no IP address (their "
                     '$remote_addr is "unix:"): proxy_bind $remote_addr has nothing to bind for them, and '
                     "nothing is planned for that listener")
    for where in variable_targets(config):
        notes.append(f"{where}: proxy_pass with variables reaches upstreams known per request only; "
                     "the plan covers the upstreams of the configuration's upstream blocks")
    return notes


def is_ip(host: str) -> bool:
    """A literal address of either family (not a name)."""
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def is_ipv4(host: str) -> bool:
    try:
        return isinstance(ip_address(host), IPv4Address)
    except ValueError:
        return False


def _free(start: int, used: frozenset[int], step: int = 1) -> int:
    value = start
    while value in used:
        value += step
    return value


def nft_set(values: list[str]) -> str:
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else "{ " + ", ".join(unique) + " }"


@dataclass
class Builder:
    """A plan being built: items, notes and problems appended by a role; tables and the rule
    priority chosen clear of what the kernel already has."""

    options: Options
    kernel: KernelFacts
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    used_tables: set[int] = field(default_factory=set)
    priority: int = 0

    def __post_init__(self) -> None:
        self.used_tables = set(self.kernel.tables)
        self.priority = self.choose_priority()

    def choose_priority(self) -> int:
        value = TOP_PRIORITY
        while value in self.kernel.priorities:
            value -= 1
        return value

    def choose_table(self) -> int:
        if self.options.table is not None and self.options.table not in self.used_tables:
            table = self.options.table
        else:
            table = _free(DEFAULT_TABLE, frozenset(self.used_tables))
        self.used_tables.add(table)
        return table

    def choose_mark(self) -> int:
        if self.options.mark is not None:
            return self.options.mark
        return _free(DEFAULT_MARK, self.kernel.fwmarks)

    def plan(self, mark: int | None = None, table: int | None = None) -> Plan:
        return Plan(self.options, tuple(self.items), tuple(dict.fromkeys(self.notes)),
                    tuple(dict.fromkeys(self.problems)), mark, table)


def upstream_problems(kernel: KernelFacts, server: UpstreamServer, public_if: str | None,
                      what: str) -> list[str]:
    """The article's "No Overlapping IP Ranges": the upstream's replies must route back through us."""
    host = server.host
    if not is_ip(host):
        return []
    addr = ip_address(host)
    if addr.is_loopback or kernel.is_local(host):
        return [(f"{what}: upstream {server.name} is on this host (loopback or a local address): a "
                 "transparent connection from the client's address cannot be answered through loopback; "
                 "run the upstream on another host or drop `transparent`")]
    if public_if:
        for net in kernel.networks_of(public_if):
            if addr in net:
                return [(f"{what}: upstream {server.name} is on the clients' subnet {net} ({public_if}): "
                         "it would answer clients directly instead of through the proxy (the article's "
                         "\"No Overlapping IP Ranges\"); put upstreams on a separate network")]
    return []


def in_network(host: str, net: IPv4Network | IPv6Network) -> bool:
    return is_ip(host) and ip_address(host) in net


def family_problems(service: Service, what: str) -> list[str]:
    """The client's address is the upstream connection's source: both must be of one family. An
    IPv6 listener with ipv6only=off also takes IPv4 clients (as ::ffff:a.b.c.d): those can reach an
    IPv4 upstream only, the IPv6 ones an IPv6 upstream, so such a listener is left to the runtime."""
    listen = service.listen
    if listen.family == 6 and not listen.ipv6only:
        return []
    client = "IPv6" if listen.family == 6 else "IPv4"
    return [f"{what}: upstream {u.name} is {'IPv4' if is_ipv4(u.host) else 'IPv6'} but listen {listen} takes "
            f"{client} clients: a client's address cannot be the source of a connection to it; put "
            "the upstreams of each family behind a listener of that family"
            for u in service.upstreams if is_ip(u.host) and is_ipv4(u.host) != (listen.family == 4)]
