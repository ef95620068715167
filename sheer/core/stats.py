"""Where each counter of the status API and the metrics lives: a pure layout over flat int64 slots.

The shared statistics board (sheer.runtime.shared) is one array of int64 per writer process (each
worker, the health checker, ...): a process only ever adds to its own row, so no lock and no
lost update; a reader sums the rows. This module says which column holds what. Columns are
handed out by key (a zone's name, an upstream's name and a server's address) from a registry
that only grows, so a reload keeps every counter of what it keeps (nginx Plus keeps its zones
across reloads too), and an old generation draining still counts into the same columns.

Three kinds of column: counters (summed), gauges (summed, and zeroed in a row whose process
died: its connections died with it) and timestamps (the greatest row wins: `selected`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from sheer.config.model import Config, Upstream, UpstreamServer
from sheer.core.peers import configured, positions, slot_of


class Kind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    LATEST = "latest"      # a time in ms since the epoch: the greatest row wins


def _fields(*names: str) -> dict[str, Kind]:
    out: dict[str, Kind] = {}
    for name in names:
        base, _, kind = name.partition(":")
        out[base] = {"": Kind.COUNTER, "g": Kind.GAUGE, "t": Kind.LATEST}[kind]
    return out


# nginx Plus's /connections and /http/requests, and stub_status (Reading/Writing/Waiting).
GLOBAL = _fields("accepted", "dropped", "active:g", "idle:g", "requests", "current:g", "reading:g",
                 "writing:g", "respawned")
# /http/server_zones/NAME and /stream/server_zones/NAME (both kinds in one shape).
ZONE = _fields("processing:g", "requests", "1xx", "2xx", "3xx", "4xx", "5xx", "discarded", "received", "sent")
# One upstream server (nginx Plus's peer). Times are sums in ms with their count: averages.
PEER = _fields(
    "active:g", "requests", "1xx", "2xx", "3xx", "4xx", "5xx", "sent", "received", "fails", "unavail",
    "header_time", "header_n", "response_time", "response_n", "connect_time", "connect_n",
    "first_byte_time", "first_byte_n", "selected:t", "unavail_until:t",
    # written by the health checker
    "checks", "check_fails", "unhealthy", "last_passed:g", "last_failed:g", "downtime", "downstart:t",
    "became_healthy", "became_unhealthy",
    # what the kernel's DSR fast path steered to it (the health checker publishes nft's counters)
    "kernel_datagrams", "kernel_bytes",
)
# A DSR service (a stream server with direct server return): what its workers forwarded, and what the
# kernel's fast path steered (`kernel`: 1 while the kernel steers it).
DSR = _fields("datagrams", "bytes", "no_live_upstreams", "send_errors", "kernel_datagrams", "kernel_bytes",
              "kernel")
ERRNO_MAX = 134          # transparent connect errors, one column per errno (EHWPOISON is 133)

KINDS: dict[str, dict[str, Kind]] = {"global": GLOBAL, "zone": ZONE, "peer": PEER, "dsr": DSR}

Key = tuple[str, ...]


@dataclass
class Registry:
    """Key -> first column, append-only for the master's whole life (kept across reloads)."""

    capacity: int
    columns: dict[Key, int] = field(default_factory=dict)
    used: int = 1                # column 0 is scratch: where counters beyond the capacity go

    def place(self, key: Key, width: int) -> int:
        found = self.columns.get(key)
        if found is not None:
            return found
        if self.used + width > self.capacity:
            return 0
        self.columns[key] = found = self.used
        self.used += width
        return found


@dataclass(frozen=True, slots=True)
class Block:
    """One thing's columns: `block.at("requests")` is the column index."""

    kind: str
    base: int

    def at(self, name: str) -> int:
        if self.base == 0:
            return 0
        return self.base + _INDEX[self.kind][name]


_INDEX = {kind: {name: i for i, name in enumerate(fields)} for kind, fields in KINDS.items()}


@dataclass(frozen=True, slots=True)
class PeerRef:
    """A server of an upstream block as the API names it: its id is its position (nginx Plus). For a
    slot of a `server NAME resolve`, `server` is that line (its address comes from the resolver)."""

    protocol: str              # "http" or "stream"
    upstream: Upstream
    id: int
    server: UpstreamServer
    block: Block
    control: int               # its row in the control board (down/drain/weight set by the API)


