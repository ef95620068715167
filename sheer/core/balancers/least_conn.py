"""`least_conn`: the peer with the fewest active connections relative to its weight; ties go to
smooth weighted round robin among the tied peers (ngx_http_upstream_least_conn_module.c)."""

from __future__ import annotations

from sheer.core.balancers.round_robin import Peer, RoundRobin, Tried


class LeastConn(RoundRobin):
    def get(self, tried: Tried, now: float) -> Peer | None:
        if tried.left <= 0:
            return None
        if len(self.primary) == 1:
            return super().get(tried, now)      # nginx: peers->single goes to round robin
        peer = self._least(self.primary, tried, now)
        if peer is None and self.backup:
            peer = self._least(self.backup, tried, now)
        if peer is None:
            self.recover()
            return None
        return self.take(peer, tried, now)

    def _least(self, peers: list[Peer], tried: Tried, now: float) -> Peer | None:
        best: Peer | None = None
        first = 0
        many = False
        for i, peer in enumerate(peers):
            if not self.usable(peer, tried, now):
                continue
            # peer.conns / peer.weight < best.conns / best.weight, in integers as nginx compares
            if best is None or peer.conns * best.server.weight < best.conns * peer.server.weight:
                best, first, many = peer, i, False
            elif peer.conns * best.server.weight == best.conns * peer.server.weight:
                many = True
        if best is None or not many:
            return best
        total = 0
        for peer in peers[first:]:
            if not self.usable(peer, tried, now):
                continue
            if peer.conns * best.server.weight != best.conns * peer.server.weight:
                continue
            peer.current_weight += peer.effective_weight
            total += peer.effective_weight
            if peer.effective_weight < peer.server.weight:
                peer.effective_weight += 1
            if peer.current_weight > best.current_weight:
                best = peer
        best.current_weight -= total
        return best
