"""A worker's io context (sheer.io.context.WorkerContext), built from this generation's boards:
balancers that read the active checks' board, the resolver's peers and the API's changes, counters in
the process's row."""

from __future__ import annotations

from sheer.config.model import Config, Upstream
from sheer.core.balancers import Balancer, make_balancer
from sheer.core.control import UpstreamOverrides
from sheer.io.context import Identity, WorkerContext
from sheer.io.logs import ErrorLogger
from sheer.runtime.board import HealthBoard
from sheer.runtime.peerset import PeerSetBoard
from sheer.runtime.shared import SharedBoard


class Balancers:
    """One balancer per upstream block, made at its first use."""

    def __init__(self, health: HealthBoard | None, shared: SharedBoard, peers: PeerSetBoard | None) -> None:
        self.health = health
        self.shared = shared
        self.peers = peers
        self.made: dict[int, Balancer] = {}

    def __call__(self, upstream: Upstream) -> Balancer:
        key = id(upstream)
        found = self.made.get(key)
        if found is None:
            view = self.health.view(upstream) if self.health else None
            refs = self.shared.layout.peers(upstream)
            slots = self.peers.view(upstream) if self.peers else None
            overrides = (UpstreamOverrides(self.shared, upstream, tuple(ref.control for ref in refs), slots)
                         if refs else None)
            found = self.made[key] = make_balancer(upstream, view, overrides=overrides)
        return found


def worker_context(config: Config, log: ErrorLogger, health: HealthBoard | None = None,
                   shared: SharedBoard | None = None, identity: Identity | None = None,
                   peers: PeerSetBoard | None = None) -> WorkerContext:
    """`shared`: the master's board; without one, a board of its own (tests, `sheer -t`)."""
    board = shared if shared is not None else SharedBoard(config)
    identity = identity or Identity()
    return WorkerContext(config, log, board, board.writer(identity.row), Balancers(health, board, peers),
                         health=health, peers=peers, identity=identity)
