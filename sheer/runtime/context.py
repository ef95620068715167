"""What a worker's services share: logs, per-upstream balancer state, identity."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from sheer.config.model import Config, ErrorLog, Upstream
from sheer.core.balancer import Balancer
from sheer.core.balancers import make_balancer
from sheer.core.control import UpstreamOverrides
from sheer.io.logs import ErrorLogger
from sheer.runtime.board import HealthBoard
from sheer.runtime.peerset import PeerSetBoard
from sheer.runtime.shared import SharedBoard


@dataclass(frozen=True)
class Identity:
    """Who a forked process is, for the API's /nginx: its generation, when it was loaded, its row."""

    generation: int = 0
    load_time: float = 0.0
    row: int = -1


@dataclass
class WorkerContext:
    config: Config
    log: ErrorLogger
    health: HealthBoard | None = None      # active checks' shared peer state (this generation's)
    shared: SharedBoard | None = None      # counters and the API's changes (every generation's)
    peers: PeerSetBoard | None = None      # names re-resolved at run time: the resolver's addresses
    identity: Identity = field(default_factory=Identity)
    counters: memoryview = field(init=False)   # this process's own row of counters (int64)
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    _balancers: dict[int, Balancer] = field(default_factory=dict)
    _loggers: dict[ErrorLog, ErrorLogger] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.shared is None:
            self.shared = SharedBoard(self.config)   # a context of its own (tests, `sheer -t`)
        self.counters = self.shared.writer(self.identity.row)

    def balancer(self, upstream: Upstream) -> Balancer:
        """One balancer per upstream block per worker, shared by every server using it (as in nginx)."""
        key = id(upstream)
        found = self._balancers.get(key)
        if found is None:
            view = self.health.view(upstream) if self.health else None
            assert self.shared is not None
            refs = self.shared.layout.peers(upstream)
            slots = self.peers.view(upstream) if self.peers else None
            overrides = (UpstreamOverrides(self.shared, upstream, tuple(ref.control for ref in refs), slots)
                         if refs else None)
            found = self._balancers[key] = make_balancer(upstream, view, overrides=overrides)
        return found

    def error_log(self, log: ErrorLog | None) -> ErrorLogger:
        if log is None:
            return self.log
        found = self._loggers.get(log)
        if found is None:
            found = self._loggers[log] = ErrorLogger(log)
        return found
