"""Names re-resolved while sheer runs, sans-IO: when to ask again, which peers a new answer adds
and removes, and the answers kept for `proxy_pass http://$variable`. Time is an argument.

When (ngx_resolver.c, ngx_http_upstream_zone_module.c): an answer stands for its records'
smallest TTL, or for `valid=` when the resolver sets it; a name that does not exist (NXDOMAIN,
or no address at all) for 10s or `valid=`. The upstream's name is asked again a second after its
answer stops standing. A failure that says nothing about the name (a timeout, SERVFAIL, REFUSED)
changes nothing: the peers stay as they were, and the name is asked again after
`resolver_timeout` (at least a second). NXDOMAIN removes the name's peers, as in nginx.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sheer.config.model import Upstream, UpstreamServer
from sheer.core.peers import PEERS_PER_NAME
from sheer.core.resolve_wire import NXDOMAIN, Resolution

NEGATIVE_VALID = 10.0        # ngx_resolver: how long "not found" stands without valid=


def valid_until(resolution: Resolution, valid: float | None, now: float) -> float:
    """Until when an answer stands (ngx_resolver's rn->valid / ctx->valid); `valid=0` is unset, as in
    nginx."""
    if resolution.ok:
        return now + (valid or resolution.ttl)
    return now + (valid or NEGATIVE_VALID)


def changes_peers(resolution: Resolution) -> bool:
    """Whether an answer replaces the name's peers: addresses do, and so does NXDOMAIN (none left);
    a timeout or a server's failure keeps the old set."""
    return resolution.ok or resolution.code == NXDOMAIN


def next_attempt(resolution: Resolution, valid: float | None, timeout: float, now: float) -> float:
    """When the resolver task asks for the name again (ngx_http_upstream_zone_resolve_handler)."""
    if not changes_peers(resolution):
        return now + max(timeout, 1.0)
    until = valid_until(resolution, valid, now)
    return until + 1.0 if until > now else now + 1.0


@dataclass(frozen=True, slots=True)
class Change:
    slot: int
    address: str


@dataclass(frozen=True, slots=True)
class PeerChanges:
    added: tuple[Change, ...] = ()
    removed: tuple[Change, ...] = ()
    no_room: tuple[str, ...] = ()      # addresses beyond the slots: nginx's "memory exhausted"

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.no_room)


@dataclass
class PeerSlots:
    """The peers of one `server NAME resolve`, in fixed slots: a slot is a peer's place in the
    shared board, its counters and its health state, so a peer keeps its slot while it lives.
    A freed slot is reused last (the one freed longest ago first): what the old peer's
    connections still count lands on a slot that is not yet someone else's."""

    size: int = PEERS_PER_NAME
    slots: list[str | None] = field(default_factory=list)
    _freed: dict[int, int] = field(default_factory=dict)    # slot -> when it was freed (a counter)
    _clock: int = 0

    def __post_init__(self) -> None:
        self.slots = (list(self.slots) + [None] * self.size)[:self.size]

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(address for address in self.slots if address is not None)

    def update(self, addresses: Sequence[str]) -> PeerChanges:
        wanted = list(dict.fromkeys(addresses))
        removed = []
        for slot, address in enumerate(self.slots):
            if address is not None and address not in wanted:
                self.slots[slot] = None
                self._clock += 1
                self._freed[slot] = self._clock
                removed.append(Change(slot, address))
        have = set(self.slots)
        added: list[Change] = []
        no_room: list[str] = []
        for address in wanted:
            if address in have:
                continue
            free = self._free_slot()
            if free is None:
                no_room.append(address)
                continue
            self.slots[free] = address
            self._freed.pop(free, None)
            added.append(Change(free, address))
        return PeerChanges(tuple(added), tuple(removed), tuple(no_room))

    def _free_slot(self) -> int | None:
        free = [slot for slot, address in enumerate(self.slots) if address is None]
        if not free:
            return None
        # never used first (in order), then the one freed longest ago
        return min(free, key=lambda slot: (self._freed.get(slot, 0), slot))


@dataclass
class NameCache:
    """Answers kept per worker for `proxy_pass http://$variable`: a name is asked once while its
    answer stands, at most `limit` names (the least recently used go first)."""

    limit: int = 1024
    _entries: OrderedDict[str, tuple[Resolution, float]] = field(default_factory=OrderedDict)

    def get(self, name: str, now: float) -> Resolution | None:
        found = self._entries.get(name)
        if found is None:
            return None
        resolution, until = found
        if now >= until:
            del self._entries[name]
            return None
        self._entries.move_to_end(name)
        return resolution

    def put(self, name: str, resolution: Resolution, until: float) -> None:
        self._entries[name] = (resolution, until)
        self._entries.move_to_end(name)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class Resolved:
    """The addresses a name resolved to, each rotation of them an implicit upstream: a balancer is made
    afresh per request or session from the next one (nginx's ngx_*_upstream_create_round_robin_peer:
    failures count within it only), so that they take turns at which address comes first, as nginx's
    resolver rotates its answer."""

    addresses: tuple[str, ...]
    written: str
    port: int
    turn: int = 0

    def __post_init__(self) -> None:
        servers = [UpstreamServer(a, self.port, text=self.written) for a in self.addresses]
        self.rotations = [Upstream(self.written, tuple(servers[n:] + servers[:n]), implicit=True)
                          for n in range(len(servers))]

    def next(self) -> Upstream:
        upstream = self.rotations[self.turn % len(self.rotations)]
        self.turn += 1
        return upstream
