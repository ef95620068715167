"""The balancer vocabulary (`Peer`, `Tried`, the `Balancer` protocol) and smooth weighted round
robin with nginx's semantics (ngx_http_upstream_round_robin.c), which every other method falls
back to, as nginx's do. The other methods live beside it, one per file.

Per-worker state, as in nginx without `zone`. Time is an argument: `now` in seconds.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from sheer.config.model import Upstream, UpstreamServer
from sheer.core.flowkey import maglev_key
from sheer.core.peers import positions
from sheer.core.variables import VariableSource, render


@dataclass(slots=True, eq=False)
class Peer:
    server: UpstreamServer
    index: int                      # position in the upstream block: `bit` in a request's `tried` set
    effective_weight: int = 0
    current_weight: int = 0
    conns: int = 0
    fails: int = 0
    accessed: float = 0.0
    checked: float = 0.0
    down_by_hand: bool = False      # `health_down` (tests); active checks publish through HealthView
    # Made once (a peer's server changes its parameters, never its address): asked per connection.
    name: str = field(init=False)
    address: tuple[str, int] | str = field(init=False)   # a unix-domain socket's is its path
    bit: int = field(init=False)    # 1 << index
    # Whether any peer was ever set down by hand in this process: then every pick looks at every peer.
    hand_set: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.name = self.server.name
        self.address = self.server.sockaddr
        self.bit = 1 << self.index

    @property
    def health_down(self) -> bool:
        return self.down_by_hand

    @health_down.setter
    def health_down(self, value: bool) -> None:
        """Set by hand (tests): round robin's quick pick (RoundRobin.get) stops being taken."""
        self.down_by_hand = value
        Peer.hand_set = True


class Tried:
    """The peers one request has already tried, and how many more tries it may make. What a request
    starts with is on the class (set per instance when it changes: a round-robin request sets two)."""

    peers = 0             # the peers' bits (Peer.bit): a set without an object per request
    key = b""             # the hash key (rendered `hash KEY`; ip_hash: the address bytes nginx hashes)
    hash = 0              # per-request hash state: nginx's hp->hash / iphp->hash / chash point
    rehash = 0            # `hash`: how many times the key was hashed (nginx's hp->rehash)
    spins = 0             # picks that landed on an unusable peer; past 20, round robin decides

    def __init__(self, left: int) -> None:
        self.left = left

    def __repr__(self) -> str:
        return (f"Tried(left={self.left}, peers={self.peers}, key={self.key!r}, hash={self.hash}, "
                f"rehash={self.rehash}, spins={self.spins})")


class Balancer(Protocol):
    """What io drivers use: one instance per upstream block per worker (sheer.core.balancers)."""

    upstream: Upstream
    peers: list[Peer]

    def start(self, tries_limit: int = 0, key: bytes = b"") -> Tried:
        """A new request (connection, UDP session or datagram); `key` is `request_key()`'s answer."""
        ...

    def get(self, tried: Tried, now: float) -> Peer | None: ...

    def free(self, peer: Peer, *, failed: bool, now: float) -> bool: ...


def request_key(upstream: Upstream, variables: VariableSource) -> bytes:
    """The bytes a hashing method hashes for this request (`hash KEY`, ip_hash's $remote_addr;
    `maglev`: the binary address and port, sheer.core.flowkey)."""
    key = upstream.balance.key
    if key is None:
        return b""
    if upstream.balance.method == "maglev":
        return maglev_key(key, variables)
    return render(key, variables).encode("latin-1", "replace")


class HealthView(Protocol):
    """Active health checks' verdict, shared by every worker (sheer.runtime.board)."""

    def down(self, index: int) -> bool: ...

    def any_down(self, count: int) -> bool:
        """Whether any of the first `count` positions is down: one look per pick, not per peer."""
        ...


class Overrides(Protocol):
    """The upstream's peers as every worker must see them (sheer.core.control): what the API changed
    about its servers, and the addresses the resolver task found for its `server NAME resolve`."""

    @property
    def version(self) -> int: ...

    @property
    def cell(self) -> memoryview | None:
        """`version` as `cell[0]`, when it lives in one cell (read per pick without a call)."""
        ...

    def servers(self) -> tuple[UpstreamServer | None, ...]:
        """One per position (sheer.core.peers); None: an empty slot, no peer there now."""
        ...


