"""`random [two [least_conn]]`: a peer drawn with probability proportional to its weight; with
`two`, two distinct usable peers are drawn and the one with fewer connections per weight wins.
After 20 unusable draws round robin decides (ngx_http_upstream_random_module.c)."""

from __future__ import annotations

from random import Random

from sheer.config.model import Upstream
from sheer.core.balancers.round_robin import HealthView, Overrides, Peer, RoundRobin, Tried


class WeightedRandom(RoundRobin):
    def __init__(self, upstream: Upstream, health: HealthView | None = None,
                 overrides: Overrides | None = None, *, two: bool = False, rng: Random | None = None) -> None:
        super().__init__(upstream, health, overrides)
        self.two = two
        self._random = (rng or Random()).random

    def _draw(self) -> Peer:
        return self.by_weight(int(self._random() * self.total_weight))

    def get(self, tried: Tried, now: float) -> Peer | None:
        if tried.left <= 0:
            return None
        if tried.spins > 20 or len(self.primary) < 2:
            return super().get(tried, now)
        first: Peer | None = None
        while True:
            peer = self._draw()
            if peer is not first and self.usable(peer, tried, now):
                if not self.two:
                    return self.take(peer, tried, now)
                if first is not None:
                    if peer.conns * first.server.weight > first.conns * peer.server.weight:
                        peer = first
                    return self.take(peer, tried, now)
                first = peer
            tried.spins += 1
            if tried.spins > 20:
                return super().get(tried, now)