def peer_key(protocol: str, upstream: Upstream, index: int) -> Key:
    """The same address twice in one upstream is two servers: the occurrence counts. A slot of a
    `server NAME resolve` is named by its line and its number, so a reload keeps its columns."""
    found = slot_of(upstream, index)
    if found is not None:
        template, slot = found
        text = upstream.resolve[template].text
        nth = sum(1 for other in upstream.resolve[:template] if other.text == text)
        return ("peer", protocol, upstream.name, f"resolve {text}", f"{nth}.{slot}")
    server = upstream.servers[index]
    nth = sum(1 for other in upstream.servers[:index] if other.name == server.name)
    return ("peer", protocol, upstream.name, server.name, str(nth))


def upstreams_of(config: Config) -> Iterator[tuple[str, Upstream]]:
    """The upstream blocks the API shows (nginx Plus shows groups with a zone; sheer's state is
    always shared, so every block; `proxy_pass 1.2.3.4:80` makes no group to show)."""
    for protocol, section in (("http", config.http), ("stream", config.stream)):
        for upstream in (section.upstreams if section else ()):
            if not upstream.implicit:
                yield protocol, upstream


@dataclass(frozen=True)
class Layout:
    """This generation's columns: what the API lists and where each value is."""

    columns: int                                   # the row width
    glob: Block
    zones: dict[tuple[str, str], Block]            # (protocol, status_zone name)
    upstreams: dict[tuple[str, str], tuple[PeerRef, ...]]
    peers_by_upstream: dict[int, tuple[PeerRef, ...]]   # id(Upstream) -> its peers (what io holds)
    dsr: dict[str, Block]                          # stream server (its first listen) -> columns
    errno_base: int                                # transparent connect errors by errno
    controls: int                                  # rows used in the control board
    kinds: tuple[Kind, ...]                        # the kind of every column placed so far

    def peers(self, upstream: Upstream) -> tuple[PeerRef, ...]:
        return self.peers_by_upstream.get(id(upstream), ())

    def errno_column(self, code: int) -> int:
        return self.errno_base + code if self.errno_base and 0 < code < ERRNO_MAX else 0


def zones_of(config: Config) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for server in (config.http.servers if config.http else ()):
        if server.status_zone and ("http", server.status_zone) not in found:
            found.append(("http", server.status_zone))
    for stream_server in (config.stream.servers if config.stream else ()):
        if stream_server.status_zone and ("stream", stream_server.status_zone) not in found:
            found.append(("stream", stream_server.status_zone))
    return found


def layout(config: Config, registry: Registry, controls: Registry) -> Layout:
    """Columns for `config`, placed through `registry` (which grows for what is new)."""
    glob = Block("global", registry.place(("global",), len(GLOBAL)))
    zones = {zone: Block("zone", registry.place(("zone", *zone), len(ZONE))) for zone in zones_of(config)}
    upstreams: dict[tuple[str, str], tuple[PeerRef, ...]] = {}
    by_id: dict[int, tuple[PeerRef, ...]] = {}
    for protocol, upstream in upstreams_of(config):
        refs = []
        for index in range(positions(upstream)):
            key = peer_key(protocol, upstream, index)
            refs.append(PeerRef(protocol, upstream, index, configured(upstream, index),
                                Block("peer", registry.place(key, len(PEER))), controls.place(key, 1)))
        upstreams[(protocol, upstream.name)] = by_id[id(upstream)] = tuple(refs)
    dsr = {}
    for stream_server in (config.stream.servers if config.stream else ()):
        if stream_server.dsr:
            name = str(stream_server.listens[0])
            dsr[name] = Block("dsr", registry.place(("dsr", name), len(DSR)))
    errno_base = registry.place(("errno",), ERRNO_MAX)
    kinds = [Kind.COUNTER] * registry.used
    for key, base in registry.columns.items():
        for offset, kind in enumerate(KINDS.get(key[0], {}).values()):
            kinds[base + offset] = kind
    return Layout(registry.capacity, glob, zones, upstreams, by_id, dsr, errno_base, controls.used,
                  tuple(kinds))


def status_class(status: int) -> str:
    """The `responses` bucket of a status: "2xx"; stream sessions use 2xx/4xx/5xx only."""
    return f"{min(max(status // 100, 1), 5)}xx"
