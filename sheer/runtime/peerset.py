"""The addresses of names re-resolved at run time, shared by every process of one generation.

The master maps an anonymous MAP_SHARED region before it forks (like the health board), so the
resolver task (in the generation's helper process) writes each `server NAME resolve` slot's
address once and every worker's balancer sees it at its next pick: one resolver, one answer,
every worker at once. Writes are framed by a sequence counter (a seqlock): odd while a change is
being written, even when done; a reader that saw it move reads again, so a worker never takes
half an address. A reload maps a new region and copies the old slots of the names it keeps
(nginx's "preresolve"), so the new workers start with the peers the old ones had.

Layout: the version (int64), then per name its `valid` time (float64, when its answer stops
standing), then per slot 32 bytes: since (int64, ms, when the address came), family (4 or 6,
0: empty), the packed address (16 bytes).
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sheer.config.model import Config, Upstream, UpstreamServer
from sheer.core.peers import PEERS_PER_NAME, position_of, positions
from sheer.core.stats import upstreams_of

SLOT = struct.Struct("=qB7x16s")       # since_ms, family, address
HEADER = 8
READ_TRIES = 1000


@dataclass(frozen=True)
class Name:
    """One `server NAME resolve` line: where its slots are in the board and in its upstream."""

    protocol: str
    upstream: Upstream
    template: int                 # its index in upstream.resolve
    server: UpstreamServer
    number: int                   # its index among every name of the generation (its `valid` cell)
    first: int                    # its first slot in the board

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What a reload matches it by: the upstream and the name (the nth line of that name), not its
        port, as ngx_http_upstream_zone_preresolve matches host->name: a reload that changes the port
        keeps the addresses, each with the new port."""
        host = self.server.host
        same = sum(1 for other in self.upstream.resolve[:self.template] if other.host == host)
        return self.protocol, self.upstream.name, host, same

    def position(self, slot: int) -> int:
        return position_of(self.upstream, self.template, slot)


def names_of(config: Config) -> list[Name]:
    found: list[Name] = []
    first = 0
    for protocol, upstream in upstreams_of(config):
        for template, server in enumerate(upstream.resolve):
            found.append(Name(protocol, upstream, template, server, len(found), first))
            first += PEERS_PER_NAME
    return found


def _pack(address: str) -> tuple[int, bytes]:
    if ":" in address:
        return 6, socket.inet_pton(socket.AF_INET6, address)
    return 4, socket.inet_pton(socket.AF_INET, address).ljust(16, b"\0")


def _unpack(family: int, packed: bytes) -> str | None:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, packed[:4])
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, packed)
    return None


class PeerSetBoard:
    def __init__(self, config: Config, previous: PeerSetBoard | None = None) -> None:
        self.names = names_of(config)
        slots = len(self.names) * PEERS_PER_NAME
        self.slots_at = HEADER + 8 * len(self.names)
        self.mem = mmap.mmap(-1, max(1, self.slots_at + SLOT.size * slots),
                             flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.by_upstream: dict[int, list[Name]] = {}
        for name in self.names:
            self.by_upstream.setdefault(id(name.upstream), []).append(name)
        if previous is not None:
            self._preresolve(previous)

    def __bool__(self) -> bool:
        return bool(self.names)

    def _preresolve(self, previous: PeerSetBoard) -> None:
        old = {name.key: name for name in previous.names}
        with self.changing():
            for name in self.names:
                before = old.get(name.key)
                if before is None:
                    continue
                self.set_valid(name, previous.valid(before))
                for slot in range(PEERS_PER_NAME):
                    address, since = previous.entry(before, slot)
                    if address is not None:
                        self.put(name, slot, address, since)

    # --- the sequence counter ------------------------------------------------------------

    @property
    def version(self) -> int:
        return int.from_bytes(self.mem[:HEADER], "little")

    def _bump(self) -> None:
        self.mem[:HEADER] = (self.version + 1).to_bytes(HEADER, "little")

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Frame a change: the version is odd while it is written (one writer: the resolver task)."""
        if self.version % 2:
            self._bump()          # a writer died in the middle: its half-change is complete now
        self._bump()
        try:
            yield
        finally:
            self._bump()

    # --- slots -----------------------------------------------------------------------------

    def _offset(self, name: Name, slot: int) -> int:
        return self.slots_at + SLOT.size * (name.first + slot)

    def put(self, name: Name, slot: int, address: str | None, since_ms: int = 0) -> None:
        """Within `changing()`."""
        family, packed = _pack(address) if address is not None else (0, bytes(16))
        offset = self._offset(name, slot)
        self.mem[offset:offset + SLOT.size] = SLOT.pack(since_ms, family, packed)

    def entry(self, name: Name, slot: int) -> tuple[str | None, int]:
        """(address, since ms) of a slot, unframed: for the writer, or within a framed read."""
        offset = self._offset(name, slot)
        since, family, packed = SLOT.unpack(self.mem[offset:offset + SLOT.size])
        return _unpack(family, packed), since

    def valid(self, name: Name) -> float:
        offset = HEADER + 8 * name.number
        return float(struct.unpack("=d", self.mem[offset:offset + 8])[0])

    def set_valid(self, name: Name, until: float) -> None:
        offset = HEADER + 8 * name.number
        self.mem[offset:offset + 8] = struct.pack("=d", until)

    def read(self, upstream: Upstream) -> tuple[tuple[str | None, int], ...]:
        """(address, since ms) per position of `upstream`, read consistently."""
        names = self.by_upstream.get(id(upstream), [])
        count = positions(upstream)

        def look() -> tuple[tuple[str | None, int], ...]:
            out: list[tuple[str | None, int]] = [(None, 0)] * count
            for name in names:
                for slot in range(PEERS_PER_NAME):
                    out[name.position(slot)] = self.entry(name, slot)
            return tuple(out)

        for _ in range(READ_TRIES):
            before = self.version
            if before % 2:
                continue
            found = look()
            if self.version == before:
                return found
        return look()            # a writer stuck mid-change (killed): take what is there

    def view(self, upstream: Upstream) -> UpstreamSlots | None:
        return UpstreamSlots(self, upstream) if id(upstream) in self.by_upstream else None


class UpstreamSlots:
    """sheer.core.control.Slots for one upstream: what its balancer in each worker reads."""

    __slots__ = ("board", "upstream")

    def __init__(self, board: PeerSetBoard, upstream: Upstream) -> None:
        self.board = board
        self.upstream = upstream

    @property
    def version(self) -> int:
        return self.board.version

    def read(self) -> tuple[str | None, ...]:
        return tuple(address for address, _ in self.board.read(self.upstream))
