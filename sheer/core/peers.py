"""Where an upstream's peers sit: its servers resolved at load first, then a fixed run of slots for
each `server NAME resolve` (PEERS_PER_NAME). A peer's position is its index
everywhere: the balancers' `Peer.index`, the health board, the counters and the API's `id`; a slot
is empty until the resolver task puts an address in it."""

from __future__ import annotations

from dataclasses import replace

from sheer.config.model import Upstream, UpstreamServer
from sheer.config.resolver import PEERS_PER_NAME

__all__ = ["PEERS_PER_NAME", "configured", "position_of", "positions", "slot_of", "slot_server"]


def positions(upstream: Upstream) -> int:
    return len(upstream.servers) + PEERS_PER_NAME * len(upstream.resolve)


def slot_of(upstream: Upstream, position: int) -> tuple[int, int] | None:
    """(which `resolve` server, which slot) of a position, None for a server resolved at load."""
    offset = position - len(upstream.servers)
    if offset < 0:
        return None
    return divmod(offset, PEERS_PER_NAME)


def position_of(upstream: Upstream, template: int, slot: int) -> int:
    return len(upstream.servers) + template * PEERS_PER_NAME + slot


def configured(upstream: Upstream, position: int) -> UpstreamServer:
    """The `server` line behind a position: the server itself, or the `resolve` template of a slot."""
    found = slot_of(upstream, position)
    return upstream.servers[position] if found is None else upstream.resolve[found[0]]


def slot_server(template: UpstreamServer, address: str) -> UpstreamServer:
    """A peer of a `server NAME resolve` line: the line's parameters at one address (its `text`
    stays the name as written, as nginx's peer->server)."""
    return replace(template, host=address, resolve=False)