class RoundRobin:
    def __init__(self, upstream: Upstream, health: HealthView | None = None,
                 overrides: Overrides | None = None) -> None:
        self.upstream = upstream
        self.health = health
        self.overrides = overrides
        self._seen = 0          # the overrides' version last applied (0: none yet)
        self._cell = overrides.cell if overrides is not None else None
        # A failure lowered a peer's effective weight or may keep it out (free(failed=True)): the
        # quick pick waits until the full pick finds every primary whole again.
        self._troubled = False
        # Every position (sheer.core.peers): the servers resolved at load, then the slots of
        # `server NAME resolve`, empty until the resolver fills them.
        self.positions: list[Peer | None] = [Peer(server, index, effective_weight=server.weight)
                                             for index, server in enumerate(upstream.servers)]
        self.positions += [None] * (positions(upstream) - len(self.positions))
        self.arrange()
        if overrides is not None:
            self.refresh(overrides)

    def arrange(self) -> None:
        """The peers there are now, split into primary and backup, and what follows from them."""
        self.peers = [peer for peer in self.positions if peer is not None]
        self.primary = [peer for peer in self.peers if not peer.server.backup]
        self.backup = [peer for peer in self.peers if peer.server.backup]
        self.derive()
        self.count_tries()

    def count_tries(self) -> None:
        """nginx's peers->tries: the peers not `down` (a down one does not count towards the tries a
        request may make, so one live peer's 404 under `proxy_next_upstream http_404` is the answer)."""
        self.tries = sum(1 for peer in self.peers if not peer.server.down)
        # The quick pick's peers and weights: two primaries or more, none `down` or with max_conns.
        self.quick: list[tuple[Peer, int]] | None = None
        primary = self.primary
        if len(primary) > 1 and not any(peer.server.down or peer.server.max_conns for peer in primary):
            self.quick = [(peer, peer.server.weight) for peer in primary]
        # A lone primary, not `down`, without max_conns: what _pick's peers->single case takes at a first try.
        self.single: Peer | None = None
        if len(primary) == 1 and not primary[0].server.down and not primary[0].server.max_conns:
            self.single = primary[0]

    def derive(self) -> None:
        """What follows from the peers' weights; methods with tables of their own extend it.
        nginx's peers->total_weight and the weight ranges hash/ip_hash/random map a number onto
        (down peers included: they take their share of the hash space and are skipped at pick time)."""
        self.total_weight = sum(peer.server.weight for peer in self.primary)
        self._ends: list[int] = []
        for peer in self.primary:
            self._ends.append((self._ends[-1] if self._ends else 0) + peer.server.weight)

    def refresh(self, overrides: Overrides) -> None:
        """Follow the shared state: the API's changes (down, drain, weight) give the same peers new
        parameters; an address the resolver added or removed adds or removes a peer (a new peer
        starts afresh: no failures, no weight history, as nginx's zone module copies a template)."""
        self._seen = overrides.version
        servers = overrides.servers()
        reweighed = rearranged = False
        for index, server in enumerate(servers):
            peer = self.positions[index]
            if server is None:
                if peer is not None:
                    self.positions[index] = None
                    rearranged = True
                continue
            if peer is None or peer.address != server.sockaddr:
                self.positions[index] = Peer(server, index, effective_weight=server.weight)
                rearranged = True
                continue
            if server.weight != peer.server.weight:
                reweighed = True
                peer.effective_weight = server.weight
                peer.current_weight = 0
            peer.server = server
        if rearranged:
            self.arrange()
            return
        if reweighed:
            self.derive()
        self.count_tries()

    def start(self, tries_limit: int = 0, key: bytes = b"") -> Tried:
        """A new request: nginx allows as many tries as there are peers, capped by tries_limit."""
        cell = self._cell
        if cell is not None:
            if cell[0] != self._seen:
                assert self.overrides is not None
                self.refresh(self.overrides)
        elif self.overrides is not None and self.overrides.version != self._seen:
            self.refresh(self.overrides)
        count = self.tries
        return Tried(min(count, tries_limit) if tries_limit else count)

    def by_weight(self, w: int) -> Peer:
        """The primary peer owning point `w` of [0, total_weight): nginx's `while (w >= peer->weight)`."""
        return self.primary[bisect_right(self._ends, w)]

    def usable(self, peer: Peer, tried: Tried, now: float) -> bool:
        """nginx's per-peer tests in every method: not tried, not down, not failed, not at max_conns."""
        server = peer.server
        if peer.bit & tried.peers or server.down or self._health_down(peer):
            return False
        if server.max_fails and peer.fails >= server.max_fails and now - peer.checked <= server.fail_timeout:
            return False
        return not (server.max_conns and peer.conns >= server.max_conns)

    def take(self, peer: Peer, tried: Tried, now: float) -> Peer:
        """Book the chosen peer for this request (what nginx does after `found:`)."""
        if now - peer.checked > peer.server.fail_timeout:
            peer.checked = now
        tried.peers |= peer.bit
        tried.left -= 1
        peer.conns += 1
        return peer

    def get(self, tried: Tried, now: float) -> Peer | None:
        """Pick the next peer for this request, or None ("no live upstreams")."""
        if tried.left <= 0:
            return None
        peer: Peer | None = None
        if not tried.peers and not self._troubled and not Peer.hand_set:
            health = self.health
            if (quick := self.quick) is not None:
                if health is None or not health.any_down(len(self.positions)):
                    # the common case: every primary usable at full weight
                    peer = self._smooth(quick, self.total_weight, now)
            elif (single := self.single) is not None and (health is None or not health.down(single.index)):
                peer = single          # _pick's peers->single, its tests made once per change of the peers
        if peer is None:
            peer = self._pick(self.primary, tried, now)
            if peer is None and self.backup:
                peer = self._pick(self.backup, tried, now)
            if self._troubled:
                self._troubled = not all(p.effective_weight == p.server.weight and not p.fails
                                         for p in self.primary)
            if peer is None:
                self.recover()
                return None
        tried.peers |= peer.bit
        tried.left -= 1
        peer.conns += 1
        return peer

    @staticmethod
    def _smooth(quick: list[tuple[Peer, int]], total: int, now: float) -> Peer:
        """_pick with nothing to skip and every effective weight at the server's weight: the same
        choice, without the tests."""
        best: Peer | None = None
        high = 0
        for peer, weight in quick:
            current = peer.current_weight + weight
            peer.current_weight = current
            if best is None or current > high:
                best, high = peer, current
        assert best is not None
        best.current_weight = high - total
        if now - best.checked > best.server.fail_timeout:
            best.checked = now
        return best

    def recover(self) -> None:
        """Nothing could be picked: nginx's "all peers failed, mark them as live for quick
        recovery" resets the primaries' failure counts, so the next request tries them again
        instead of waiting out fail_timeout."""
        for peer in self.primary:
            peer.fails = 0

    def _pick(self, peers: list[Peer], tried: Tried, now: float) -> Peer | None:
        if peers is self.primary and len(peers) == 1:
            # nginx (peers->single): a lone primary server is never considered unavailable
            # (max_fails is ignored), even when backup servers exist.
            only = peers[0]
            if only is None or only.server.down or self._health_down(only) or only.bit & tried.peers:
                return None
            if only.server.max_conns and only.conns >= only.server.max_conns:
                return None
            return only
        best: Peer | None = None
        total = 0
        taken, health = tried.peers, self.health     # (per peer of every pick: _health_down inline)
        for peer in peers:
            server = peer.server
            if (peer.bit & taken or server.down or peer.down_by_hand
                    or (health is not None and health.down(peer.index))):
                continue
            if (peer.fails and server.max_fails and peer.fails >= server.max_fails   # (no failure: no look)
                    and now - peer.checked <= server.fail_timeout):
                continue
            if server.max_conns and peer.conns >= server.max_conns:
                continue
            weight = peer.effective_weight
            peer.current_weight += weight
            total += weight
            if weight < server.weight:
                peer.effective_weight = weight + 1
            if best is None or peer.current_weight > best.current_weight:
                best = peer
        if best is None:
            return None
        best.current_weight -= total
        if now - best.checked > best.server.fail_timeout:
            best.checked = now
        return best

    def _health_down(self, peer: Peer) -> bool:
        return peer.down_by_hand or (self.health is not None and self.health.down(peer.index))

    def free(self, peer: Peer, *, failed: bool, now: float) -> bool:
        """Release a peer after use. Returns True when this failure made it unavailable."""
        peer.conns -= 1
        server = peer.server
        if len(self.primary) == 1 and not server.backup:
            return False
        if failed:
            self._troubled = True
            peer.fails += 1
            peer.accessed = now
            peer.checked = now
            if server.max_fails:
                peer.effective_weight = max(0, peer.effective_weight - server.weight // server.max_fails)
                return peer.fails == server.max_fails
            return False
        if peer.accessed < peer.checked:
            peer.fails = 0
        return False
