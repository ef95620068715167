"""`hash KEY maglev` (sheer-only): a Maglev lookup table (Eisenbud et al., "Maglev: A Fast and
Reliable Software Network Load Balancer", NSDI 2016, section 3.4).

Several sheer instances behind ECMP build the same table from the same upstream block, so they
send a client to the same peer without sharing any state: what DSR fleets need, since the
upstream keeps the session. The table depends only on the peers' names (`host:port`) and weights,
hashed with SHA-256 (never Python's per-process salted `hash()`). A key is looked up with the
kernel's jhash and sheer's fixed seed (sheer.core.jhash; for `$remote_addr[$remote_port]` over the
binary address and port, sheer.core.flowkey), so the kernel's fast path (sheer.core.fastpath:
nft `jhash ip saddr . udp sport mod SIZE seed S map @table`) makes the same choice as this
balancer. (Until issue 16 the key was hashed with crc32 of its text: maglev is sheer-only, so only
sheer instances of different versions disagree.) Adding or removing a peer moves about 1/n of keys.

At pick time an unusable peer (down, failed, at max_conns, already tried) is passed over by
walking the following table entries, so keys of the live peers never move while a peer is out,
and every instance that sees the same peers down makes the same choice. After 20 entries the
primary peers are scanned in order from a position the key decides: still deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from sheer.core.balancers.round_robin import Peer, RoundRobin, Tried
from sheer.core.jhash import slot as jhash_slot

TABLE_SIZE = 65537      # prime; the paper wants M much larger than the number of peers (M > 100 N)
SLOT_CACHE = 65536      # keys whose slot is remembered (then forgotten all at once)
WALK = 20               # table entries tried past an unusable peer before scanning the peers


def table_size(total_weight: int) -> int:
    """65537, or the first prime above 100 entries per unit of weight when that is larger."""
    size = max(TABLE_SIZE, total_weight * 100)
    while not _prime(size):
        size += 1
    return size


def _prime(n: int) -> bool:
    if n % 2 == 0:
        return n == 2
    divisor = 3
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 2
    return True


def permutation(name: str, size: int) -> tuple[int, int]:
    """(offset, skip) of a peer's preference list: entry j is (offset + j * skip) % size."""
    digest = hashlib.sha256(name.encode()).digest()
    offset = int.from_bytes(digest[:8], "big") % size
    skip = int.from_bytes(digest[8:16], "big") % (size - 1) + 1
    return offset, skip


def populate(names: list[str], weights: list[int], size: int) -> list[int]:
    """The paper's Populate: peers take turns claiming their next preferred empty entry; a peer of
    weight w takes w turns per round, so its share of the table is proportional to its weight."""
    table = [-1] * size
    if not names:
        return table
    prefs = [permutation(name, size) for name in names]
    cursor = [offset for offset, _ in prefs]
    filled = 0
    while True:
        for i, (_, skip) in enumerate(prefs):
            for _ in range(weights[i]):
                entry = cursor[i]
                while table[entry] >= 0:
                    entry = (entry + skip) % size
                table[entry] = i
                cursor[i] = (entry + skip) % size
                filled += 1
                if filled == size:
                    return table


class Maglev(RoundRobin):
    def derive(self) -> None:
        super().derive()
        primary = self.primary
        self.size = table_size(self.total_weight)
        owners = populate([peer.server.name for peer in primary], [peer.server.weight for peer in primary],
                          self.size)
        self.owners = owners
        self.table: list[Peer] = [primary[i] for i in owners] if primary else []
        self._slots: dict[bytes, int] = {}     # key -> slot: jhash costs ~2 us in Python

    def start(self, tries_limit: int = 0, key: bytes = b"") -> Tried:
        tried = super().start(tries_limit)
        tried.key = key
        cache = self._slots
        found = cache.get(key)
        if found is None:
            if len(cache) >= SLOT_CACHE:
                cache.clear()
            found = cache[key] = jhash_slot(key, self.size)
        tried.hash = found
        return tried

    def get(self, tried: Tried, now: float) -> Peer | None:
        if tried.left <= 0:
            return None
        if len(self.primary) < 2:
            return super().get(tried, now)
        table = self.table
        size = self.size
        slot = tried.hash
        for step in range(WALK):
            peer = table[(slot + step) % size]
            if self.usable(peer, tried, now):
                return self.take(peer, tried, now)
        primary = self.primary
        count = len(primary)
        for step in range(count):
            peer = primary[(slot + step) % count]
            if self.usable(peer, tried, now):
                return self.take(peer, tried, now)
        return None


def lookup(owners: Sequence[int], count: int, slot: int, usable: Callable[[int], bool]) -> int | None:
    """What `Maglev.get` picks for a fresh request at `slot`, as a primary peer's position: the
    kernel's table is filled with these (sheer.core.fastpath), so both paths choose alike."""
    size = len(owners)
    for step in range(WALK):
        owner = owners[(slot + step) % size]
        if usable(owner):
            return owner
    for step in range(count):
        owner = (slot + step) % count
        if usable(owner):
            return owner
    return None
