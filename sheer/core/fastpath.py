"""The kernel's share of a DSR service (the fast path): which balancing methods the kernel can run
per datagram, and the table it runs them from, computed from the same state as user space.

The kernel steers each client datagram with one nft expression and one map lookup
(sheer.net.fastpath renders them): `jhash ip saddr . udp sport mod N seed S` for
`hash $remote_addr[$remote_port] maglev`, `numgen inc mod N` for round robin, `numgen random
mod N` for `random`; the map turns the number into an upstream. The map is filled here with what
the user-space balancer would pick for that number, so both paths agree:

- maglev: slot i holds `Maglev.get`'s answer for a key hashing to i (the owner, or, when it is
  unusable, the walk past it), for the same peers, weights and health;
- round robin: the N entries are one period of nginx's smooth weighted round robin over the usable
  peers (backups when no primary is usable), so `numgen inc` replays it;
- random: each usable peer holds `weight` entries, so `numgen random` draws by weight.

A slot with no usable peer stays empty: the map lookup misses, nft skips the rewrite, and the
datagram reaches sheer's listener, which answers as user space does ("no live upstreams").
What the kernel cannot count or compute (connections, crc32, two-choice load) is refused with the
reason, and that service stays on the user-space path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, reduce
from math import gcd
from typing import Literal

from sheer.config.model import Config, StreamServer, Upstream, UpstreamServer
from sheer.core.balancers.maglev import lookup, populate, table_size
from sheer.core.flowkey import Shape, key_shape

Expr = Literal["jhash", "numgen_inc", "numgen_random"]
MAX_SLOTS = 65536        # round robin and random: one entry per unit of weight, at most this many


@dataclass(frozen=True, slots=True)
class Method:
    """How the kernel picks: the nft expression, and for jhash what it hashes."""

    expr: Expr
    key: Shape | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """The map's content: slot -> the server's position in the upstream block (None: no entry)."""

    method: Method
    slots: tuple[int | None, ...]

    @property
    def modulus(self) -> int:
        return len(self.slots)

    @property
    def filled(self) -> int:
        return sum(1 for s in self.slots if s is not None)


def kernel_method(upstream: Upstream) -> Method | str:
    """How the kernel balances this upstream's datagrams, or why it cannot (user space keeps them)."""
    if upstream.resolve:
        return ("its servers are re-resolved while sheer runs (`server NAME resolve`): the kernel's table "
                "holds fixed addresses, and user space follows the name")
    if not upstream.servers:
        return "it has no server"
    if len({server.family for server in upstream.servers}) > 1:
        return "its servers mix IPv4 and IPv6 addresses, and one kernel rewrite writes one family"
    if any(server.max_conns for server in upstream.servers):
        return "max_conns limits connections per server, and the kernel keeps no count of them"
    balance = upstream.balance
    match balance.method:
        case "maglev":
            shape = key_shape(balance.key)
            if shape is None:
                return (f'"hash {balance.key} maglev": the kernel hashes the client\'s address and port only '
                        "(`hash $remote_addr maglev` or `hash $remote_addr$remote_port maglev`)")
            return Method("jhash", shape)
        case "round_robin":
            return Method("numgen_inc")
        case "random":
            return Method("numgen_random")
        case "least_conn":
            return "least_conn compares active connections, and the kernel keeps no count of them"
        case "random_two":
            return "random two compares the load of two servers, and the kernel keeps no count of it"
        case "hash":
            return ("hash KEY is nginx's crc32 over the weight ranges, which nft cannot compute "
                    "(`hash $remote_addr maglev` can run in the kernel)")
        case "consistent":
            return ("hash KEY consistent is nginx's ketama over crc32 points, which nft cannot compute "
                    "(`hash $remote_addr maglev` can run in the kernel)")
        case "ip_hash":
            return "ip_hash is an http method"


def table(method: Method, servers: Sequence[UpstreamServer], down: Sequence[bool]) -> Table | str:
    """The map for `servers` (the API's changes applied) with `down[i]` from the active checks;
    a reason instead when the weights need more entries than MAX_SLOTS."""
    usable = [not server.down and not down[i] for i, server in enumerate(servers)]
    if method.expr == "jhash":
        return Table(method, _maglev(servers, usable))
    primary = [i for i, server in enumerate(servers) if not server.backup and usable[i]]
    group = primary or [i for i, server in enumerate(servers) if server.backup and usable[i]]
    if not group:
        return Table(method, ())
    weights = [servers[i].weight for i in group]
    unit = reduce(gcd, weights)
    weights = [w // unit for w in weights]
    if sum(weights) > MAX_SLOTS:
        return (f"the weights need {sum(weights)} kernel table entries (more than {MAX_SLOTS}); "
                "smaller or common-factor weights fit")
    if method.expr == "numgen_random":
        return Table(method, tuple(i for i, w in zip(group, weights, strict=True) for _ in range(w)))
    return Table(method, tuple(smooth_round_robin(group, weights)))


def _maglev(servers: Sequence[UpstreamServer], usable: list[bool]) -> tuple[int | None, ...]:
    primary = [i for i, server in enumerate(servers) if not server.backup]
    size = table_size(sum(servers[i].weight for i in primary))
    if len(primary) < 2:
        # Maglev with one server is round robin over it (sheer.core.balancers.maglev): all or nothing
        only = primary[0] if primary and usable[primary[0]] else None
        return (only,) * size
    owners = _owners(tuple(servers[i].name for i in primary), tuple(servers[i].weight for i in primary), size)
    alive = [usable[i] for i in primary]
    if all(alive):
        return tuple(primary[o] for o in owners)
    out: list[int | None] = [primary[o] if alive[o] else None for o in owners]
    for at, owner in enumerate(owners):
        if not alive[owner]:     # only the slots of an unusable owner move: walk past it as Maglev.get does
            pick = lookup(owners, len(primary), at, alive.__getitem__)
            out[at] = None if pick is None else primary[pick]
    return tuple(out)


@lru_cache(maxsize=16)
def _owners(names: tuple[str, ...], weights: tuple[int, ...], size: int) -> tuple[int, ...]:
    """Maglev's Populate for these servers (~0.1 s in Python): the same until names or weights change."""
    return tuple(populate(list(names), list(weights), size))


def smooth_round_robin(group: Sequence[int], weights: Sequence[int]) -> list[int]:
    """One period (sum of weights picks) of nginx's smooth weighted round robin
    (ngx_http_upstream_get_peer: current += weight; the greatest wins, first on ties; it gives
    back the total)."""
    current = [0] * len(group)
    total = sum(weights)
    out: list[int] = []
    for _ in range(total):
        best = 0
        for k, weight in enumerate(weights):
            current[k] += weight
            if current[k] > current[best]:
                best = k
        current[best] -= total
        out.append(group[best])
    return out


def services(config: Config) -> list[StreamServer]:
    """The configuration's DSR servers: what a fast path may steer."""
    return [server for server in (config.stream.servers if config.stream else ())
            if server.dsr and server.upstream is not None]


def notices(config: Config) -> list[str]:
    """For `sheer -t`: DSR servers whose datagrams the kernel cannot steer, and why."""
    found = []
    for server in services(config):
        assert server.upstream is not None
        method = kernel_method(server.upstream)
        if isinstance(method, str):
            where = f"{server.source}: " if server.source else ""
            found.append(f"{where}direct server return on {server.listens[0]} stays on the user-space path "
                         f'(no kernel fast path for upstream "{server.upstream.name}"): {method}')
    return found
